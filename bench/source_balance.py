"""Does balancing the pretraining sources help everyday sentences? (issue 12: the probes)

The recipe's text was 72% IMDB reviews, and its model answered "She opened the <mask>"
with "cat / price / water". This bench trains the recipe's masked LM twice, same tokenizer (the
embedded one), same model, seed, steps and held-out documents; the only difference is the
training documents: each once (A), or with every non-IMDB training document repeated
`--repeat` times (B: at 4, IMDB falls from ~72% to ~40% of the text; the recipe now weighs its
sources by copies, `BundledRecipe.source_repeats`, after this measurement). Then it reports,
for each: `<mask>`-only accuracy on the held-out documents, IMDB's and the others' separately
(a gain on the others may cost IMDB), and the everyday probes — the card's 31 and
bench/everyday.py's 12 spare sentences.

    python bench/source_balance.py --steps 3000 --repeat 4 [--threads 2]

Short runs say which way a change goes, not the full recipe's figures. Measured 2026-12-02 (2
threads, native bf16, `--steps 2500 --repeat 4`, 14.5 and 15.0 min): `<mask>`-only on held-out
IMDB 23.1% (A) vs 22.0% (B), on the other sources 21.3% vs 24.5%; card probes 9/31 vs 11/31 (B
adds "three goals", "small town"), spare sentences 4/12 vs 4/12.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from everyday import SENTENCES  # noqa: E402

from roberta.corpus import IMDB_SOURCE  # noqa: E402
from roberta.data import split_documents  # noqa: E402
from roberta.defaults import default_model_dir  # noqa: E402
from roberta.probes import EVERYDAY_PROBES, answered_share, score_probes  # noqa: E402
from roberta.recipe_settings import (  # noqa: E402
    BundledRecipe,
    held_out_groups,
    new_masked_lm,
    pretrain_config,
    pretraining_text,
)
from roberta.tokenizer import RobertaTokenizer  # noqa: E402
from roberta.training.pretraining import Pretrainer, PretrainingData, pack_ids  # noqa: E402


def packed(tokenizer: RobertaTokenizer, docs: list[str], seq_length: int):
    return pack_ids(tokenizer, tokenizer.encode_batch_ids(docs), seq_length)


def train_and_score(name: str, train_docs: list[str], held_out: dict[str, list[str]],
                    tokenizer: RobertaTokenizer, recipe: BundledRecipe, steps: int) -> dict:
    # The recipe's settings for a run of `steps` (its warmup and schedule), one evaluation.
    config = replace(pretrain_config(replace(recipe, pretrain_steps=steps), "cpu"),
                     eval_every=steps)
    validation = {group: packed(tokenizer, docs, recipe.seq_length)
                  for group, docs in held_out.items()}
    data = PretrainingData(packed(tokenizer, train_docs, recipe.seq_length), validation["IMDB"])
    model = new_masked_lm(recipe, tokenizer)
    trainer = Pretrainer(model, tokenizer, data, config)
    started = time.time()
    for event in trainer.run():
        if event.kind == "step" and event.step % 500 == 0:
            print(f"[{name}] step {event.step}/{steps} {time.time() - started:.0f} s", flush=True)
        if event.finished and event.kind != "done":
            raise RuntimeError(f"{name}: {event.kind} {event.message}")
    result = {"training tokens (M)": round(data.train.num_tokens / 1e6, 2),
              "minutes": round((time.time() - started) / 60, 1)}
    model.eval()
    for group, sequences in validation.items():
        scorer = Pretrainer(model, tokenizer, PretrainingData(data.train, sequences), config)
        metrics, _ = scorer.evaluate()
        result[f"<mask>-only, held out: {group}"] = round(metrics["val_mask_accuracy"], 4)
    for label, probes in (("card probes", EVERYDAY_PROBES), ("spare sentences", SENTENCES)):
        scored = score_probes(model, tokenizer, probes)
        result[label] = f"{sum(r.answered for r in scored)}/{len(scored)} " \
                        f"({answered_share(scored):.0%})"
        result[f"{label}: answered"] = [r.text for r in scored if r.answered]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=4,
                        help="B: copies of each non-IMDB training document")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.steps < 1 or args.repeat < 1:
        parser.error("--steps and --repeat must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = BundledRecipe()
    tokenizer = RobertaTokenizer.from_pretrained(default_model_dir("mlm"))
    sources, texts = pretraining_text(recipe)
    train_docs, _ = split_documents(texts, 0.02, recipe.seed)  # as the recipe splits
    imdb = set(sources[IMDB_SOURCE])
    # Scored apart: the first 512 held-out sequences of the two together would all be IMDB's.
    groups = held_out_groups(sources, texts, recipe)
    held_out = {"IMDB": groups["IMDB reviews"], "other sources": groups["the other sources"]}
    others = [d for d in train_docs if d not in imdb]
    balanced = train_docs + others * (args.repeat - 1)

    def share(docs: list[str]) -> float:
        return sum(len(d.split()) for d in docs if d in imdb) / sum(len(d.split()) for d in docs)

    print(f"IMDB share of the training words: A {share(train_docs):.0%}, "
          f"B {share(balanced):.0%}", flush=True)
    report = {"steps": args.steps, "repeat": args.repeat, "threads": torch.get_num_threads(),
              "A: each document once": train_and_score("A", train_docs, held_out, tokenizer, recipe,
                                                   args.steps),
              f"B: other sources x{args.repeat}": train_and_score(
                  "B", balanced, held_out, tokenizer, recipe, args.steps)}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
