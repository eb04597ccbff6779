"""The benchmark's code runs end to end (nano preset, tiny counts: a smoke test, not timings),
and the fast paths it measures keep their meaning."""


import pytest
import torch

from bench import flops, memory
from bench.__main__ import main
from roberta import RobertaConfig


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    result = main(["--quick", "--presets", "nano", "--rounds", "1", "--latency-calls", "2",
                   "--batch-size", "2", "--seq-len", "16", "--latency-len", "8",
                   "--out", str(out)])
    result["path"] = out
    return result


def test_writes_the_table_with_every_row(result):
    text = result["path"].read_text()
    assert text == result["markdown"]
    assert "python -m bench --quick --presets nano" in text  # the command
    for row in ("training, fp32 vs fp32", "training, best vs best", "training step peak memory",
                "MFU over the fp32 matmul peak", "fill-mask latency"):
        assert f"| {row}" in text, row
    for fact in ("| cpu |", "| torch threads |", "| torch |", "| transformers |",
                 "fp32 matmul peak"):
        assert fact in text, fact
    if not torch.cuda.is_available():
        assert "GPU figures have not been measured" in text


def test_ratios_and_rates_are_positive(result):
    variants = result["training"]["nano"]
    assert {v.side for v in variants} == {"ours", "transformers"}
    for v in variants:
        assert len(v.samples) == 1 and v.seconds > 0
        assert v.peak_bytes > 0 and v.resting_bytes > 0
        assert not v.compiled  # --quick skips compilation
    for v in result["latency"]["nano"]:
        assert len(v.samples) == 2 and v.seconds > 0
    assert result["peaks"]["fp32"] > 0 and result["peaks"]["bf16"] > 0
    ratios = [float(cell.strip()[:-1]) for line in result["markdown"].splitlines()
              if line.startswith("| training, ") or line.startswith("| fill-mask")
              for cell in line.split("|")[5:6]]
    assert len(ratios) == 3 and all(r > 0 for r in ratios)


def test_flops_count_what_each_side_computes():
    c = RobertaConfig.preset("tiny")
    C, F, V, L, B, T = 256, 1024, 8192, 4, 16, 128
    layer = 4 * C * C + 2 * C * F
    dense = 6 * (L * layer * B * T + (C * C + C * V) * B * T) + 12 * L * B * T * T * C
    assert flops.training_flops(c, B, T, B * T, B * T) == dense
    # Ours: the head on 307 scored rows, the last layer's queries and FFN on 16 x 30 rows.
    sparse = flops.training_flops(c, B, T, B * 30, 307)
    saved_head = 6 * (C * C + C * V) * (B * T - 307)
    saved_last = 6 * (2 * C * C + 2 * C * F) * (B * T - B * 30) + 12 * (B * T - B * 30) * T * C
    assert dense - sparse == saved_head + saved_last
    assert flops.inference_flops(c, 1, 32, 32, 32) * 3 == flops.training_flops(c, 1, 32, 32, 32)


def test_cpu_peak_memory_sees_torch_allocations():
    def run():
        a = torch.empty(2**20)  # 4 MiB
        b = torch.empty(2**21)  # 8 MiB, while a lives
        del a, b
    assert 12 * 2**20 <= memory.peak_bytes(run, torch.device("cpu")) < 13 * 2**20


def test_everyday_sentiment_counts_what_the_classifier_says(tiny_assets, capsys):
    from bench import everyday_sentiment as bench
    from roberta import RobertaForSequenceClassification
    from roberta.inference import classify
    from roberta.tokenizer import RobertaTokenizer

    directory = tiny_assets / "sentiment"
    hits = bench.main(["--model", str(directory)])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("✓", "✗"))]
    polar = len(bench.POSITIVE) + len(bench.NEGATIVE)
    assert polar == 72 and len(bench.NEUTRAL) == 20 and len(lines) == polar + 20
    model = RobertaForSequenceClassification.from_pretrained(directory).eval()
    tokenizer = RobertaTokenizer.from_pretrained(directory)
    said = [p["positive"] >= 0.5 for p in classify(model, tokenizer,
                                                   bench.POSITIVE + bench.NEGATIVE)]
    expected = [True] * len(bench.POSITIVE) + [False] * len(bench.NEGATIVE)
    right = [s == e for s, e in zip(said, expected, strict=True)]
    assert hits == sum(right)
    assert [line[0] == "✓" for line in lines[:polar]] == right
    # A factual sentence passes when the model stays unsure: 30-70% positive.
    unsure = [0.3 <= p["positive"] <= 0.7 for p in classify(model, tokenizer, bench.NEUTRAL)]
    assert [line[0] == "✓" for line in lines[polar:]] == unsure
    with pytest.raises(SystemExit, match="not positive/negative"):
        bench.main(["--model", str(tiny_assets / "mlm")])


def test_logit_lens_bench_finds_where_an_answer_enters_the_top_5(tiny_assets, capsys):
    from bench import logit_lens as bench
    from roberta import RobertaForMaskedLM
    from roberta.lens import logit_lens
    from roberta.tokenizer import RobertaTokenizer

    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").eval()
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    first = "the movie was <mask> and the food was good ."
    answer = next(t.strip().lower() for t in logit_lens(model, tokenizer, first).layers[-1].tokens
                  if t.strip() and " " not in t.strip())  # one of its own final top 5 that
    # is a word ("⟨byte bd⟩", a stray byte's label, has a space)
    probes = {first: f"{answer} zzz", "the <mask> was good .": "zzz"}
    rows = bench.measure(model, tokenizer, probes)
    for row, (text, answers) in zip(rows, probes.items(), strict=True):
        lens = logit_lens(model, tokenizer, text)
        tops = [[t.strip().lower() for t in g.tokens] for g in lens.layers]
        entered = [i for i, top in enumerate(tops) if set(top) & set(answers.split())]
        assert row["accepted_from"] == (entered[0] if entered else None)
        assert row["answered_at_output"] == (bool(entered) and entered[-1] == len(tops) - 1)
    assert rows[0]["answered_at_output"]  # its own final answer was accepted
    assert rows[1]["accepted_from"] is None  # "zzz" is no token of this vocabulary
    print(bench.report(rows, model.config.num_hidden_layers))
    assert "- never: 1" in capsys.readouterr().out


def test_timelapse_bench_runs_the_default_run_with_and_without_snapshots(capsys):
    from bench import timelapse as bench

    threads = torch.get_num_threads()
    try:
        summary = bench.main(["--steps", "12", "--documents", "120"])
    finally:
        torch.set_num_threads(threads)  # the bench's one thread is for its own process
    out = capsys.readouterr().out
    assert "snapshots off:" in out and "snapshots on :" in out and "load average" in out
    assert summary["snapshots"] == 2  # step 0 and the last: the run has no evaluation before
    assert 0 < summary["bytes"] < 1_000_000 and summary["steps_per_s_off"] > 0
    assert 0 < summary["record_share"] < 1 and summary["slower_per_cpu_s"] < 1
