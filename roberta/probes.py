"""Everyday fill-in-the-blank sentences, and how a masked LM is scored on them.

The sentences were written for the embedded default's card before it was trained (reviews, news,
food, sport, daily life), not taken from any training text, and the accepted answers are the ones
a person would accept, also written before looking at any guesses. A probe counts as answered when
one of the model's top 5 guesses is an accepted answer (case-insensitive, whole word).
"""

from __future__ import annotations

from dataclasses import dataclass

from .inference import fill_mask
from .model import RobertaForMaskedLM
from .tokenizer import RobertaTokenizer

EVERYDAY_PROBES: dict[str, str] = {
    # reviews
    "The movie was so <mask> that I fell asleep.": "boring bad slow long dull awful",
    "This is one of the best films I have ever <mask>.": "seen watched",
    "The acting was great but the <mask> was terrible.": "story plot script ending writing "
                                                         "dialogue music direction film movie",
    "I want my <mask> back.": "money time life",
    "The hotel room was clean and the bed was very <mask>.": "comfortable comfy soft nice "
                                                             "large big small hard",
    "I loved this book and I will read it <mask>.": "again twice soon",
    "Do not waste your <mask> on this film.": "time money",
    # news
    "The president of the United <mask> spoke on Monday.": "states nations kingdom",
    "Police said the man was <mask> on Friday night.": "arrested killed shot found injured "
                                                       "stabbed charged released",
    "Shares in the company <mask> after the report.": "fell rose dropped jumped plunged climbed "
                                                      "slumped soared tumbled",
    "The government has promised to cut <mask>.": "taxes tax spending costs emissions prices "
                                                  "jobs crime",
    "Voters will go to the <mask> next month.": "polls election elections",
    "The two countries signed a trade <mask>.": "deal agreement pact treaty",
    # food
    "I had eggs and <mask> for breakfast.": "bacon toast ham sausage bread sausages cheese "
                                            "potatoes",
    "Add a pinch of <mask> and stir well.": "salt pepper sugar",
    "This tea has a strong <mask> and a nice smell.": "flavor flavour taste aroma",
    "The chocolate was too <mask> for me.": "sweet rich bitter dark expensive much",
    "We ordered a large pizza with extra <mask>.": "cheese sauce toppings pepperoni",
    # sport
    "The team scored three <mask> in the first half.": "goals tries points times touchdowns",
    "He won a gold <mask> at the Olympics.": "medal",
    "The match ended in a <mask>.": "draw tie",
    "She hit the ball over the <mask>.": "net fence wall line bar",
    "The football <mask> sacked its manager.": "club team",
    # daily life
    "I need to go to the <mask> to buy some milk.": "shop store supermarket market",
    "It is raining, so take an <mask>.": "umbrella",
    "My sister lives in a small <mask> near the sea.": "town village house flat cottage city "
                                                       "apartment",
    "He drove his <mask> to work.": "car truck van",
    "The baby was <mask> all night.": "crying awake up sick screaming",
    "Please turn off the <mask> when you leave.": "lights light tv television computer heating "
                                                  "radio",
    "I am going to bed because I am very <mask>.": "tired sleepy",
    "She opened the <mask> and let the cat in.": "door window gate",
}


@dataclass
class ProbeResult:
    text: str
    accepted: tuple[str, ...]
    guesses: list[tuple[str, float]]  # the top 5, as read, with probabilities

    @property
    def answered(self) -> bool:
        return any(token.lower() in self.accepted for token, _ in self.guesses)


def score_probes(model: RobertaForMaskedLM, tokenizer: RobertaTokenizer,
                 probes: dict[str, str] | None = None) -> list[ProbeResult]:
    """Each probe's top-5 guesses beside its accepted answers."""
    results = []
    for text, accepted in (probes or EVERYDAY_PROBES).items():
        candidates = fill_mask(model, tokenizer, text, top_k=5).predictions[0].candidates
        results.append(ProbeResult(text, tuple(accepted.split()),
                                   [(c.token.strip(), c.probability) for c in candidates]))
    return results


def answered_share(results: list[ProbeResult]) -> float:
    return sum(r.answered for r in results) / len(results)
