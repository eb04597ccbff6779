"""`--resume` continues the same run (issue #31): a flag that would change it is refused by
name, a forgotten one takes the checkpoint's value, and the metrics log has each step once."""

from __future__ import annotations

import json

import pytest
from test_train import run_cli
from tiny_assets import tiny_corpus

FLAGS = ["pretrain", "--preset", "nano", "--max-steps", "8", "--checkpoint-every", "4",
         "--eval-every", "1000", "--seq-length", "32", "--batch-size", "4", "--vocab-size",
         "300", "--precision", "fp32", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 8-step pretraining run with --seed 3 (its checkpoint in `out`)."""
    root = tmp_path_factory.mktemp("resume")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(tiny_corpus(200)))
    out = root / "run"
    done = run_cli(*FLAGS, "--corpus", corpus, "--seed", "3", "--out", out)
    assert done.returncode == 0, done.stderr[-2000:]
    return corpus, out


def saved_config(out) -> dict:
    return json.loads((out / "trainer_state.json").read_text())["config"]


def test_a_different_seed_or_setting_is_refused_by_name(run):
    corpus, out = run
    before = (out / "trainer_state.json").read_text()
    other_seed = run_cli(*FLAGS, "--corpus", corpus, "--seed", "4", "--resume", "--out", out)
    assert other_seed.returncode == 2
    assert "--seed 4 (the checkpoint's: 3)" in other_seed.stderr
    assert len(other_seed.stderr.strip().splitlines()) == 1, other_seed.stderr
    several = run_cli(*FLAGS, "--corpus", corpus, "--seed", "3", "--lr", "0.01",
                      "--mask-rate", "0.3", "--batch-size", "8", "--resume", "--out", out)
    assert several.returncode == 2
    for said in ("--lr 0.01", "--mask-rate 0.3", "--batch-size 8 (the checkpoint's: 4)"):
        assert said in several.stderr, several.stderr
    assert "--seed" not in several.stderr  # the same seed given again is fine
    assert (out / "trainer_state.json").read_text() == before  # nothing ran


def test_a_forgotten_seed_is_the_checkpoints_and_each_step_is_logged_once(run):
    corpus, out = run
    log = out.with_name(f"{out.name}.metrics.jsonl")
    # A run killed after its step-8 checkpoint had logged steps 9 and 10, and half a line.
    with open(log, "a") as lines:
        for step in (9, 10):
            lines.write(json.dumps({"kind": "step", "step": step, "loss": -1.0}) + "\n")
        lines.write('{"kind": "step", "st')
    flags = [f for f in FLAGS if f not in ("8",)]
    flags[flags.index("--max-steps") + 1:flags.index("--max-steps") + 1] = ["12"]
    # No --seed and no --corpus: the checkpoint's seed and the run record's corpus (the
    # default, the bundled corpus, would be refused as another text).
    resumed = run_cli(*flags, "--resume", "--out", out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert saved_config(out)["seed"] == 3 and saved_config(out)["max_steps"] == 12
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "step"]
    assert steps == list(range(1, 13))  # each step once, in order
    assert all(r["loss"] > 0 for r in rows if r["kind"] == "step")  # the replayed ones gone
    assert [r["step"] for r in rows if r["kind"] == "start"] == [0, 8]


def test_a_different_corpus_tokenizer_or_shape_is_refused_by_name(run, tmp_path):
    corpus, out = run
    before = (out / "trainer_state.json").read_text()
    other = tmp_path / "other.txt"
    other.write_text("\n\n".join(tiny_corpus(200, seed=1)))
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    refused = run_cli(*FLAGS, "--corpus", other, "--tokenizer", tokenizer, "--layers", "3",
                      "--preset", "tiny", "--start", "roberta", "--resume", "--out", out)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    for said in (f"--corpus {other} (not the text the checkpoint was trained on, {corpus})",
                 f"--tokenizer {tokenizer.resolve()} (the checkpoint's: not given)",
                 "--layers 3 (the checkpoint's: not given)",
                 "--preset tiny (the checkpoint's: nano)",
                 "--start roberta (the checkpoint's: structured)"):
        assert said in refused.stderr, (said, refused.stderr)
    # FLAGS gives --preset nano again: the run's own value is not a change.
    alone = run_cli(*FLAGS, "--corpus", other, "--resume", "--out", out)
    assert alone.returncode == 2 and "--corpus" in alone.stderr
    assert "--preset" not in alone.stderr and "--seed" not in alone.stderr
    assert (out / "trainer_state.json").read_text() == before  # nothing ran


def test_the_run_record_keeps_what_trainer_state_does_not(run):
    from roberta.resume import read_run_record, run_record_path, text_fingerprint
    from roberta.uploads import read_text_file

    corpus, out = run
    assert run_record_path(out) == out.with_name(f"{out.name}.run.json")
    record = read_run_record(out)
    assert record["corpus"] == str(corpus) and record["preset"] == "nano"
    assert record["start"] == "structured" and record["tokenizer"] is None
    assert record["corpus_text"] == text_fingerprint(read_text_file(corpus))


def test_the_same_text_under_another_path_is_the_same_run():
    from roberta.resume import _run_flag_changes, text_fingerprint

    record = {"corpus": "/data/a.txt", "corpus_text": text_fingerprint(["one", "two"]),
              "layers": None, "preset": "nano"}
    same = {"corpus": "./copy-of-a.txt", "corpus_text": text_fingerprint(["one", "two"]),
            "preset": "nano", "layers": None}
    assert _run_flag_changes(record, same) == []
    edited = {**same, "corpus_text": text_fingerprint(["one", "three"])}
    assert _run_flag_changes(record, edited) == [
        "--corpus ./copy-of-a.txt (not the text the checkpoint was trained on, /data/a.txt)"]
    assert text_fingerprint(["ab", "c"]) != text_fingerprint(["a", "bc"])  # documents count
    assert _run_flag_changes({}, same) == []  # a checkpoint from before run records
