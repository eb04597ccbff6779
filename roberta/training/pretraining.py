"""Masked-language-model pretraining: packed data, dynamic or static masking, held positions."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..baselines import unigram_baseline
from ..data import split_documents
from ..inference import FillMaskResult, fill_mask
from ..init import position_dims
from ..masking import IGNORE_INDEX, DynamicMasker, StaticMaskedDataset
from ..model import RobertaForMaskedLM
from ..packing import PackedSequences, pack_documents
from ..settings import TrainingError
from ..timelapse import TimeLapse, TimeLapseRecorder, load_timelapse
from ..tokenizer import RobertaTokenizer
from .config import PretrainConfig
from .devices import autocast, world
from .engine import Trainer, TrainEvent


@dataclass
class PretrainingData:
    train: PackedSequences
    validation: PackedSequences


def prepare_pretraining_data(texts: Sequence[str], tokenizer: RobertaTokenizer, seq_length: int,
                             validation_fraction: float = PretrainConfig.validation_fraction,
                             seed: int = 0, packing: str = PretrainConfig.packing,
                             repeats: Mapping[str, int] | None = None) -> PretrainingData:
    """Split by document (never inside one), tokenize, and pack into sequences.

    `repeats` gives some training documents extra copies (document -> copies, 1 by default), to
    weigh a small source against a large one; held-out documents are never copied, so the split
    and the validation figures are the same with or without it."""
    train_docs, val_docs = split_documents(list(texts), validation_fraction, seed)
    if not train_docs or not val_docs:
        raise TrainingError(f"need at least 2 documents to hold some out for validation, "
                            f"got {len(texts)}")
    if repeats and min(repeats.values()) < 1:
        raise TrainingError("every document needs at least 1 copy")
    return PretrainingData(
        pack_with_copies(tokenizer, train_docs, repeats or {}, seq_length, packing),
        pack_ids(tokenizer, tokenizer.encode_batch_ids(val_docs), seq_length, packing))


def pack_with_copies(tokenizer: RobertaTokenizer, docs: Sequence[str],
                     copies: Mapping[str, int], seq_length: int,
                     packing: str = PretrainConfig.packing) -> PackedSequences:
    """`docs` packed with `copies[doc]` copies each (1 when absent), in whole rounds: a packed
    sequence holding a document twice would teach copying the earlier copy, not English."""
    counts = [copies.get(doc, 1) for doc in docs]
    ids = tokenizer.encode_batch_ids(docs)  # each document tokenized once; its copies reuse it
    ids = [x for r in range(max(counts, default=1)) for x, n in zip(ids, counts, strict=True)
           if n > r]
    return pack_ids(tokenizer, ids, seq_length, packing)


def pack_ids(tokenizer: RobertaTokenizer, ids: Sequence[Sequence[int]], seq_length: int,
             packing: str = PretrainConfig.packing) -> PackedSequences:
    """Token-id documents packed into sequences with the tokenizer's <s>, </s> and <pad>."""
    return pack_documents(ids, seq_length, mode=packing, bos_id=tokenizer.bos_token_id,
                          eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id)


class PositionHold:
    """Keeps a model's position information fixed for the first `steps` steps (-1: all): the
    position embeddings, and the word embeddings' dims that a structured start reserved for
    position (roberta/init.py says why). A parameter without requires_grad gets no gradient and
    AdamW skips it (no update, no weight decay); the reserved dims get a zero gradient, so Adam
    leaves them at 0. Released, both train from then on."""

    def __init__(self, model: RobertaForMaskedLM, steps: int):
        embeddings = model.roberta.embeddings
        self.steps = steps
        self.positions = embeddings.position_embeddings.weight
        self.words = embeddings.word_embeddings.weight
        self.dims = position_dims(model.config)
        self._hook = None

    def holding(self, step: int) -> bool:
        return self.steps == -1 or step < self.steps

    def update(self, step: int) -> None:
        held = self.holding(step)
        self.positions.requires_grad_(not held)
        if held and self._hook is None and self.dims:
            keep = torch.ones(self.words.size(1))  # (C,); the model may move to a GPU later
            keep[:self.dims] = 0
            self._hook = self.words.register_hook(
                lambda grad: grad * keep.to(device=grad.device, dtype=grad.dtype))
        elif not held:
            self.release()

    def release(self) -> None:
        """Leave the model as it was given: everything trainable, no hook."""
        self.positions.requires_grad_(True)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


