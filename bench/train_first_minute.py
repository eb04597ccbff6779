"""What a workshop room sees in the Train tab's first minute, measured without the browser.

Runs the Train tab's default settings (roberta.ui.pretrain_job.PretrainSettings) through the
same code path as the tab, from a cold process: corpus, BPE tokenizer, packed data (the app
caches and prewarms these), then the clock starts as if Start had been pressed: model, trainer,
first loss point, evaluations. Prints one line per evaluation and a summary:

    python bench/train_first_minute.py [--seconds 60] [--steps N] [--lr X] [--warmup N] ...

The summary's "accuracy at 60 s" is the last evaluation finished within the first 60 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from roberta.train import Pretrainer  # noqa: E402
from roberta.ui.pretrain_job import (  # noqa: E402
    PretrainSettings,
    build_model,
    get_data,
    get_tokenizer,
    load_corpus,
    pretrain_config,
    validate,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the window to report")
    parser.add_argument("--run-on", action="store_true",
                        help="train to the last step instead of stopping after the window")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    for field in dataclasses.fields(PretrainSettings):
        if field.type in ("int", "float", "str", "bool") and field.name != "pasted_text":
            kind = {"int": int, "float": float, "str": str, "bool": int}[field.type]
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("seconds", "run_on", "threads") and v is not None}
    settings, warnings = validate(PretrainSettings(**overrides))
    for warning in warnings:
        print("warning:", warning)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{load:.2f}; settings: {settings}")

    t = time.perf_counter()
    corpus = load_corpus(settings)
    key, tokenizer = get_tokenizer(settings, corpus, None)
    t_tok = time.perf_counter()
    data = get_data(settings, corpus, key, tokenizer)
    t_data = time.perf_counter()
    print(f"data preparation (cached per process in the app): tokenizer {t_tok - t:.1f} s, "
          f"tokenize + pack {t_data - t_tok:.1f} s; {len(data.train):,} training sequences")

    importlib.import_module("torch._dynamo")  # the first AdamW imports it; the app prewarms it

    start = time.perf_counter()  # "Start" pressed, data cached
    trainer = Pretrainer(build_model(settings, tokenizer), tokenizer, data,
                         pretrain_config(settings))
    unigram = trainer.unigram_baseline()["accuracy"]
    first_loss = None
    at_window = None
    best = 0.0
    for event in trainer.run():
        now = time.perf_counter() - start
        if event.kind == "step" and first_loss is None:
            first_loss = now
        if event.kind == "eval":
            accuracy = event.metrics["val_accuracy"]
            best = max(best, accuracy)
            if now <= args.seconds:
                at_window = (event.step, now, accuracy)
            guesses = [p.predictions[0].candidates[0].token.strip() for p in event.probes]
            print(f"{now:6.1f} s  step {event.step:5d}  val_acc {accuracy:6.1%}  at <mask> "
                  f"{event.metrics['val_mask_accuracy']:6.1%}  "
                  f"val_loss {event.metrics['val_loss']:.3f}  guesses {guesses}", flush=True)
        if now > args.seconds + 1 and not args.run_on:
            trainer.stop()  # the window is over: do not spend the shared CPU on the rest
    total = time.perf_counter() - start
    print(f"\nunigram baseline {unigram:.1%}; first loss point {first_loss:.2f} s after Start; "
          f"{trainer.step} steps in {total:.1f} s ({trainer.step / total:.1f} steps/s)")
    if at_window:
        step, when, accuracy = at_window
        print(f"accuracy at {args.seconds:.0f} s: {accuracy:.1%} (evaluation at step {step}, "
              f"{when:.1f} s); best {best:.1%}; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
