"""The yardsticks a trained model is measured against, computed on the same data split.

- Masked LM: the unigram-frequency model, which ignores context entirely. A model that has not
  beaten it has learned word frequencies and nothing else (the classic early MLM plateau).
- Classification: TF-IDF (1-2 grams) + logistic regression, a strong classical baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def unigram_baseline(train_ids: torch.Tensor, target_ids: torch.Tensor,
                     special_ids: Sequence[int], vocab_size: int) -> dict[str, float]:
    """Score the context-free unigram model on `target_ids` (the ids behind the masks).

    accuracy: always guessing the most frequent training token.
    cross_entropy / perplexity: the add-one-smoothed unigram distribution.
    """
    counts = torch.bincount(train_ids.flatten(), minlength=vocab_size).double()
    counts[list(special_ids)] = 0
    probs = (counts + 1) / (counts + 1).sum()
    target_ids = target_ids.flatten()
    if target_ids.numel() == 0:
        raise ValueError("no target tokens to score the unigram baseline on")
    top = int(counts.argmax())
    cross_entropy = float(-probs[target_ids].log().mean())
    return {"accuracy": float((target_ids == top).double().mean()),
            "cross_entropy": cross_entropy, "perplexity": math.exp(cross_entropy),
            "top_token_id": top}


def macro_f1(predictions: Sequence[int], labels: Sequence[int], num_classes: int) -> float:
    """Unweighted mean of per-class F1 (a class never predicted nor present counts as 0)."""
    from sklearn.metrics import f1_score
    return float(f1_score(list(labels), list(predictions), labels=list(range(num_classes)),
                          average="macro", zero_division=0))


def fit_tfidf(train_texts: Sequence[str], train_labels: Sequence[int]):
    """TF-IDF of word 1-2 grams + logistic regression, fitted; `.predict(texts)` gives labels."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    classifier = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                               LogisticRegression(C=10.0, max_iter=2000))
    return classifier.fit(list(train_texts), list(train_labels))


def scores(predictions: Sequence[int], labels: Sequence[int], num_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 of `predictions` against `labels`."""
    correct = sum(int(p == y) for p, y in zip(predictions, labels, strict=True))
    return {"accuracy": correct / len(labels),
            "macro_f1": macro_f1(predictions, labels, num_classes)}


def tfidf_baseline(train_texts: Sequence[str], train_labels: Sequence[int],
                   test_texts: Sequence[str], test_labels: Sequence[int],
                   num_classes: int | None = None) -> dict[str, float]:
    """TF-IDF of word 1-2 grams + logistic regression, trained on train, scored on test."""
    num_classes = num_classes or max(max(train_labels), max(test_labels)) + 1
    predictions = fit_tfidf(train_texts, train_labels).predict(list(test_texts)).tolist()
    return scores(predictions, test_labels, num_classes)
