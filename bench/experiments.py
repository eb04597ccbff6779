"""The Experiments tab's one-click comparisons, measured: how long each takes at its defaults,
what it finds, and the seed-to-seed spread of that finding (which the tab's verdict uses).

    python bench/experiments.py                          # every comparison, seeds 0 1 2
    python bench/experiments.py --only init masking --seeds 0 1 2 3
    python bench/experiments.py --write                  # also store the spread for the app

Each run goes through the tab's own code path (roberta/ui/experiment_job.py: build_job, then the
PairedRun), from "Start pressed" with the data already prepared (the app caches it per process),
on one torch thread (the app's share of a 2-core host). For every evaluation of side A it
records both sides' accuracy where the input was <mask> and their validation loss; the
difference B − A per seed is what `--write` stores in roberta/experiment_spread.json, with this
command and the machine, so the verdict can say whether a run's difference is within the
seed-to-seed spread. The vocabulary comparison is timed but not judged (per-token figures of
different vocabularies measure different tasks), so it gets no spread.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from roberta.experiments import COMPARISONS, SPREAD_FILE  # noqa: E402
from roberta.ui.experiment_job import build_job  # noqa: E402


def run_once(comparison, seed: int) -> dict:
    prepare_start = time.perf_counter()
    build_job(comparison, seed)  # warms the per-process data caches (the app prewarms too)
    prepared = time.perf_counter() - prepare_start
    start = time.perf_counter()
    job = build_job(comparison, seed)
    evals: list[dict] = [{}, {}]
    first_apart = None
    for paired in job.pair.run():
        event = paired.event
        if event.kind == "eval":
            now = time.perf_counter() - start
            evals[paired.side][event.step] = {
                "seconds": round(now, 1), "mask_accuracy": event.metrics["val_mask_accuracy"],
                "accuracy": event.metrics["val_accuracy"], "loss": event.metrics["val_loss"]}
    seconds = time.perf_counter() - start
    a_steps = job.trainers[0].config.max_steps
    b_steps = job.trainers[1].config.max_steps
    differences = {}
    for step, a in evals[0].items():
        b_step = step * b_steps / a_steps
        b = evals[1].get(int(b_step)) if b_step == int(b_step) else None
        if b is not None:
            differences[step] = {"mask_accuracy": b["mask_accuracy"] - a["mask_accuracy"],
                                 "loss": b["loss"] - a["loss"], "seconds": b["seconds"]}
            if first_apart is None and abs(differences[step]["mask_accuracy"]) > 0.02:
                first_apart = b["seconds"]
    final_a, final_b = evals[0][max(evals[0])], evals[1][max(evals[1])]
    print(f"  {comparison.id} seed {seed}: {seconds:5.1f} s (data prepared in {prepared:.1f} s "
          f"before the clock); at <mask> {final_a['mask_accuracy']:.1%} vs "
          f"{final_b['mask_accuracy']:.1%}, loss {final_a['loss']:.3f} vs "
          f"{final_b['loss']:.3f}; first >2-point gap at {first_apart} s", flush=True)
    return {"seed": seed, "seconds": round(seconds, 1), "differences": differences,
            "final": [final_a, final_b], "first_apart_seconds": first_apart}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(COMPARISONS), default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true",
                        help=f"store the spread in {SPREAD_FILE.name}")
    parser.add_argument("--jsonl", help="append one JSON line per run here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    importlib.import_module("torch._dynamo")  # the first AdamW imports it; the app prewarms it
    command = "python bench/experiments.py " + " ".join(sys.argv[1:])
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"{args.threads} torch thread(s), load average at start "
               f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d')}")
    print(f"torch {torch.__version__}; {machine}", flush=True)
    spreads = json.loads(SPREAD_FILE.read_text()) if SPREAD_FILE.exists() else {}
    for cid in args.only or list(COMPARISONS):
        comparison = COMPARISONS[cid]
        seeds = args.seeds if comparison.same_validation else args.seeds[:1]
        results = [run_once(comparison, seed) for seed in seeds]
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                for r in results:
                    f.write(json.dumps({"comparison": cid, **r}) + "\n")
        final_diffs = [r["final"][1]["mask_accuracy"] - r["final"][0]["mask_accuracy"]
                       for r in results]
        sd = statistics.stdev(final_diffs) if len(final_diffs) > 1 else float("nan")
        print(f"{cid}: {statistics.median(r['seconds'] for r in results):.0f} s median; "
              f"B − A at <mask> at the end: {', '.join(f'{d * 100:+.1f}' for d in final_diffs)}"
              f" points (sd {sd * 100:.1f})", flush=True)
        if args.write and comparison.same_validation and len(results) > 1:
            steps = sorted(set.intersection(*(set(r["differences"]) for r in results)))
            spreads[cid] = {
                "max_steps": COMPARISONS[cid].sides()[0]["max_steps"],
                "seeds": [r["seed"] for r in results], "command": command, "machine": machine,
                "seconds": [r["seconds"] for r in results],
                "differences": {str(s): {m: [round(r["differences"][s][m], 5) for r in results]
                                         for m in ("mask_accuracy", "loss")} for s in steps}}
            SPREAD_FILE.write_text(json.dumps(spreads, indent=1) + "\n")


if __name__ == "__main__":
    main()
