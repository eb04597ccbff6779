"""Does a masked LM answer everyday fill-in-the-blank sentences? The share whose top 5 holds an
answer a person would accept, and every guess, on three sets:

- the card's probes (`roberta.probes.EVERYDAY_PROBES`, 31 sentences, scored by the recipe),
- daily life by topic (`roberta.probes.DAILY_LIFE_PROBES`, 72 sentences in 8 topics — home,
  food and drink, body and health, weather and clothes, travel, school and work, shopping,
  family and feelings — also on the card), the share per topic and overall, and
- twelve more written for this script only, which no card reports: a check that the card's
  figure is not an artefact of its own sentences.

    python bench/everyday.py                     # the embedded default (assets/mlm)
    python bench/everyday.py --model runs/x      # any masked-LM directory

The sentences were written for these checks (reviews, news, food, sport, daily life), not taken
from any training text, and the accepted answers were written before looking at a model's
guesses. Read the misses as well as the share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roberta.defaults import default_model_dir  # noqa: E402
from roberta.model import RobertaForMaskedLM  # noqa: E402
from roberta.probes import (  # noqa: E402
    DAILY_LIFE_PROBES,
    EVERYDAY_PROBES,
    answered_share,
    score_probes,
)
from roberta.tokenizer import RobertaTokenizer  # noqa: E402

SENTENCES = {
    "The restaurant was very <mask> and the staff were friendly.":
        "good nice busy clean small popular quiet crowded friendly pleasant",
    "I would <mask> recommend this product to anyone.": "highly definitely not strongly never "
                                                        "certainly",
    "The team won the <mask> on Saturday.": "match game title cup final championship league race",
    "She drinks a cup of <mask> every morning.": "coffee tea water milk",
    "The price of oil <mask> sharply last week.": "rose fell dropped increased jumped climbed",
    "The children played in the <mask> after school.": "park garden playground street yard field",
    "This is the best <mask> I have ever eaten.": "food meal cake pizza thing chocolate cookie "
                                                  "cookies snack bread product",
    "The minister will <mask> the plan to parliament.": "present announce submit put bring "
                                                        "unveil take outline",
    "It was a cold and <mask> day.": "rainy wet windy dark grey cloudy snowy long",
    "He bought a new <mask> for his birthday.": "car phone bike computer book watch game",
    "The company reported a <mask> in profits.": "rise fall drop increase decline jump loss",
    "My dog loves to <mask> in the park.": "play run walk sleep swim",
}


def report(name: str, results: list) -> int:
    print(f"\n{name}")
    for r in results:
        print(f"{'✓' if r.answered else '✗'} {r.text}  ->  {', '.join(t for t, _ in r.guesses)}")
    hits = sum(r.answered for r in results)
    print(f"{hits} of {len(results)} ({answered_share(results):.0%}) have an accepted answer in "
          f"the top 5")
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="masked-LM directory (default: embedded)")
    args = parser.parse_args()
    directory = args.model or default_model_dir("mlm")
    model = RobertaForMaskedLM.from_pretrained(directory).eval()
    tokenizer = RobertaTokenizer.from_pretrained(directory)
    print(f"model: {directory}")
    report("The card's probes", score_probes(model, tokenizer, EVERYDAY_PROBES))
    hits = total = 0
    for topic, probes in DAILY_LIFE_PROBES.items():
        hits += report(f"Daily life: {topic}", score_probes(model, tokenizer, probes))
        total += len(probes)
    print(f"\nDaily life, all {len(DAILY_LIFE_PROBES)} topics: {hits} of {total} "
          f"({hits / total:.0%}) have an accepted answer in the top 5")
    report("Twelve spare sentences (in no card)", score_probes(model, tokenizer, SENTENCES))


if __name__ == "__main__":
    main()
