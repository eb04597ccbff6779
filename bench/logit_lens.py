"""At which layer does the right answer first enter the top 5? The logit lens (roberta/lens.py)
on every everyday probe of the masked LM's card (roberta/probes.py: 31 sentences, accepted
answers written before any model read them).

    python bench/logit_lens.py                  # the embedded default (assets/mlm)
    python bench/logit_lens.py --model runs/x   # any masked LM directory

Prints, per probe, the first layer (0 = the embeddings) at which an accepted answer is among the
lens's top 5, and the same for the model's own final answer; then how many probes first get it
right at each layer.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roberta.defaults import default_model_dir  # noqa: E402
from roberta.lens import LensResult, logit_lens  # noqa: E402
from roberta.model import RobertaForMaskedLM  # noqa: E402
from roberta.probes import EVERYDAY_PROBES  # noqa: E402
from roberta.tokenizer import RobertaTokenizer  # noqa: E402


def first_layer_accepted(lens: LensResult, accepted: set[str]) -> int | None:
    """The first layer whose top 5 holds an accepted answer (whole word, any case)."""
    return next((g.layer for g in lens.layers
                 if any(t.strip().lower() in accepted for t in g.tokens)), None)


def measure(model, tokenizer, probes: dict[str, str] = EVERYDAY_PROBES) -> list[dict]:
    rows = []
    for text, answers in probes.items():
        lens = logit_lens(model, tokenizer, text)
        rows.append({"text": text, "answer": lens.answer.strip(),
                     "accepted_from": first_layer_accepted(lens, set(answers.split())),
                     "answer_from": lens.first_layer_with_answer_in_top(5),
                     "answered_at_output": any(t.strip().lower() in answers.split()
                                               for t in lens.layers[-1].tokens)})
    return rows


def report(rows: list[dict], layers: int) -> str:
    def layer(value):
        return "never" if value is None else str(value)

    lines = ["| probe | final answer | accepted answer in top 5 from layer | final answer in "
             "top 5 from layer |", "|---|---|---|---|"]
    lines += [f"| {r['text']} | {r['answer']} | {layer(r['accepted_from'])} | "
              f"{layer(r['answer_from'])} |" for r in rows]
    counts = Counter(r["accepted_from"] for r in rows)
    lines += ["", f"Probes answered (an accepted answer in the top 5) first at each layer, of "
              f"{len(rows)} (layer 0 = embeddings, {layers} = the model's output):", ""]
    lines += [f"- layer {i}: {counts.get(i, 0)}" for i in range(layers + 1)]
    lines.append(f"- never: {counts.get(None, 0)}")
    lines.append(f"\nAnswered at the output: {sum(r['answered_at_output'] for r in rows)} of "
                 f"{len(rows)} (an answer can enter the top 5 at a middle layer and leave it).")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="a masked LM directory (default: the embedded one)")
    args = parser.parse_args(argv)
    directory = args.model or default_model_dir("mlm")
    model = RobertaForMaskedLM.from_pretrained(directory).eval()
    tokenizer = RobertaTokenizer.from_pretrained(directory)
    rows = measure(model, tokenizer)
    print(report(rows, model.config.num_hidden_layers))
    return rows


if __name__ == "__main__":
    main()
