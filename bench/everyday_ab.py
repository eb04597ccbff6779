"""Which phase 2 teaches everyday English best? (issue 28: the weighting and the vocabulary)

Continues the shipped phase-1 masked LM (assets/mlm, or --model) for `--steps` steps of the
recipe's phase 2 (roberta/recipe_everyday.py) under each variant, same seed, same held-out
documents, and reports for each: `<mask>`-only accuracy on the held-out documents of IMDB, of the
other phase-1 sources and of the everyday text (a gain on one may cost another), the card's 31
probes, the 72 daily-life probes and bench/everyday.py's 12 spare sentences. Variants:

- `repeatN`: phase 1's vocabulary, each everyday training document N times in the pool;
- `vocabV-repeatN`: the same after moving the model to a new V-token BPE trained on the pool
  (roberta.init.transfer_vocabulary: new tokens start as the mean of their old pieces).

    python bench/everyday_ab.py --steps 600 --variants repeat10 vocab16384-repeat10

Short runs say which way a change goes, not the full recipe's figures. The figures measured are
in docs/models.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from everyday import SENTENCES  # noqa: E402

from roberta.defaults import default_model_dir  # noqa: E402
from roberta.model import RobertaForMaskedLM  # noqa: E402
from roberta.probes import EVERYDAY_PROBES, daily_life_probes, score_probes  # noqa: E402
from roberta.recipe_everyday import (  # noqa: E402
    everyday_share,
    packed_pool,
    phase_two_config,
    phase_two_data,
    phase_two_pool,
    phase_two_start,
)
from roberta.recipe_settings import BundledRecipe, phase_one_pool  # noqa: E402
from roberta.tokenizer import RobertaTokenizer  # noqa: E402
from roberta.training.pretraining import Pretrainer, PretrainingData  # noqa: E402

VARIANT = re.compile(r"^(?:vocab(\d+)-)?repeat(\d+)$")


def probe_score(model, tokenizer, probes) -> str:
    results = score_probes(model, tokenizer, probes)
    return f"{sum(r.answered for r in results)}/{len(results)}"


def scores(model, tokenizer, held, train, recipe, eval_sequences: int) -> dict:
    model.eval()
    config = replace(phase_two_config(recipe, "cpu"), eval_sequences=eval_sequences, probes=())
    result = {}
    for group, sequences in held.items():
        scorer = Pretrainer(model, tokenizer, PretrainingData(train, sequences), config)
        result[f"<mask>-only, held out: {group}"] = round(
            scorer.evaluate()[0]["val_mask_accuracy"], 4)
    result["card probes (31)"] = probe_score(model, tokenizer, EVERYDAY_PROBES)
    result["daily-life probes (72)"] = probe_score(model, tokenizer, daily_life_probes())
    result["spare sentences (12)"] = probe_score(model, tokenizer, SENTENCES)
    return result


def run_variant(name: str, directory: Path, phase_one, steps: int, eval_sequences: int) -> dict:
    match = VARIANT.match(name)
    if not match:
        raise SystemExit(f"unknown variant {name!r}: repeatN or vocabV-repeatN")
    vocab, repeat = match.groups()
    recipe = replace(BundledRecipe(), everyday_steps=steps, everyday_repeat=int(repeat),
                     everyday_vocab_size=int(vocab) if vocab else None)
    pool = phase_two_pool(recipe, phase_one)
    torch.manual_seed(recipe.seed)
    model, tokenizer = phase_two_start(RobertaForMaskedLM.from_pretrained(directory),
                                       RobertaTokenizer.from_pretrained(directory), pool, recipe)
    train, held = packed_pool(pool, tokenizer, recipe.seq_length)
    config = replace(phase_two_config(recipe, "cpu"), eval_every=steps, probes=(),
                     eval_sequences=eval_sequences)
    trainer = Pretrainer(model, tokenizer, phase_two_data(train, held), config)
    started = time.time()
    for event in trainer.run():
        if event.kind == "step" and event.step % 100 == 0:
            print(f"[{name}] step {event.step}/{steps} {time.time() - started:.0f} s", flush=True)
        if event.finished and event.kind != "done":
            raise RuntimeError(f"{name}: {event.kind} {event.message}")
    return {"everyday share of the pool's words": round(everyday_share(pool), 3),
            "vocabulary": tokenizer.vocab_size, "minutes": round((time.time() - started) / 60, 1),
            **scores(model, tokenizer, held, train, recipe, eval_sequences)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--variants", nargs="+", default=["repeat10", "vocab16384-repeat10"])
    parser.add_argument("--model", type=Path, default=None, help="phase 1's masked LM")
    parser.add_argument("--eval-sequences", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    directory = args.model or default_model_dir("mlm")
    phase_one = phase_one_pool(BundledRecipe())
    recipe = BundledRecipe()
    # The starting point, measured the same way (phase 1's vocabulary).
    pool = phase_two_pool(recipe, phase_one)
    tokenizer = RobertaTokenizer.from_pretrained(directory)
    train, held = packed_pool(pool, tokenizer, recipe.seq_length)
    report = {"steps": args.steps, "threads": torch.get_num_threads(),
              "phase 1 as it is": scores(RobertaForMaskedLM.from_pretrained(directory),
                                         tokenizer, held, train, recipe, args.eval_sequences)}
    print(json.dumps(report, indent=1), flush=True)
    for name in args.variants:
        report[name] = run_variant(name, directory, phase_one, args.steps, args.eval_sequences)
        print(json.dumps(report[name], indent=1), flush=True)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
