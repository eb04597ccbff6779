"""Does the sentiment classifier read everyday sentences the way a person would? Thirty-two short
sentences of the kind a visitor types into the Sentiment tab — food, shops and products, hotels,
travel, films and books, work and daily life — half positive, half negative, with the verdict a
person would give. None is a movie review of IMDB's kind on purpose: the classifier was
fine-tuned on movie reviews only, and this is the check of what it carries beyond them.

    python bench/everyday_sentiment.py                   # the embedded default (assets/sentiment)
    python bench/everyday_sentiment.py --model runs/x    # any positive/negative classifier

The sentences and their labels were written for this script, not taken from any training or
test text, and not changed after seeing a model's answers. Read the misses as well as the share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roberta.defaults import default_model_dir  # noqa: E402
from roberta.inference import classify  # noqa: E402
from roberta.model import RobertaForSequenceClassification  # noqa: E402
from roberta.tokenizer import RobertaTokenizer  # noqa: E402

POSITIVE = [
    "The soup was hot and full of flavour.",
    "Our waiter was friendly and the bill was fair.",
    "This blender is powerful and easy to clean.",
    "The battery lasts all day, even with heavy use.",
    "Delivery was quick and everything arrived in perfect condition.",
    "The room was spotless and the bed was really comfortable.",
    "We had a lovely weekend by the sea.",
    "The train was on time and the seats were comfortable.",
    "I could not put this book down.",
    "The concert was amazing from start to finish.",
    "My new manager is supportive and fair.",
    "The doctor listened carefully and explained everything clearly.",
    "These shoes fit perfectly and look great.",
    "The kids loved the museum and want to go back.",
    "Customer service solved my problem in five minutes.",
    "What a beautiful sunny morning!",
]

NEGATIVE = [
    "The pasta was cold and far too salty.",
    "We waited an hour for our food and nobody apologised.",
    "The screen cracked the first time I dropped it.",
    "It stopped charging after a week.",
    "The package arrived late and the box was crushed.",
    "The room smelled of smoke and the shower did not work.",
    "Our flight was cancelled and the airline refused to help.",
    "The bus was dirty, crowded and forty minutes late.",
    "I gave up on this book after three chapters.",
    "The sound was terrible and we left early.",
    "My landlord ignores every email I send.",
    "The app crashes every time I open it.",
    "These headphones broke after two days.",
    "The coffee tasted burnt and bitter.",
    "I was charged twice and still have not had a refund.",
    "It rained all week and the hotel pool was closed.",
]


def main(argv: list[str] | None = None) -> int:
    """Prints every verdict and the share; returns how many were read as a person would."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="classifier directory (default: embedded)")
    args = parser.parse_args(argv)
    directory = Path(args.model) if args.model else default_model_dir("classifier")
    model = RobertaForSequenceClassification.from_pretrained(directory).eval()
    tokenizer = RobertaTokenizer.from_pretrained(directory)
    labels = set(model.config.id2label.values())
    if labels != {"positive", "negative"}:
        raise SystemExit(f"{directory}: labels {sorted(labels)}, not positive/negative")
    sentences = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    probabilities = classify(model, tokenizer, [t for t, _ in sentences])
    hits = 0
    print(f"{directory}\n")
    for (text, expected), p in zip(sentences, probabilities, strict=True):
        positive = p["positive"]
        said = "positive" if positive >= 0.5 else "negative"
        hits += said == expected
        print(f"{'✓' if said == expected else '✗'} {positive:4.0%} positive  {text}")
    print(f"\n{hits} of {len(sentences)} ({hits / len(sentences):.0%}) read as a person would "
          f"({len(POSITIVE)} positive, {len(NEGATIVE)} negative)")
    return hits


if __name__ == "__main__":
    main()
