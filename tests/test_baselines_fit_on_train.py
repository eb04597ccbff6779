"""Every yardstick is fitted on training text only: the unigram counts of pretraining, the
fine-tuner's TF-IDF model, the Sentiment tab's and the recipe's. A baseline that has seen the
held-out text scores better than it should and makes the model beside it look worse.

Each test plants a word (or token) that exists only in the held-out part and checks the fitted
baseline never learned it, and spies on the fit to check it was handed exactly the training
split (not the validation split carved out of it, not the test set)."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
import torch

from roberta.baselines import fit_tfidf, unigram_baseline
from roberta.data import ClassificationData
from roberta.defaults import CLASSIFIER_SUBDIR
from roberta.masking import IGNORE_INDEX
from roberta.model import RobertaForMaskedLM
from roberta.packing import PackedSequences
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import FinetuneConfig, PretrainConfig
from roberta.training.finetuning import Finetuner, classifier_from, finetune_split
from roberta.training.pretraining import Pretrainer, PretrainingData
from roberta.ui import finetune_job

PLANTED_WORD = "zyzzyva"  # a word no training text holds
GOOD = ["great", "lovely", "good", "superb"]
BAD = ["awful", "poor", "bad", "dreadful"]
FOODS = ["tea", "coffee", "soup", "bread", "cheese", "jam"]


def review(index: int, label: int) -> str:
    """A short review saying good or bad things, different for every index."""
    words = GOOD if label else BAD
    return (f"Review {index}: the {FOODS[index % len(FOODS)]} was {words[index % len(words)]} "
            f"and {words[(index // 4) % len(words)]} again.")


def reviews_with_the_planted_word_held_out(config: FinetuneConfig) -> ClassificationData:
    """120 training and 40 test reviews; PLANTED_WORD is in every test review and in every
    review that finetune_split will hold out for validation, and nowhere else. (The split
    depends on the labels and the seed only, so it is found on the plain texts first.)"""
    labels = [i % 2 for i in range(120)]
    plain = ClassificationData([review(i, y) for i, y in enumerate(labels)], labels,
                               label_names=("bad", "good"))
    held_out = set(finetune_split(plain, config).test_texts)
    train_texts = [f"{text} {PLANTED_WORD}" if text in held_out else text
                   for text in plain.train_texts]
    test_labels = [i % 2 for i in range(40)]
    data = ClassificationData(train_texts, labels,
                              [f"{review(1000 + i, y)} {PLANTED_WORD}"
                               for i, y in enumerate(test_labels)], test_labels,
                              label_names=("bad", "good"))
    split = finetune_split(data, config)  # the premise: the word is in held-out text only
    assert all(PLANTED_WORD in text for text in split.test_texts)
    assert not any(PLANTED_WORD in text for text in split.train_texts)
    return data


def vocabulary(tfidf) -> set[str]:
    """The words and bigrams the fitted TF-IDF + logistic regression pipeline knows."""
    return set(tfidf.named_steps["tfidfvectorizer"].vocabulary_)


class FitSpy:
    """Stands in for fit_tfidf: records what it was given, fits the real thing."""

    def __init__(self):
        self.calls: list[tuple[list[str], list[int]]] = []
        self.fitted = []

    def __call__(self, texts, labels):
        self.calls.append((list(texts), list(labels)))
        self.fitted.append(fit_tfidf(texts, labels))
        return self.fitted[-1]


def assert_fitted_on_the_training_split_only(spy: FitSpy, data: ClassificationData,
                                             config: FinetuneConfig) -> None:
    split = finetune_split(data, config)
    assert len(spy.calls) == 1
    texts, labels = spy.calls[0]
    assert (texts, labels) == (split.train_texts, split.train_labels)
    assert PLANTED_WORD not in vocabulary(spy.fitted[0])
    assert {"tea", "great", "awful"} <= vocabulary(spy.fitted[0])  # it did learn the words


@pytest.fixture(scope="module")
def tokenizer(tiny_assets) -> RobertaTokenizer:
    return RobertaTokenizer.from_pretrained(tiny_assets / "mlm")


@pytest.fixture(scope="module")
def masked_lm(tiny_assets) -> RobertaForMaskedLM:
    return RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")


FINETUNE = FinetuneConfig(max_steps=2, batch_size=8, warmup_steps=0, eval_every=1,
                          seq_length=32, device="cpu", precision="fp32", seed=3)


# --- pretraining: the unigram counts -----------------------------------------------------------

def test_the_unigram_baseline_counts_training_tokens_only(tokenizer, masked_lm):
    """Validation sequences made mostly of one token the training sequences never hold: counted
    on validation, it would be the "most frequent token" and score most of the targets."""
    planted = 77
    g = torch.Generator().manual_seed(0)
    # Training tokens from 10-59, id 10 the most frequent (a third of them).
    train_ids = torch.randint(10, 60, (16, 16), generator=g)
    train_ids[:, ::3] = 10
    validation_ids = torch.full((8, 16), planted)
    validation_ids[:, ::4] = 11
    ones = torch.ones_like
    data = PretrainingData(PackedSequences(train_ids, ones(train_ids)),
                           PackedSequences(validation_ids, ones(validation_ids)))
    trainer = Pretrainer(masked_lm, tokenizer, data, PretrainConfig(
        max_steps=1, batch_size=4, eval_sequences=8, device="cpu", precision="fp32",
        probes=(), learning_rate=1e-3, warmup_steps=0))
    targets = torch.cat([b["labels"][b["labels"] != IGNORE_INDEX] for b in trainer._validation])
    assert (targets == planted).float().mean() > 0.5  # the premise: mostly the planted token

    result = trainer.unigram_baseline()
    train_counts = Counter(train_ids.flatten().tolist())
    top, _ = train_counts.most_common(1)[0]
    assert top == 10 and planted not in train_counts
    assert result["top_token_id"] == top
    assert result["accuracy"] == pytest.approx(float((targets == top).float().mean()))
    # The smoothed distribution is the training counts' (the function itself is checked by
    # hand in test_baselines.py): the planted token has only its add-one count.
    expected = unigram_baseline(train_ids, targets, tokenizer.special_ids, tokenizer.vocab_size)
    assert result["perplexity"] == pytest.approx(expected["perplexity"])


# --- fine-tuning: the TF-IDF model -------------------------------------------------------------

def test_the_finetuners_tfidf_is_fitted_on_its_training_split(tokenizer, masked_lm, monkeypatch):
    from roberta.training import finetuning

    data = reviews_with_the_planted_word_held_out(FINETUNE)
    spy = FitSpy()
    monkeypatch.setattr(finetuning, "fit_tfidf", spy)
    torch.manual_seed(0)
    trainer = Finetuner(classifier_from(masked_lm, data.label_names), tokenizer, data, FINETUNE)
    report = trainer.baseline()  # fitted when first needed, as the final report does
    assert_fitted_on_the_training_split_only(spy, data, FINETUNE)
    assert 0 <= report["accuracy"] <= 1


def test_the_sentiment_tabs_tfidf_is_fitted_on_the_split_the_finetuner_trains_on(
        tokenizer, masked_lm, monkeypatch):
    data = reviews_with_the_planted_word_held_out(FINETUNE)
    spy = FitSpy()
    monkeypatch.setattr(finetune_job, "fit_tfidf", spy)
    key = f"planted-{uuid.uuid4()}"  # never a cached fit of another test's data
    tfidf = finetune_job.tfidf_in_background(key, data, FINETUNE).result(timeout=120)
    assert tfidf is spy.fitted[0]
    assert_fitted_on_the_training_split_only(spy, data, FINETUNE)
    # And it is the split the tab's Finetuner trains on (same data, same config).
    torch.manual_seed(0)
    trainer = Finetuner(classifier_from(masked_lm, data.label_names), tokenizer, data, FINETUNE,
                        tfidf=tfidf)
    assert trainer.train_split == spy.calls[0][0]


# --- the recipe: the classifier's TF-IDF is fitted on exactly the mix it fine-tunes on ----------

def sentiment_data_with_the_planted_word_held_out():
    """Two training domains and a test-only one (recipe_sentiment.SentimentData): PLANTED_WORD
    is in every test text, every neutral text and every validation text of the mix, and in no
    row the mix trains on."""
    from roberta import sentiment_protocol as protocol
    from roberta.recipe_sentiment import SentimentData

    def domain(name: str, start: int, test_only: bool = False) -> protocol.DomainSplit:
        train = [] if test_only else [(review(start + i, i % 2), i % 2) for i in range(60)]
        test = [(f"{review(start + 500 + i, i % 2)} {PLANTED_WORD}", i % 2) for i in range(20)]
        return protocol.DomainSplit(
            name, name.title(), test_only, tuple(t for t, _ in train), tuple(y for _, y in train),
            tuple(t for t, _ in test), tuple(y for _, y in test),
            (f"The {name} arrived on Monday {PLANTED_WORD}.",))
    splits = [domain("shops", 0, test_only=True), domain("cafes", 1000), domain("bakeries", 2000)]
    plain = protocol.balanced_mix(splits[1:], cap=40, max_copies=2, validation_fraction=0.25)
    planted = set(plain.validation_texts)
    splits = [split if split.test_only else protocol.DomainSplit(
        split.name, split.title, False,
        tuple(f"{t} {PLANTED_WORD}" if t in planted else t for t in split.train_texts),
        split.train_labels, split.test_texts, split.test_labels, split.neutral_texts)
        for split in splits]
    mix = protocol.balanced_mix(splits[1:], cap=40, max_copies=2, validation_fraction=0.25)
    assert all(PLANTED_WORD in t for t in mix.validation_texts)
    return SentimentData(splits, mix, {}, {})


def test_the_recipes_classifier_card_fits_tfidf_on_exactly_the_mix(tiny_assets, monkeypatch):
    from roberta import recipe_sentiment, sentiment_protocol

    data = sentiment_data_with_the_planted_word_held_out()
    spy = FitSpy()
    monkeypatch.setattr(sentiment_protocol, "fit_tfidf", spy)
    rows = recipe_sentiment.classifier_rows(tiny_assets / CLASSIFIER_SUBDIR, data)
    assert len(spy.calls) == 1  # once, for every row
    texts, labels = spy.calls[0]
    assert list(texts) == list(data.mix.texts) and list(labels) == list(data.mix.labels)
    assert PLANTED_WORD not in vocabulary(spy.fitted[0])
    assert {"tea", "great", "awful"} <= vocabulary(spy.fitted[0])  # it did learn the words
    assert [r["test"] for r in rows] == ["shops", "cafes", "bakeries", "mixed"]


def test_the_recipes_finetune_stage_trains_on_the_mix_and_validates_on_its_held_out_texts(
        tiny_assets, tmp_path, monkeypatch):
    from roberta import recipe as recipe_module
    from roberta.recipe_settings import BundledRecipe

    data = sentiment_data_with_the_planted_word_held_out()
    monkeypatch.setattr(recipe_module, "sentiment_data", lambda recipe: data)
    seen = {}

    def stop_before_training(self):
        seen["train"], seen["validation"] = self.train_split, self.val_split
        raise FittedNowStop
        yield
    monkeypatch.setattr(Finetuner, "run", stop_before_training)
    with pytest.raises(FittedNowStop):
        recipe_module._finetune_stage(tiny_assets, tmp_path / "work", "cpu",
                                      BundledRecipe(), [], tmp_path / "checkpoints")
    assert seen["train"] == list(data.mix.texts)
    assert seen["validation"] == list(data.mix.validation_texts)
    assert not any(PLANTED_WORD in t for t in seen["train"])


class FittedNowStop(Exception):
    """Raised where the test has seen what it needs: the rest of the stage is not its business."""
