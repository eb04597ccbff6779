"""Fine-tuning a classifier from a masked LM, scored beside a TF-IDF baseline."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import torch

from ..baselines import fit_tfidf, macro_f1, scores
from ..data import ClassificationData, train_test_split_classification
from ..inference import encode_windows, mean_by_text
from ..model import RobertaForSequenceClassification
from ..settings import TrainingError
from ..tokenizer import RobertaTokenizer
from .config import FinetuneConfig
from .devices import autocast
from .engine import Trainer

# Scoring a classifier holds at most this many full-length rows' worth of tokens per forward pass.
SCORE_ROWS = 64


def classifier_from(encoder_model: torch.nn.Module, label_names: Sequence[str],
                    dropout: float | None = None) -> RobertaForSequenceClassification:
    """A classifier for `label_names` whose encoder starts as a copy of `encoder_model`'s (a
    masked LM, or another classifier); the head is new, drawn from torch's global RNG.
    `dropout` replaces both dropout rates (None: keep the model's)."""
    extra = {k: v for k, v in encoder_model.config.extra.items() if k != "architectures"}
    rates = {} if dropout is None else dict(hidden_dropout_prob=dropout,
                                            attention_probs_dropout_prob=dropout)
    config = dataclasses.replace(
        encoder_model.config, num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id=None, extra=extra, **rates)
    classifier = RobertaForSequenceClassification(config)
    # A copy: the model it came from is left as it was.
    classifier.roberta.load_state_dict(encoder_model.roberta.state_dict())
    return classifier


def finetune_split(data: ClassificationData, config: FinetuneConfig) -> ClassificationData:
    """What a Finetuner trains on ("train") and picks its best step with ("test"): the data's
    own validation texts where it has them, else `validation_fraction` of its training texts."""
    if data.validation_texts:
        return ClassificationData(data.train_texts, data.train_labels, data.validation_texts,
                                  data.validation_labels, label_names=data.label_names)
    return train_test_split_classification(
        ClassificationData(data.train_texts, data.train_labels, label_names=data.label_names),
        config.validation_fraction, config.seed)


@torch.no_grad()
def text_logits(model: RobertaForSequenceClassification,
                windows: tuple[dict[str, torch.Tensor], torch.Tensor], n_texts: int,
                max_length: int, device: torch.device | str = "cpu",
                precision: str = "fp32") -> torch.Tensor:
    """(n_texts, K) logits of texts read as classify() reads them: `windows` is
    encode_windows' (rows, the text of each row), a text's logits the mean of its rows'. Rows
    go shortest-padding-first in batches of at most SCORE_ROWS full-length rows' worth of
    tokens: 64 reviews at a time, or a few hundred tweets (per-batch overhead, not arithmetic,
    is what short texts cost)."""
    encoded, owner = windows
    device = torch.device(device)
    model.eval()
    lengths = encoded["attention_mask"].sum(1)
    order = torch.argsort(lengths, descending=True)
    budget = SCORE_ROWS * max_length
    logits = torch.empty(len(order), model.config.num_labels)
    start = 0
    while start < len(order):
        width = int(lengths[order[start]])  # the longest left: this batch's padded width
        rows = order[start:start + max(1, budget // max(1, width))]
        with autocast(device, precision):
            out = model(encoded["input_ids"][rows, :width].to(device),
                        attention_mask=encoded["attention_mask"][rows, :width].to(device))
        logits[rows] = out.logits.float().cpu()
        start += len(rows)
    return mean_by_text(logits, owner, n_texts)


LENGTH_GROUP = 64  # batches whose texts are sorted by length together (group_by_length)
LENGTH_BUCKET = 32  # tokens: texts this close in length count as alike


class Finetuner(Trainer):
    """Sequence classification: validation accuracy and macro-F1 as it trains, the best
    validation checkpoint kept, then test scores beside the TF-IDF baseline on the same split.

    `tfidf`: that baseline fitted on finetune_split's "train" (baselines.fit_tfidf), or a Future
    of it; None: fitted when the final report needs it."""

    config: FinetuneConfig

    def __init__(self, model: RobertaForSequenceClassification, tokenizer: RobertaTokenizer,
                 data: ClassificationData, config: FinetuneConfig, tfidf: Any = None):
        config.validate()
        if model.config.num_labels != data.num_labels:
            raise TrainingError(f"the model has {model.config.num_labels} classes, the data "
                                f"{data.num_labels}")
        super().__init__(model, config)
        self.tokenizer = tokenizer
        self.data = data
        self._tfidf = tfidf
        split = finetune_split(data, config)  # its "test" part is our validation set
        self.train_split, self.val_split = split.train_texts, split.test_texts
        if len(split.train_texts) < config.batch_size:
            raise TrainingError(f"{len(split.train_texts)} training examples are fewer than "
                                f"one batch of {config.batch_size}")
        max_length = min(config.seq_length, model.config.max_sequence_length)
        self.max_length = max_length
        self._train_labels = torch.tensor(split.train_labels)
        # Scored as classify() reads a text: every window of a long one (inference.py).
        self._val = (encode_windows(tokenizer, split.test_texts, max_length), split.test_labels)
        self._test = (encode_windows(tokenizer, data.test_texts, max_length), data.test_labels) \
            if data.test_texts else None
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None

    @functools.cached_property
    def _train(self) -> dict[str, torch.Tensor]:
        """The training split, tokenized when training first needs it: scoring a classifier
        and fitting the TF-IDF baseline (the model card's figures) never do, and tokenizing
        IMDB's ~42,000 training reviews takes minutes on a small CPU. A long text trains on its
        first window: drawing any of its windows instead (as classify() reads it) was measured
        and did not pay (README, the classifier)."""
        return self.tokenizer(self.train_split, max_length=self.max_length)

    def epoch_order(self, num_rows: int, per_batch: int, generator: torch.Generator
                    ) -> torch.Tensor:
        """A random order, then (group_by_length) each run of LENGTH_GROUP batches' worth of it
        sorted by length bucket (LENGTH_BUCKET tokens wide; random within a bucket) and cut
        into batches, the whole batches shuffled: a batch pads little, and within a bucket it
        is still a random draw (sorting by exact length would make a batch of "great" reviews
        and one of "awful" ones wherever a label changes the length). On the recipe's mix
        (reviews of ~230 tokens beside tweets of ~25) a batch's padded width fell from ~256
        tokens to about its texts' own."""
        order = torch.randperm(num_rows, generator=generator)
        if not self.config.group_by_length:
            return order
        buckets = self._train["attention_mask"].sum(1) // LENGTH_BUCKET
        grouped = torch.cat([chunk[torch.argsort(buckets[chunk], stable=True)]
                             for chunk in order.split(per_batch * LENGTH_GROUP)])
        whole = num_rows // per_batch * per_batch
        batches = grouped[:whole].view(-1, per_batch)
        shuffled = batches[torch.randperm(len(batches), generator=generator)].flatten()
        return torch.cat([shuffled, grouped[whole:]])

    def micro_batch(self, index: int) -> dict[str, torch.Tensor]:
        rows = self.rows_for(index, len(self._train_labels))
        mask = self._train["attention_mask"][rows]
        width = int(mask.sum(1).max())  # trim the padding this batch does not need
        return {"input_ids": self._train["input_ids"][rows, :width],
                "attention_mask": mask[:, :width], "labels": self._train_labels[rows]}

    def score(self, windows: tuple[dict[str, torch.Tensor], torch.Tensor],
              labels: Sequence[int]) -> dict[str, float]:
        """Accuracy, mean loss and macro-F1 of texts read as classify() reads them: `windows`
        is encode_windows' (rows, the text of each row)."""
        labels_t = torch.tensor(list(labels))
        per_text = self.text_logits(windows, len(labels_t))
        predictions = per_text.argmax(-1).tolist()
        accuracy = sum(int(p == y) for p, y in zip(predictions, labels, strict=True))
        return {"accuracy": accuracy / len(predictions),
                "loss": float(torch.nn.functional.cross_entropy(per_text, labels_t)),
                "macro_f1": macro_f1(predictions, labels, self.data.num_labels)}

    def text_logits(self, windows: tuple[dict[str, torch.Tensor], torch.Tensor],
                    n_texts: int) -> torch.Tensor:
        return text_logits(self.model, windows, n_texts, self.max_length, self.device,
                           self.precision)

    def validation_logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """((n, K) logits, (n,) labels) of the validation texts, read as classify() reads them."""
        windows, labels = self._val
        return self.text_logits(windows, len(labels)), torch.tensor(list(labels))

    def test_scores(self) -> dict[str, float]:
        if self._test is None:
            raise TrainingError("this task has no test set")
        return self.score(*self._test)

    def evaluate(self) -> tuple[dict[str, float], None]:
        scores = self.score(*self._val)
        if self.best is None or scores["accuracy"] > self.best[0]:
            self.best = (scores["accuracy"], self.step,
                         {k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return {f"val_{k}": v for k, v in scores.items()}, None

    @property
    def train_labels(self) -> list[int]:
        """The labels of `train_split`."""
        return self._train_labels.tolist()

    def baseline(self) -> dict[str, float]:
        """The TF-IDF model scored on the test set (or on validation when there is no test
        set)."""
        if self._tfidf is None:
            self._tfidf = fit_tfidf(self.train_split, self.train_labels)
        tfidf = self._tfidf.result() if isinstance(self._tfidf, Future) else self._tfidf
        test_texts, test_labels = (self.data.test_texts, self.data.test_labels) if \
            self._test else (self.val_split, self._val[1])
        return scores(tfidf.predict(list(test_texts)).tolist(), test_labels,
                      self.data.num_labels)

    # A checkpoint carries the best validation step so far, so a resumed run still ends on the
    # best weights of the whole run, not of the part after the resume.
    def extra_state(self) -> dict[str, Any]:
        if self.best is None:
            return {}
        accuracy, step, weights = self.best
        return {"best": {"accuracy": accuracy, "step": step, "weights": weights}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        best = state.get("best")
        self.best = None if best is None else (best["accuracy"], best["step"], best["weights"])

    @classmethod
    def resume(cls, directory: str | os.PathLike, data: ClassificationData,
               config: FinetuneConfig, tfidf: Any = None) -> Finetuner:
        """The fine-tuning whose checkpoint is in `directory`, ready to go on from its step."""
        model = RobertaForSequenceClassification.from_pretrained(directory)
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if names != list(data.label_names):
            raise TrainingError(f"the checkpoint in {directory} classifies {names}, the data "
                                f"{list(data.label_names)}: resume it on the data it began with")
        trainer = cls(model, RobertaTokenizer.from_pretrained(directory), data, config, tfidf)
        trainer.load_training_state(directory)
        return trainer

    def final_report(self) -> dict[str, float]:
        """Restore the best validation checkpoint, then score it on the test set."""
        report: dict[str, float] = {}
        if self.best is not None:
            self.model.load_state_dict(self.best[2])
            report["best_step"] = self.best[1]
            report["best_val_accuracy"] = self.best[0]
        if self._test is not None:
            report.update({f"test_{k}": v for k, v in self.test_scores().items()})
        report.update({f"baseline_{k}": v for k, v in self.baseline().items()})
        return report
