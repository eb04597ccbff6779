"""Past the masked-LM plateau? Runs the Train tab's code path for several seeds and reports
accuracy where the input was <mask>, the overall masked-token accuracy and the probes' guesses.

    python bench/plateau.py --seeds 0 1 2 3 4 --seconds 60               # the tab's default
    python bench/plateau.py --init roberta --seeds 0 1 2                  # RoBERTa's own init
    python bench/plateau.py --size tiny --lr 1e-3 --offsets "-1,1;-2,2"   # a variant
    python bench/plateau.py ... --jsonl results.jsonl                     # one line per seed

Every Train-tab setting is a flag (`--size`, `--lr` ...); the structured start's shape
(roberta/init.py: StructuredInit) is set with --dims, --amplitude, --peak, --offsets, --copy.
Each seed runs from "Start pressed" (data prepared and cached, as the app does at start-up) until
--seconds or its last step; the summary is the median over seeds of the last evaluation within
the window. Every figure in docs/measurements.md's plateau section comes from this script.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from roberta.data import bundled_pretraining_corpus  # noqa: E402
from roberta.init import StructuredInit, structured_init_  # noqa: E402
from roberta.training.pretrain_settings import (  # noqa: E402
    PretrainSettings,
    new_model,
    new_tokenizer,
    pretrain_config,
    pretraining_data,
    resolve,
)
from roberta.training.pretraining import Pretrainer  # noqa: E402

SHORT = {"learning_rate": "lr", "max_steps": "steps", "batch_size": "batch",
         "warmup_steps": "warmup"}


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every plain Train-tab setting: --size, --learning-rate (--lr), --seed ..."""
    for field in dataclasses.fields(PretrainSettings):
        kind = {"int": int, "float": float, "str": str, "bool": int,
                "float | None": float}.get(field.type)
        if kind and field.name != "pasted_text":
            names = [f"--{field.name.replace('_', '-')}"]
            if field.name in SHORT:
                names.append(f"--{SHORT[field.name]}")
            parser.add_argument(*names, dest=field.name, type=kind, default=None)


def settings_from_flags(args: argparse.Namespace) -> PretrainSettings:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainSettings)
                 if getattr(args, f.name, None) is not None}
    settings, warnings = resolve(PretrainSettings(**overrides))
    for warning in warnings:
        print("warning:", warning)
    return settings


def parse_offsets(text: str) -> tuple[tuple[int, ...], ...]:
    """"-1,1;-2,2" -> ((-1, 1), (-2, 2)): one group of head offsets per layer."""
    return tuple(tuple(int(x) for x in group.split(",") if x.strip())
                 for group in text.split(";"))


def run_seed(settings: PretrainSettings, spec: StructuredInit | None, seconds: float,
             tokenizer, data, run_on: bool = False) -> dict:
    """One run from "Start pressed" (data ready): the evaluations, and the last one within
    `seconds` ("at_window"). Stops after the window unless `run_on`."""
    start = time.perf_counter()
    if spec is None:  # the settings' own start, as the Train tab builds it
        model = new_model(settings, tokenizer)
    else:  # a variant of the structured start
        model = new_model(dataclasses.replace(settings, init="roberta"), tokenizer)
        structured_init_(model, spec)
    trainer = Pretrainer(model, tokenizer, data, pretrain_config(settings))
    unigram = trainer.unigram_baseline()["accuracy"]
    curve, at_window = [], None
    for event in trainer.run():
        now = time.perf_counter() - start
        if event.kind == "eval":
            m = event.metrics
            guesses = [p.predictions[0].candidates[0].token.strip() for p in event.probes]
            point = {"seconds": round(now, 1), "step": event.step,
                     "mask_accuracy": m["val_mask_accuracy"], "accuracy": m["val_accuracy"],
                     "loss": m["val_loss"], "guesses": guesses}
            curve.append(point)
            if now <= seconds:
                at_window = point
            print(f"  seed {settings.seed} {now:6.1f} s step {event.step:5d}  at <mask> "
                  f"{m['val_mask_accuracy']:6.1%}  overall {m['val_accuracy']:6.1%}  loss "
                  f"{m['val_loss']:.3f}  {guesses}", flush=True)
        if now > seconds and not run_on:
            trainer.stop()  # the window is over: do not spend the shared CPU on the rest
    return {"seed": settings.seed, "unigram": unigram, "at_window": at_window or curve[0],
            "steps": trainer.step, "seconds": round(time.perf_counter() - start, 1),
            "curve": curve}


def summarise(results: list[dict], seconds: float, label: str) -> None:
    mask = [r["at_window"]["mask_accuracy"] for r in results]
    overall = [r["at_window"]["accuracy"] for r in results]
    print(f"\n{label}: at {seconds:.0f} s, median of {len(results)} seeds: at <mask> "
          f"{statistics.median(mask):.1%} (each: {', '.join(f'{m:.1%}' for m in mask)}), "
          f"overall {statistics.median(overall):.1%} (each: "
          f"{', '.join(f'{m:.1%}' for m in overall)}); unigram baseline "
          f"{results[0]['unigram']:.1%}")
    for r in results:
        print(f"  seed {r['seed']}: evaluation at step {r['at_window']['step']} "
              f"({r['at_window']['seconds']} s), {r['steps']} steps in {r['seconds']} s; "
              f"first guesses {r['at_window']['guesses']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--jsonl", help="append one JSON line per seed here")
    parser.add_argument("--label", default="", help="a name for this variant in the output")
    spec_group = parser.add_argument_group("structured start (with --init structured)")
    defaults = StructuredInit()
    spec_group.add_argument("--dims", type=int, default=defaults.position_dims)
    spec_group.add_argument("--amplitude", type=float, default=defaults.amplitude)
    spec_group.add_argument("--peak", type=float, default=defaults.peak_logit)
    spec_group.add_argument("--offsets", default="-1,1", help='per layer, e.g. "-1,1;-2,2"')
    spec_group.add_argument("--copy", type=float, default=defaults.copy_scale)
    add_settings_flags(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = settings_from_flags(args)
    spec = None
    if settings.init == "structured":
        spec = StructuredInit(position_dims=args.dims, amplitude=args.amplitude,
                              peak_logit=args.peak, offsets=parse_offsets(args.offsets),
                              copy_scale=args.copy)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load "
          f"{os.getloadavg()[0]:.2f}; {settings.size}, init {settings.init}, lr "
          f"{settings.learning_rate:g}, {settings.max_steps} steps, batch {settings.batch_size}, "
          f"hold positions {settings.hold_positions_steps}; {spec}", flush=True)
    texts = bundled_pretraining_corpus()
    tokenizer = new_tokenizer(settings, texts)
    data = pretraining_data(settings, texts, tokenizer)
    importlib.import_module("torch._dynamo")  # the first AdamW imports it; the app prewarms it

    results = []
    for seed in args.seeds:
        result = run_seed(dataclasses.replace(settings, seed=seed), spec, args.seconds,
                          tokenizer, data)
        result.update(label=args.label, size=settings.size, init=settings.init,
                      lr=settings.learning_rate, max_steps=settings.max_steps,
                      threads=torch.get_num_threads(), spec=dataclasses.asdict(spec) if spec
                      else None, hold_positions_steps=settings.hold_positions_steps)
        results.append(result)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(result) + "\n")
    summarise(results, args.seconds, args.label or settings.init)


if __name__ == "__main__":
    main()
