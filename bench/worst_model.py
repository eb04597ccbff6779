"""Another visitor's fill-mask while the worst model the import budget accepts serves four
requests at once (issue #31's target: their p95 under 2 s).

    nice -n 5 python -m bench.worst_model     # ~3 minutes on 2 shared cores (not 19: the
                                              # lane's threads run 10 lower, at most 19)
    python -m bench.worst_model --quick                      # a small budget: a smoke test

1. The worst accepted masked LM is found from the host's import budget (roberta.ui.limits, the
   defaults unless the environment sets them): of a grid of shapes (layers up to the cap,
   positions up to 4,098, widths and head counts), the one `import_checks.inference_cost` says
   costs the most per window while `check_budget` and the parameter cap still accept it.
2. It is written as a visitor would upload it: config.json, model.safetensors (zeros: the
   computation costs the same as with trained weights, and the zip stays under the upload cap)
   and the embedded tokenizer, zipped.
3. The app starts in its own process (one torch thread, as bench/load.py and
   bench/repeat_runs.py start it). A "heavy" client imports the zip through `/import_checkpoint`
   and keeps four `/fill_mask` requests going at once on it, each a text that fills the model's
   whole window — the four slots Gradio gives that endpoint.
4. Meanwhile a second client (another visitor) calls `/fill_mask` on the embedded model, one
   call after another, and its latencies are recorded (also before the load, alone).

The model is a large one (roberta.ui.heavy_lane): its requests take turns in their own lane, so
of the four, one runs, one waits and the others are refused at once ("The server is busy with
large models…"); the heavy client sends the next as soon as one ends or is refused, as a hostile
client would. Refusals are counted, not taken for errors.

Printed as `key=value` lines: the model's shape and estimated cost, the heavy requests' count,
refusals and mean time, the other visitor's p50/p95/max alone and under the load, and the host's
load average at the start and the end (the figures move with it: compare on one machine).

`--classifier` measures the other half of issue #31's target instead, in this process: the
classifier the import budget accepts that costs the most per `/classify` (the Sentiment tab's
handler: 32 windows of a long text, attributions and the faithfulness check), its wall and CPU
time on one thread against the 30 s target.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from bench.load import (
    MASKED,
    Tally,
    free_port,
    percentile,
    start_server,
    stop_server,
    wait_until_up,
)
from bench.repeat_runs import PATIENT_SERVER, line

HEAVY_REQUESTS = 4  # what filled /fill_mask's four slots before the lane
P95_TARGET_S = 2.0
CPU_TARGET_S = 30.0
LANE_REFUSALS = ("busy with large models", "requests on a large model are still running")
QUICK_GFLOPS = 0.5  # --quick: the server's budget per window, so the "worst" model is small
TOKENIZER_FILES = {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json"}


def candidate_shapes(max_layers: int):
    """Shapes a hostile visitor would try: deep, long, many narrow heads."""
    for layers in sorted({1, 2, 4, 6, 12, 24, max_layers}):
        if layers > max_layers:
            continue
        for positions in (130, 258, 514, 1026, 2050, 4098):
            for hidden in (32, 64, 128, 192, 256, 384, 512, 768, 1024):
                for head_size in (1, 4, 16, 64):
                    if hidden % head_size:
                        continue
                    yield dict(num_hidden_layers=layers, max_position_embeddings=positions,
                               hidden_size=hidden, num_attention_heads=hidden // head_size,
                               intermediate_size=4 * hidden)


def worst_accepted_config(vocab_size: int, task: str = "mlm", layers: int | None = None):
    """The accepted config with the highest estimated cost per request (a masked LM's window, a
    classifier's long /classify; ties: more heads, then more positions), with its cost, under
    the host's budget as the server reads it; of `layers` layers when given."""
    from roberta.config import RobertaConfig
    from roberta.import_checks import ImportRefused, check_budget, parameter_count
    from roberta.ui.limits import current_limits

    limits = current_limits()
    budget = limits.import_budget()
    best = None
    for shape in candidate_shapes(budget.max_layers):
        if layers is not None and shape["num_hidden_layers"] != layers:
            continue
        try:
            config = RobertaConfig(vocab_size=vocab_size, **shape)
            cost = check_budget(config, task, budget)
        except (ImportRefused, ValueError):
            continue
        if parameter_count(config, task) > limits.max_parameters:
            continue
        key = (cost.request_flops, config.num_attention_heads, config.max_position_embeddings)
        if best is None or key > best[0]:
            best = (key, config, cost)
    if best is None:
        raise SystemExit("no shape on the grid fits the host's import budget")
    return best[1], best[2]


def worst_model_zip(target: Path):
    """The worst accepted model, zipped with the embedded tokenizer; (zip, config, cost)."""
    import torch
    from safetensors.torch import save_file

    from roberta.defaults import default_model_dir
    from roberta.hub import TIED_KEYS
    from roberta.model import RobertaForMaskedLM
    from roberta.tokenizer import RobertaTokenizer

    tokenizer_dir = default_model_dir("mlm")
    tokenizer = RobertaTokenizer.from_pretrained(tokenizer_dir)
    config, cost = worst_accepted_config(tokenizer.vocab_size)
    with torch.device("meta"):  # shapes only: the weights are written as zeros, never built
        shapes = {name: t.shape for name, t in RobertaForMaskedLM(config).state_dict().items()}
    folder = target.with_suffix("")
    folder.mkdir(parents=True)
    saved = {**config.to_dict(), "architectures": ["RobertaForMaskedLM"]}
    (folder / "config.json").write_text(json.dumps(saved, indent=2))
    save_file({name: torch.zeros(shape) for name, shape in shapes.items()
               if name not in TIED_KEYS},  # tied copies are saved once, as save_pretrained does
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, file.name)
        for file in sorted(tokenizer_dir.iterdir()):
            if file.name in TOKENIZER_FILES:
                archive.write(file, file.name)
    shutil.rmtree(folder)
    return target, config, cost


def window_text(tokens: int) -> str:
    """A text of about `tokens` tokens with one <mask> near its end: the model's whole window."""
    return " ".join(["the"] * max(tokens - 8, 1)) + " and the <mask> was good."


def load_average() -> str:
    import os

    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def lane_refusals(tally: Tally) -> tuple[int, list[str]]:
    """(refusals by the large-model lane, the other errors) of a tally."""
    refused = [e for e in tally.errors if any(r in e for r in LANE_REFUSALS)]
    return len(refused), [e for e in tally.errors if e not in refused]


def run(seconds: float, calls_alone: int, threads: int, quick: bool, say=print) -> dict:
    import os

    from gradio_client import Client, handle_file

    from roberta.ui.limits import ENV_HEAVY_GFLOPS, ENV_MAX_IMPORT_GFLOPS

    temp = Path(tempfile.mkdtemp(prefix="roberta-worst-"))
    (temp / "server").mkdir()
    before = {name: os.environ.get(name) for name in (ENV_MAX_IMPORT_GFLOPS, ENV_HEAVY_GFLOPS)}
    if quick:  # the server (started below, with this environment) and this script agree; the
        # small "worst" model still counts as a large one, so its requests take the lane
        os.environ[ENV_MAX_IMPORT_GFLOPS] = str(QUICK_GFLOPS)
        os.environ[ENV_HEAVY_GFLOPS] = str(QUICK_GFLOPS / 10)
    upload, config, cost = worst_model_zip(temp / "worst.zip")
    say(line("model", layers=config.num_hidden_layers, hidden=config.hidden_size,
             heads=config.num_attention_heads, positions=config.max_position_embeddings,
             window_gflops=cost.window_gflops, peak_mb=cost.peak_bytes / 2**20,
             zip_mb=upload.stat().st_size / 1e6))
    port, log = free_port(), temp / "server.log"
    url = f"http://127.0.0.1:{port}/"
    server = start_server(port, temp / "server", threads, log, PATIENT_SERVER)
    heavy, light_alone, light_loaded = Tally(), Tally(), Tally()
    load_start = load_average()
    try:
        wait_until_up(url, server, log)
        visitor = Client(url, verbose=False)
        visitor.predict(MASKED, api_name="/fill_mask")  # warm-up
        for _ in range(calls_alone):
            light_alone.record(lambda: visitor.predict(MASKED, api_name="/fill_mask"))
        hostile = Client(url, verbose=False)
        hostile.predict(handle_file(str(upload)), api_name="/import_checkpoint")
        name = f"Imported: {upload.stem}"
        text = window_text(config.max_position_embeddings - 2)
        hostile.predict(text, name, api_name="/fill_mask")  # its first call, not timed
        heavy_alone = Tally()  # one heavy request with nothing else running: its own cost
        heavy_alone.record(lambda: hostile.predict(text, name, api_name="/fill_mask"))
        started = threading.Event()
        end_at = time.monotonic() + seconds

        def keep_busy():
            started.set()
            while time.monotonic() < end_at:
                heavy.record(lambda: hostile.predict(text, name, api_name="/fill_mask"))

        workers = [threading.Thread(target=keep_busy) for _ in range(HEAVY_REQUESTS)]
        for worker in workers:
            worker.start()
        started.wait()
        time.sleep(1.0)  # all four are in flight
        while time.monotonic() < end_at:
            light_loaded.record(lambda: visitor.predict(MASKED, api_name="/fill_mask"))
        for worker in workers:
            worker.join()
        visitor.close()
        hostile.close()
        tracebacks = log.read_text(errors="replace").count("Traceback")
        load_end = load_average()
    finally:
        stop_server(server, temp)
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    refused, heavy_errors = lane_refusals(heavy)
    errors = heavy_errors + heavy_alone.errors + light_alone.errors + light_loaded.errors
    result = {
        "heavy_alone_s": heavy_alone.seconds[0] if heavy_alone.seconds else float("nan"),
        "heavy_calls": len(heavy.seconds), "heavy_mean_s": sum(heavy.seconds) / max(
            len(heavy.seconds), 1), "heavy_refused": refused,
        "alone_p50_s": percentile(light_alone.seconds, 0.5),
        "alone_p95_s": percentile(light_alone.seconds, 0.95),
        "loaded_calls": len(light_loaded.seconds),
        "loaded_p50_s": percentile(light_loaded.seconds, 0.5),
        "loaded_p95_s": percentile(light_loaded.seconds, 0.95),
        "loaded_max_s": max(light_loaded.seconds, default=float("nan")),
        "errors": len(errors), "tracebacks": tracebacks,
        "load_start": load_start, "load_end": load_end,
    }
    result["target"] = "met" if result["loaded_p95_s"] < P95_TARGET_S else "MISSED"
    say(line("heavy", alone_s=result["heavy_alone_s"], requests_at_once=HEAVY_REQUESTS,
             calls=result["heavy_calls"], refused=refused, mean_s=result["heavy_mean_s"]))
    say(line("visitor", alone_p50_s=result["alone_p50_s"], alone_p95_s=result["alone_p95_s"],
             calls=result["loaded_calls"], p50_s=result["loaded_p50_s"],
             p95_s=result["loaded_p95_s"], max_s=result["loaded_max_s"]))
    say(line("result", errors=result["errors"], tracebacks=result["tracebacks"],
             p95_target=result["target"], load_start=load_start, load_end=load_end))
    for message in sorted(set(errors))[:5]:
        say(f"# error: {message}")
    return result


def long_review(tokens: int) -> str:
    """A review of about `tokens` tokens (the embedded tokenizer reads these words whole)."""
    sentence = "The food was good and the service was slow but the room was nice. "
    return sentence * (tokens // 15 + 1)


def classifier_run(threads: int, say=print) -> dict:
    """The worst accepted classifier's /classify of a text filling every window it reads, timed
    through the Sentiment tab's handler in this process (wall and CPU seconds). The estimate
    counts every layer at every position, but a classifier's last layer computes only the <s>
    row, so the most costly by the estimate (one wide layer) is not the slowest: the worst
    accepted shape of each depth on the grid is timed, and the slowest reported."""
    from roberta.import_checks import ImportBudget
    from roberta.ui.limits import current_limits

    depths = sorted({shape["num_hidden_layers"]
                     for shape in candidate_shapes(current_limits().max_import_layers)})
    results = []
    for layers in depths:
        try:
            results.append(time_classify(threads, layers, say))
        except SystemExit:  # no shape of this depth fits the budget
            continue
    worst = max(results, key=lambda r: r["cpu_s"])
    say(line("slowest", layers=worst["layers"], cpu_s=worst["cpu_s"], wall_s=worst["wall_s"],
             cpu_target=worst["target"], budget_gflops=ImportBudget().max_request_gflops))
    return worst


def time_classify(threads: int, layers: int, say=print) -> dict:
    import time

    import torch

    from roberta.defaults import default_model_dir
    from roberta.inference import MAX_CLASSIFY_WINDOWS
    from roberta.model import RobertaForSequenceClassification
    from roberta.tokenizer import RobertaTokenizer
    from roberta.ui import registry
    from roberta.ui.sentiment_tab import classify_text

    torch.set_num_threads(threads)
    tokenizer = RobertaTokenizer.from_pretrained(default_model_dir("classifier"))
    config, cost = worst_accepted_config(tokenizer.vocab_size, "classifier", layers)
    say(line("classifier", layers=config.num_hidden_layers, hidden=config.hidden_size,
             heads=config.num_attention_heads, positions=config.max_position_embeddings,
             window_gflops=cost.window_gflops, request_gflops=cost.request_gflops,
             peak_mb=cost.peak_bytes / 2**20))
    torch.manual_seed(0)
    model = RobertaForSequenceClassification(config).eval()
    session: dict = {}
    name = "Imported: worst classifier"
    registry.add(session, registry.LoadedModel(name, "classifier", model, tokenizer, "bench"))
    text = long_review(MAX_CLASSIFY_WINDOWS * config.max_position_embeddings)
    load_start = load_average()
    wall, cpu = time.perf_counter(), time.process_time()
    classify_text(text, name, session)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {"layers": layers, "wall_s": wall, "cpu_s": cpu,
              "request_gflops": cost.request_gflops,
              "target": "met" if cpu < CPU_TARGET_S else "MISSED",
              "load_start": load_start, "load_end": load_average()}
    say(line("classify", threads=threads, wall_s=wall, cpu_s=cpu,
             gflop_per_cpu_s=cost.request_gflops / max(cpu, 1e-9),
             cpu_target=result["target"], load_start=load_start,
             load_end=result["load_end"]))
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.worst_model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, help="how long the load lasts (default 120; "
                                                 "--quick: 15)")
    p.add_argument("--calls-alone", type=int, help="the visitor's calls before the load "
                                                   "(default 20; --quick: 3)")
    p.add_argument("--quick", action="store_true",
                   help=f"a {QUICK_GFLOPS} GFLOP-per-window budget and a short load")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    p.add_argument("--classifier", action="store_true",
                   help="time the worst accepted classifier's /classify instead (in-process)")
    args = p.parse_args(argv)
    if args.classifier:
        return classifier_run(args.threads, say=lambda text: print(text, flush=True))
    seconds = args.seconds or (15 if args.quick else 120)
    calls_alone = args.calls_alone or (3 if args.quick else 20)
    if not 1 <= seconds <= 1800 or not 1 <= calls_alone <= 1000:
        p.error("--seconds must be 1-1800 and --calls-alone 1-1000: this is a bounded test")
    print(f"# {HEAVY_REQUESTS} fill-mask requests at once on the worst accepted model for "
          f"{seconds:.0f} s; another visitor's fill-mask on the embedded model meanwhile; "
          f"server: {args.threads} torch thread(s)", flush=True)
    return run(seconds, calls_alone, args.threads, args.quick,
               say=lambda text: print(text, flush=True))


if __name__ == "__main__":
    main()
