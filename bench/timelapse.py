"""What a run's time-lapse costs (issue #34): the Train tab's default run with and without
snapshots, back to back in one process, and what the snapshots take.

    python bench/timelapse.py                      # ONE_MINUTE_RUN: 3,000 steps, eval every 50
    python bench/timelapse.py --rounds 2           # off, on, on, off: order evened out
    python bench/timelapse.py --steps 40 --documents 300      # a smoke test

Both runs are roberta.training.pretrain_settings.ONE_MINUTE_RUN through the Train tab's library
calls (new_model, Pretrainer(pretrain_config(settings))), same seed, the data prepared once; the
only difference is `snapshots` (0, or the tab's default). Steps/s is the whole run's (steps and
evaluations) over its wall time, and over the CPU time this process used; the recording's own
seconds are timed too. On a shared host the wall-clock ratio follows the other processes' load;
the other two figures much less. Targets: at most 5% fewer steps/s,
at most 60 snapshots and 20 MB.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from roberta.data import bundled_pretraining_corpus  # noqa: E402
from roberta.timelapse import TimeLapseRecorder  # noqa: E402
from roberta.training.engine import run_to_end  # noqa: E402
from roberta.training.pretrain_settings import (  # noqa: E402
    ONE_MINUTE_RUN,
    new_model,
    new_tokenizer,
    pretrain_config,
    pretraining_data,
    resolve,
)
from roberta.training.pretraining import Pretrainer  # noqa: E402


def timed_run(settings, tokenizer, data) -> dict:
    """One run from "Start pressed" (data ready): steps/s, and the snapshots' count, seconds
    and saved bytes."""
    record, spent = TimeLapseRecorder.record, [0.0]

    def timed_record(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return record(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t

    start, cpu = time.perf_counter(), time.process_time()
    trainer = Pretrainer(new_model(settings, tokenizer), tokenizer, data,
                         pretrain_config(settings))
    TimeLapseRecorder.record = timed_record
    try:
        last = run_to_end(trainer)
    finally:
        TimeLapseRecorder.record = record
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert last.kind == "done", last.message
    result = {"steps_per_s": trainer.step / seconds, "seconds": seconds, "snapshots": 0,
              "steps_per_cpu_s": trainer.step / cpu, "record_s": spent[0], "bytes": 0}
    if trainer.timelapse is not None:
        with tempfile.TemporaryDirectory() as folder:
            result.update(snapshots=len(trainer.timelapse.snapshots),
                          bytes=trainer.timelapse.save(folder).stat().st_size)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=ONE_MINUTE_RUN.max_steps)
    parser.add_argument("--rounds", type=int, default=1,
                        help="pairs of runs, alternating which goes first")
    parser.add_argument("--documents", type=int, help="the bundled corpus's first N documents")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the app's share of a 2-core host, and "
                             "two threads among other busy processes spin far slower)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    on, _ = resolve(dataclasses.replace(ONE_MINUTE_RUN, max_steps=args.steps))
    off = dataclasses.replace(on, snapshots=0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.2f}; {on.size}, {on.max_steps} steps, eval every "
          f"{on.eval_every}, snapshots {on.snapshots}", flush=True)
    texts = bundled_pretraining_corpus()[:args.documents]
    tokenizer = new_tokenizer(on, texts)
    data = pretraining_data(on, texts, tokenizer)
    runs = {"off": [], "on": []}
    for r in range(args.rounds):
        for name in (("off", "on") if r % 2 == 0 else ("on", "off")):
            runs[name].append(got := timed_run(on if name == "on" else off, tokenizer, data))
            print(f"  snapshots {name:3}: {got['steps_per_s']:.1f} steps/s ({got['seconds']:.1f}"
                  f" s), {got['steps_per_cpu_s']:.1f} per CPU second, {got['snapshots']} "
                  f"snapshots, {got['bytes'] / 1e6:.2f} MB, recording {got['record_s']:.2f} s; "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)

    def median(key: str, name: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    summary = {"steps_per_s_off": median("steps_per_s", "off"),
               "steps_per_s_on": median("steps_per_s", "on"),
               "slower": 1 - median("steps_per_s", "on") / median("steps_per_s", "off"),
               "slower_per_cpu_s": 1 - median("steps_per_cpu_s", "on") /
               median("steps_per_cpu_s", "off"),
               "record_share": statistics.median(r["record_s"] / r["seconds"]
                                                 for r in runs["on"]),
               "snapshots": runs["on"][-1]["snapshots"], "bytes": runs["on"][-1]["bytes"]}
    print(f"with snapshots {summary['slower']:+.1%} slower ({summary['steps_per_s_on']:.1f} vs "
          f"{summary['steps_per_s_off']:.1f} steps/s), {summary['slower_per_cpu_s']:+.1%} per "
          f"CPU second; recording took {summary['record_share']:.1%} of the run [target <= 5%];"
          f" {summary['snapshots']} snapshots [<= 60], {summary['bytes'] / 1e6:.2f} MB "
          f"[<= 20 MB]; load average {os.getloadavg()[0]:.2f}")
    return summary


if __name__ == "__main__":
    main()