class Pretrainer(Trainer):
    """Masked-language-model pretraining with dynamic (or static) masking."""

    config: PretrainConfig

    def __init__(self, model: RobertaForMaskedLM, tokenizer: RobertaTokenizer,
                 data: PretrainingData, config: PretrainConfig):
        config, notes = config.resolved(model.config.hidden_size)
        config.validate()
        if model.config.vocab_size < tokenizer.vocab_size:
            raise TrainingError(f"the model's vocabulary ({model.config.vocab_size}) is smaller "
                                f"than the tokenizer's ({tokenizer.vocab_size})")
        if data.train.input_ids.size(1) > model.config.max_sequence_length:
            raise TrainingError(f"sequences of {data.train.input_ids.size(1)} tokens do not fit "
                                f"the model's {model.config.max_sequence_length} positions")
        if config.hold_positions_steps > 0 and world()[1] > 1:
            raise TrainingError("positions held for some steps and then released cannot run "
                                "data-parallel (DDP fixes the trainable set at the start): "
                                "hold them for the whole run (-1) or not at all (0)")
        self._position_hold = PositionHold(model, config.hold_positions_steps)
        self._position_hold.update(step=0)  # before DDP wraps the model
        super().__init__(model, config)
        self.notes += notes
        if len(data.train) < config.batch_size * self.world_size:
            raise TrainingError(f"the corpus packs into {len(data.train)} training sequences, "
                                f"fewer than one batch of {config.batch_size * self.world_size}:"
                                f" add text or lower the batch size")
        self.tokenizer = tokenizer
        self.data = data
        self.recorder = TimeLapseRecorder(
            tokenizer, model.config, data.train.input_ids, config.max_steps, config.eval_every,
            config.probes, config.snapshots) if config.snapshots and self.rank == 0 else None
        # One masking stream on every rank: each masks the whole global batch and keeps its own
        # rows, so N processes train on exactly the masks one process would draw.
        self.masker = self._masker(seed=config.seed * 7919)
        self._validation = self._validation_batches()
        self.static = None
        if config.static_masking:  # masks drawn once, up front, static_copies per sequence
            self.static = StaticMaskedDataset(
                data.train.input_ids, data.train.attention_mask, n_copies=config.static_copies,
                **self._masking_args(), seed=config.seed * 7919)

    def before_step(self) -> None:
        self._position_hold.update(self.step)
        if self.step == 0 and self.recorder and self.recorder.due(0):  # the start
            self.recorder.record(self.model, 0)

    @property
    def timelapse(self) -> TimeLapse | None:
        """The run's time-lapse (its snapshots grow as it runs); None when it records none."""
        return self.recorder.timelapse if self.recorder else None

    def run(self) -> Iterator[TrainEvent]:
        try:
            yield from super().run()
        finally:  # the model outlives the run (fine-tuning, export): no frozen rows, no hook
            self._position_hold.release()

    def _masking_args(self) -> dict[str, Any]:
        tok = self.tokenizer
        return dict(mask_token_id=tok.mask_token_id, vocab_size=tok.vocab_size,
                    special_ids=tok.special_ids, config=self.config.masking,
                    word_start=tok.word_start_mask() if self.config.masking.whole_word else None)

    def _masker(self, seed: int) -> DynamicMasker:
        return DynamicMasker(**self._masking_args(), seed=seed)

    def _validation_batches(self) -> list[dict[str, torch.Tensor]]:
        """Validation masks are drawn once, so every evaluation scores the same predictions;
        in batches of the global batch size, so N processes score what one process would."""
        masker = self._masker(seed=1_234_567)
        validation = self.data.validation
        n = min(len(validation), self.config.eval_sequences)
        # Spread over the whole held-out set when only part is scored: its documents keep the
        # corpus order, so the first n of the recipe's would all be IMDB reviews.
        rows = torch.linspace(0, len(validation) - 1, n).round().long()
        size = self.config.batch_size * self.world_size
        batches = []
        for start in range(0, n, size):
            ids = validation.input_ids[rows[start:start + size]]
            mask = validation.attention_mask[rows[start:start + size]]
            masked = masker(ids, attention_mask=mask)
            batches.append({"input_ids": masked.input_ids, "attention_mask": mask,
                            "labels": masked.labels})
        return batches

    def micro_batch(self, index: int) -> dict[str, torch.Tensor]:
        train = self.data.train
        rows = self.global_rows(index, len(train))
        ids, mask = train.input_ids[rows], train.attention_mask[rows]
        if self.static is not None:  # the paper's baseline: this epoch's fixed copy
            masked = self.static.batch(rows, epoch=self.epoch_of(index, len(train)))
        else:
            masked = self.masker(ids, attention_mask=mask)
        mask = self.my_share(mask)
        batch = {"input_ids": self.my_share(masked.input_ids),
                 "labels": self.my_share(masked.labels)}
        if not bool(mask.all()):  # packed sequences are usually full: skip the mask then
            batch["attention_mask"] = mask
        return batch

    def evaluate(self) -> tuple[dict[str, float], list[FillMaskResult]]:
        totals = self.validation_totals()
        loss = totals["loss_sum"] / max(totals["scored"], 1)
        # Scored positions that kept their own token (10%) can be copied, so a model that has
        # learned nothing from context already scores ~10% overall; the <mask>-only figure
        # shows what it has learned from the words around.
        metrics = {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50)),
                   "val_accuracy": totals["correct"] / max(totals["scored"], 1),
                   "val_mask_accuracy": totals["mask_correct"] / max(totals["mask_shown"], 1)}
        probes = [fill_mask(self.model, self.tokenizer, p) for p in self.config.probes]
        # The time-lapse's snapshots fall on evaluations (and a stopped run's last), reusing
        # their figures; inside the run's loop, so a failure ends the run as the evaluation's do.
        if self.recorder and self.recorder.due(self.step, final=self._stop.is_set()):
            self.recorder.record(self.model, self.step, metrics, probes)
        return metrics, probes

    @torch.no_grad()
    def validation_totals(self) -> dict[str, float]:
        """The sums behind evaluate()'s rates (so several validation sets can be pooled): loss
        summed over scored tokens, scored tokens and hits, tokens shown as <mask> and hits."""
        self.model.eval()
        loss_sum, correct, count = 0.0, 0, 0
        masked_correct, masked_count = 0, 0  # where the input showed <mask>: context alone
        for batch in self._validation:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with autocast(self.device, self.precision):
                out = self.model(**batch)
            scored = batch["labels"] != IGNORE_INDEX
            targets = batch["labels"][scored]
            hits = out.logits.argmax(-1) == targets
            shown_mask = batch["input_ids"][scored] == self.tokenizer.mask_token_id
            loss_sum += float(out.loss) * targets.numel()
            correct += int(hits.sum())
            count += targets.numel()
            masked_correct += int(hits[shown_mask].sum())
            masked_count += int(shown_mask.sum())
        return {"loss_sum": loss_sum, "scored": count, "correct": correct,
                "mask_shown": masked_count, "mask_correct": masked_correct}

    def unigram_baseline(self) -> dict[str, float]:
        """The context-free baseline on exactly the validation predictions evaluate() scores."""
        targets = torch.cat([b["labels"][b["labels"] != IGNORE_INDEX] for b in self._validation])
        train_ids = self.data.train.input_ids[self.data.train.attention_mask.bool()]
        return unigram_baseline(train_ids, targets, self.tokenizer.special_ids,
                                self.tokenizer.vocab_size)

    def final_report(self) -> dict[str, float]:
        baseline = self.unigram_baseline()
        return {"unigram_accuracy": baseline["accuracy"],
                "unigram_perplexity": baseline["perplexity"]}

    def save_extra(self, directory) -> None:
        super().save_extra(directory)
        if self.timelapse is not None:
            self.timelapse.save(directory)

    def extra_state(self) -> dict[str, Any]:
        return {"masker": self.masker.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.masker.load_state_dict(state["masker"])

    @classmethod
    def resume(cls, directory: str | os.PathLike, data: PretrainingData,
               config: PretrainConfig) -> Pretrainer:
        model = RobertaForMaskedLM.from_pretrained(directory)
        tokenizer = RobertaTokenizer.from_pretrained(directory)
        trainer = cls(model, tokenizer, data, config)
        trainer.load_training_state(directory)
        if trainer.recorder:  # the snapshots taken before the interruption go on
            saved, why = load_timelapse(directory)
            if not trainer.recorder.adopt(saved, trainer.step):
                why = why or "The checkpoint's time-lapse is another run's."
                trainer.notes.append(f"{why} The time-lapse starts again at step {trainer.step}.")
        return trainer
