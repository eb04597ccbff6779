"""Another visitor's fill-mask while the worst model the import budget accepts serves four
requests at once (issue #31's target: their p95 under 2 s).

    nice -n 19 python -m bench.worst_model                   # ~3 minutes on 2 shared cores
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

Printed as `key=value` lines: the model's shape and estimated cost, the heavy requests' count
and mean time, and the other visitor's p50/p95/max alone and under the load.
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

HEAVY_REQUESTS = 4  # /fill_mask's concurrency limit: every slot busy
P95_TARGET_S = 2.0
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


def worst_accepted_config(vocab_size: int):
    """The accepted masked-LM config with the highest estimated cost per window (ties: more
    heads, then more positions), with its cost, under the host's budget as the server reads it."""
    from roberta.config import RobertaConfig
    from roberta.import_checks import ImportRefused, check_budget, parameter_count
    from roberta.ui.limits import current_limits

    limits = current_limits()
    budget = limits.import_budget()
    best = None
    for shape in candidate_shapes(budget.max_layers):
        try:
            config = RobertaConfig(vocab_size=vocab_size, **shape)
            cost = check_budget(config, "mlm", budget)
        except (ImportRefused, ValueError):
            continue
        if parameter_count(config, "mlm") > limits.max_parameters:
            continue
        key = (cost.window_flops, config.num_attention_heads, config.max_position_embeddings)
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


def run(seconds: float, calls_alone: int, threads: int, quick: bool, say=print) -> dict:
    import os

    from gradio_client import Client, handle_file

    from roberta.ui.limits import ENV_MAX_IMPORT_GFLOPS

    temp = Path(tempfile.mkdtemp(prefix="roberta-worst-"))
    (temp / "server").mkdir()
    budget_before = os.environ.get(ENV_MAX_IMPORT_GFLOPS)
    if quick:  # the server (started below, with this environment) and this script agree
        os.environ[ENV_MAX_IMPORT_GFLOPS] = str(QUICK_GFLOPS)
    upload, config, cost = worst_model_zip(temp / "worst.zip")
    say(line("model", layers=config.num_hidden_layers, hidden=config.hidden_size,
             heads=config.num_attention_heads, positions=config.max_position_embeddings,
             window_gflops=cost.window_gflops, peak_mb=cost.peak_bytes / 2**20,
             zip_mb=upload.stat().st_size / 1e6))
    port, log = free_port(), temp / "server.log"
    url = f"http://127.0.0.1:{port}/"
    server = start_server(port, temp / "server", threads, log, PATIENT_SERVER)
    heavy, light_alone, light_loaded = Tally(), Tally(), Tally()
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
    finally:
        stop_server(server, temp)
        if budget_before is None:
            os.environ.pop(ENV_MAX_IMPORT_GFLOPS, None)
        else:
            os.environ[ENV_MAX_IMPORT_GFLOPS] = budget_before
    result = {
        "heavy_alone_s": heavy_alone.seconds[0] if heavy_alone.seconds else float("nan"),
        "heavy_calls": len(heavy.seconds), "heavy_mean_s": sum(heavy.seconds) / max(
            len(heavy.seconds), 1),
        "alone_p50_s": percentile(light_alone.seconds, 0.5),
        "alone_p95_s": percentile(light_alone.seconds, 0.95),
        "loaded_calls": len(light_loaded.seconds),
        "loaded_p50_s": percentile(light_loaded.seconds, 0.5),
        "loaded_p95_s": percentile(light_loaded.seconds, 0.95),
        "loaded_max_s": max(light_loaded.seconds, default=float("nan")),
        "errors": len(heavy.errors + heavy_alone.errors + light_alone.errors
                      + light_loaded.errors),
        "tracebacks": tracebacks,
    }
    result["target"] = "met" if result["loaded_p95_s"] < P95_TARGET_S else "MISSED"
    say(line("heavy", alone_s=result["heavy_alone_s"], requests_at_once=HEAVY_REQUESTS,
             calls=result["heavy_calls"], mean_s=result["heavy_mean_s"]))
    say(line("visitor", alone_p50_s=result["alone_p50_s"], alone_p95_s=result["alone_p95_s"],
             calls=result["loaded_calls"], p50_s=result["loaded_p50_s"],
             p95_s=result["loaded_p95_s"], max_s=result["loaded_max_s"]))
    say(line("result", errors=result["errors"], tracebacks=result["tracebacks"],
             p95_target=result["target"]))
    for message in sorted(set(heavy.errors + heavy_alone.errors + light_alone.errors
                              + light_loaded.errors))[:5]:
        say(f"# error: {message}")
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
    args = p.parse_args(argv)
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
