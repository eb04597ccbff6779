"""What a workshop room sees in the Train tab's first minute, measured without the browser.

Runs the Train tab's default settings (roberta.training.pretrain_settings.ONE_MINUTE_RUN)
through the same library calls as the tab, from a cold process: corpus, BPE tokenizer, packed
data (the app caches and prewarms these), then for each seed the clock starts as if Start had
been pressed: model, trainer, evaluations. Prints one line per evaluation and a summary, the
median over the seeds of the last evaluation finished within the window:

    python bench/train_first_minute.py [--seconds 60] [--seeds 0 1 2 3 4] [--init roberta] ...

The targets (docs/measurements.md, "The Train tab's first minute"): at 60 s, accuracy where
the input was <mask> >= 15%, overall masked-token accuracy >= 20%, and probe guesses that are
not all one token.
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

from bench.plateau import add_settings_flags, run_seed, settings_from_flags, summarise  # noqa: E402
from roberta.data import bundled_pretraining_corpus  # noqa: E402
from roberta.training.devices import cpu_supports_bf16  # noqa: E402
from roberta.training.pretrain_settings import new_tokenizer, pretraining_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the window to report")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--run-on", action="store_true",
                        help="train to the last step instead of stopping after the window")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    add_settings_flags(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = settings_from_flags(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: "
          f"{cpu_supports_bf16()}, load average {os.getloadavg()[0]:.2f}; settings: {settings}")

    t = time.perf_counter()
    texts = bundled_pretraining_corpus()
    tokenizer = new_tokenizer(settings, texts)
    t_tok = time.perf_counter()
    data = pretraining_data(settings, texts, tokenizer)
    t_data = time.perf_counter()
    print(f"data preparation (cached per process in the app): tokenizer {t_tok - t:.1f} s, "
          f"tokenize + pack {t_data - t_tok:.1f} s; {len(data.train):,} training sequences")
    importlib.import_module("torch._dynamo")  # the first AdamW imports it; the app prewarms it

    results = [run_seed(dataclasses.replace(settings, seed=seed), None, args.seconds,
                        tokenizer, data, run_on=args.run_on) for seed in args.seeds]
    summarise(results, args.seconds, f"{settings.size}, {settings.init} start")
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
