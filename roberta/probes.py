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


# Daily life, by topic (issue 28): 72 sentences written on 2026-12-07 before any model read them,
# with the answers a person would accept written at the same time; never tuned on. They are what
# a workshop room types, not text from any source the recipe reads. The 31 above stay as they are
# so that the cards' figures compare across models.
DAILY_LIFE_PROBES: dict[str, dict[str, str]] = {
    "home": {
        "I left my keys on the kitchen <mask>.": "table counter shelf floor side worktop bench",
        "Can you take out the <mask> tonight? The bin is full.":
            "rubbish trash garbage bins bags recycling bin bag",
        "We sat on the <mask> and watched television.": "sofa couch floor bed settee",
        "He washed the dirty <mask> after dinner.": "dishes plates pots cups pans clothes",
        "The cat is sleeping under the <mask>.": "bed table sofa chair couch tree stairs desk car",
        "I need to clean the <mask> before my guests arrive.":
            "house flat kitchen bathroom room apartment floor home toilet",
        "She hung her wet clothes on the <mask> to dry.":
            "line washing clothesline radiator rack balcony chair fence rail heater",
        "Our house has three <mask> and a small garden.": "bedrooms rooms floors bathrooms",
        "The water in the shower is too <mask>.": "hot cold",
    },
    "food and drink": {
        "Would you like a glass of <mask> with your meal?": "wine water juice milk beer",
        "I always put milk and <mask> in my coffee.": "sugar cream honey",
        "We had fish and <mask> on the beach.": "chips",
        "Cut the bread with a sharp <mask>.": "knife",
        "For dessert we had apple <mask> and ice cream.": "pie crumble cake tart pudding",
        "She boiled some <mask> for the pasta.": "water",
        "I am so <mask> that I could eat a horse.": "hungry",
        "Keep the butter in the <mask> so it stays cold.": "fridge refrigerator freezer",
        "He drank a <mask> of orange juice.": "glass cup bottle carton jug pint",
    },
    "body and health": {
        "I have a terrible <mask>, so I am taking an aspirin.":
            "headache cold fever pain toothache backache migraine cough flu",
        "She broke her <mask> when she fell off her bike.":
            "arm leg wrist ankle nose hand finger collarbone foot hip tooth",
        "You should see a <mask> about that cough.": "doctor gp nurse",
        "Wash your <mask> before you eat.": "hands",
        "He wears glasses because his <mask> is poor.": "eyesight sight vision",
        "I go to the <mask> twice a week to stay fit.": "gym pool park",
        "My <mask> hurts after running the marathon.":
            "legs feet knees back leg knee foot body ankle muscles",
        "Brush your <mask> twice a day.": "teeth hair",
        "The nurse took my <mask> and said it was normal.": "temperature pulse blood",
    },
    "weather and clothes": {
        "It is very cold today, so wear a warm <mask>.": "coat jacket jumper sweater hat scarf",
        "The sun is shining and the sky is <mask>.": "blue clear bright",
        "It snowed all <mask>, and the roads are closed.": "night day morning week weekend",
        "Put on your <mask>; the ground is wet.": "boots shoes wellies",
        "There was thunder and <mask> last night.": "lightning rain",
        "She wore a long <mask> to the party.": "dress skirt coat gown",
        "It is too hot to wear a <mask>.": "coat jacket jumper sweater hat scarf",
        "The weather forecast says it will <mask> tomorrow.": "rain snow",
        "He took off his <mask> and hung it by the door.": "coat jacket hat",
    },
    "travel": {
        "Our flight was delayed at the <mask> for two hours.": "airport gate",
        "Don't forget to bring your <mask> when you travel abroad.": "passport passports",
        "We took the <mask> to the city centre.":
            "bus train tram subway metro car underground taxi",
        "She booked a room at a small <mask> near the beach.": "hotel hostel inn",
        "I bought a return <mask> to London.": "ticket",
        "The <mask> landed safely in Paris.": "plane flight aircraft",
        "He packed his <mask> the night before the trip.": "bags bag suitcase case clothes things",
        "Please fasten your seat <mask>.": "belt belts",
        "Turn left at the traffic <mask>.": "lights light",
    },
    "school and work": {
        "The teacher wrote the answer on the <mask>.": "board blackboard whiteboard",
        "I have to finish my <mask> before class tomorrow.":
            "homework essay project work assignment",
        "She works as a <mask> in a hospital.": "nurse doctor cleaner porter",
        "The children learn to read and <mask> at school.": "write count spell",
        "My boss asked me to work late on <mask>.":
            "friday monday tuesday wednesday thursday saturday sunday",
        "He was late for work because he missed the <mask>.": "bus train tram",
        "She sends dozens of <mask> every day at the office.": "emails letters messages",
        "The meeting was moved to next <mask>.":
            "week monday tuesday wednesday thursday friday month year",
        "I passed my driving <mask> on the first try.": "test exam",
    },
    "shopping": {
        "These shoes are too small; do you have them in a bigger <mask>?": "size",
        "I paid for the groceries with my credit <mask>.": "card",
        "The shop is closed on <mask>.": "sundays sunday mondays monday weekends today holidays",
        "She put the apples in her shopping <mask>.": "bag basket trolley cart",
        "Everything in the store is half <mask> this week.": "price off",
        "Can I have a <mask>, please? I want to return this later.": "receipt bag",
        "The queue at the <mask> was very long.": "checkout till counter register bank door tills",
        "He bought a loaf of <mask> at the bakery.": "bread",
        "I ordered a new phone online and it <mask> the next day.": "arrived came",
    },
    "family and feelings": {
        "My grandmother is eighty <mask> old.": "years",
        "She was so <mask> that she started to cry.": "sad upset happy angry tired scared",
        "His parents were very <mask> of him when he graduated.": "proud",
        "My brother and I share a <mask>.": "room bedroom bed car flat house birthday",
        "The little boy was <mask> of the dark.": "afraid scared frightened",
        "We are having a party for my mother's fiftieth <mask>.": "birthday",
        "I miss my <mask> when I am away from home.":
            "family mother mum mom parents father dad friends home dog wife husband kids children",
        "They got married last <mask>.": "year summer week month spring weekend saturday june may",
        "She felt <mask> after a long day at work.": "tired exhausted sleepy",
    },
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


def daily_life_probes() -> dict[str, str]:
    """Every daily-life probe, all topics together (sentence -> accepted answers)."""
    return {text: answers for topic in DAILY_LIFE_PROBES.values()
            for text, answers in topic.items()}
