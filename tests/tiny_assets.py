"""A throw-away assets folder (masked LM + sentiment classifier, nano size, untrained) for tests
and for screenshots taken before the real embedded models exist. Takes about a second."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from roberta.config import RobertaConfig
from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.tokenizer import RobertaTokenizer

SUBJECTS = ["The cat", "A dog", "The film", "This coffee", "The government", "My neighbour",
            "The team", "The food", "Our teacher", "The market"]
VERBS = ["was", "seemed", "became", "is", "looked", "tasted", "felt", "sounded"]
OBJECTS = ["good", "terrible", "wonderful", "slow", "expensive", "surprisingly fresh",
           "unbelievably bad", "rediscovered", "forgotten", "delicious", "archaeological"]
TAILS = ["yesterday.", "on Monday.", "after the match.", "and the service was slow.",
         "according to the manuscripts.", "in the morning."]


def tiny_corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
            f"{rng.choice(TAILS)}" for _ in range(n)]


def set_up_tiny_run(tab, steps: int) -> None:
    """In a browser, set the Train tab (`tab`, a playwright locator) for a quick run: this
    corpus pasted, the embedded tokenizer, 32-token sequences, `steps` steps."""
    pasted = tab.get_by_label("Your text: separate documents with a blank line")
    if not pasted.is_visible():
        tab.get_by_text("Settings: corpus, tokenizer").click()
        tab.get_by_label("Pasted text").check()
    pasted.fill("\n\n".join(tiny_corpus(300)))
    tab.get_by_label("The embedded model's tokenizer").check()
    tab.get_by_label("Sequence length (tokens)").fill("32")
    tab.get_by_label("Steps", exact=True).fill(str(steps))


def make_tiny_assets(directory: str | Path, vocab_size: int = 400, seed: int = 0) -> Path:
    """Write `mlm/` and `sentiment/` (model + tokenizer each) under `directory`."""
    directory = Path(directory)
    torch.manual_seed(seed)
    tokenizer = RobertaTokenizer.train(tiny_corpus(seed=seed), vocab_size=vocab_size,
                                       min_frequency=1, model_max_length=64)
    shape = dict(vocab_size=tokenizer.vocab_size, max_position_embeddings=66)
    RobertaForMaskedLM(RobertaConfig.preset("nano", **shape)).save_pretrained(directory / "mlm")
    tokenizer.save_pretrained(directory / "mlm")
    labels = {0: "negative", 1: "positive"}
    classifier = RobertaForSequenceClassification(RobertaConfig.preset("nano", **shape,
                                                                       id2label=labels))
    classifier.save_pretrained(directory / "sentiment")
    tokenizer.save_pretrained(directory / "sentiment")
    return directory


# How many points the Train tab's loss chart has drawn (browser tests wait on it).
LOSS_POINTS = """() => {
    const plot = document.querySelector('#train-loss-plot .js-plotly-plot');
    return plot && plot.data && plot.data.length ? plot.data[0].x.length : 0;
}"""
