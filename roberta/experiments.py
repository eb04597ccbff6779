"""The RoBERTa paper's ablations, as pairs of training runs that differ in one choice.

A `Comparison` names one setting and its two values (overrides of the Train tab's settings),
says what the paper (or the cited work) found, and how the two runs are kept comparable.
`PairedRun` trains the two together, one step of A then one of B, so both see the same number of
steps, the same batches in the same order and the same seed (when the setting changes the
batches, e.g. the batch size, they still see the same text in the same order at the same token
budget: each comparison's `fairness` says how). Stop stops both at the same point.

`verdict` turns the two final evaluations into a sentence: the difference in accuracy where the
input was `<mask>` (and in perplexity), measured against the seed-to-seed spread of that
difference that bench/experiments.py measured at the comparison's defaults
(roberta/experiment_spread.json), or — for settings it did not measure — against the
evaluation's own sampling noise, which is a lower bound and said to be one.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .masking import IGNORE_INDEX
from .training.engine import Trainer, TrainEvent
from .training.pretraining import Pretrainer

SPREAD_FILE = Path(__file__).with_name("experiment_spread.json")

# What every one-click comparison starts from: the Train tab's default run (micro, structured
# start, 2,048-token BPE, batch 8, the bundled corpus), made short enough for two runs to fit
# in about two minutes on a 2-core CPU. Overrides of ONE_MINUTE_RUN
# (roberta/training/pretrain_settings.py).
BASE_SETTINGS: dict[str, Any] = {"max_steps": 600, "warmup_steps": 100}

# Settings that are not Train-tab fields but that some comparisons change (see ExperimentJob).
EXTRA_SETTINGS = ("packing", "train_sequences", "static_copies")


class ExperimentError(ValueError):
    """A comparison that cannot run (identical sides, unknown setting), in a plain sentence."""


@dataclass(frozen=True)
class Comparison:
    id: str
    title: str
    setting: str  # the one choice that differs, in words (the charts' legend says it)
    label_a: str
    label_b: str
    a: Mapping[str, Any]  # overrides of BASE_SETTINGS for side A
    b: Mapping[str, Any]
    paper: str  # what the cited work found, with its table and figures
    fairness: str  # how the two runs are kept comparable
    # Scale B's batch so both sides see about the same number of real (non-pad) tokens per
    # step (DOC-SENTENCES pads, so the paper raised its batch size to match FULL-SENTENCES).
    equal_tokens: bool = False
    # The two sides are scored on the same held-out predictions (False: different
    # tokenizers, so per-token figures measure different tasks and are not judged).
    same_validation: bool = True
    base: Mapping[str, Any] = field(default_factory=lambda: dict(BASE_SETTINGS))
    # What this lab measured before (its benchmarks), kept apart from what the paper found.
    lab: str = ""

    def sides(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The full overrides of each side: the base, then the side's own."""
        return {**self.base, **self.a}, {**self.base, **self.b}


COMPARISONS: dict[str, Comparison] = {c.id: c for c in (
    Comparison(
        "init", "The plateau: RoBERTa's random start vs the structured start",
        "initialisation", "structured start", "RoBERTa's random start",
        {"init": "structured"}, {"init": "roberta"},
        paper=("RoBERTa initialises every weight from N(0, 0.02), like BERT."),
        lab=("A small model trained from that start sits on the masked-LM plateau for "
             "thousands of steps: at every <mask> it guesses one frequent token, because its "
             "heads have not yet learned to look at their neighbours by position. The "
             "structured start (roberta/init.py) builds those neighbour heads at step 0. "
             "Measured with bench/plateau.py (micro, one thread, two seeds): accuracy where the "
             "input was <mask> 6.5% vs 2.1% at step 300, 11.2% vs 2.1% at step 800."),
        fairness=("Same batches, same masks, same seed; both models are drawn from the same "
                  "random numbers, then the structured start overwrites its few built-in "
                  "weights.")),
    Comparison(
        "masking", "Dynamic vs static masking (Liu et al. 2019, §4.1, Table 1)",
        "masking", "dynamic masking (RoBERTa)", "static masking (BERT)",
        {"static_masking": False, "train_sequences": 300, "static_copies": 4},
        {"static_masking": True, "train_sequences": 300, "static_copies": 4},
        paper=("BERT masked its data once, in preprocessing: duplicated 10 times, each sequence "
               "was seen with the same mask 4 times over 40 epochs. RoBERTa draws a new mask "
               "every time a sequence is fed. Table 1 (BERT-base): static 78.3 / 84.3 / 92.5, "
               "dynamic 78.7 / 84.0 / 92.9 on SQuAD 2.0 F1 / MNLI-m / SST-2 — comparable or "
               "slightly better, and more efficient, so RoBERTa uses dynamic masking."),
        fairness=("Static masking only differs when sequences come back, so both runs train "
                  "on the same 300 sequences for 16 epochs (600 steps of 8), the static side "
                  "with 4 fixed copies: each mask seen 4 times, as in the paper. Same batch "
                  "order and seed; both scored on the same held-out masks.")),
    Comparison(
        "packing", "FULL-SENTENCES vs DOC-SENTENCES (Liu et al. 2019, §4.2, Table 2)",
        "input packing", "FULL-SENTENCES", "DOC-SENTENCES",
        {"packing": "full_sentences"}, {"packing": "doc_sentences"},
        paper=("Without next-sentence prediction, the paper fills each input with contiguous "
               "sentences: FULL-SENTENCES may cross document boundaries, DOC-SENTENCES stops "
               "at the end of a document (shorter inputs, so a larger batch to keep the "
               "tokens per step). In Table 2 DOC-SENTENCES was slightly better, but RoBERTa "
               "used FULL-SENTENCES because constant-size batches are simpler."),
        fairness=("Same text, seed and steps; DOC-SENTENCES pads short documents, so its batch "
                  "is raised to hold about as many real tokens per step as FULL-SENTENCES "
                  "(as in the paper). Both are scored on the same held-out FULL-SENTENCES "
                  "masks."),
        equal_tokens=True),
    Comparison(
        "mask_rate", "15% vs 40% masking (Wettig et al. 2023)",
        "masking rate", "15% masked (BERT, RoBERTa)", "40% masked",
        {"mlm_probability": 0.15}, {"mlm_probability": 0.40},
        paper=("Wettig, Gao, Zhong & Chen, \"Should You Mask 15% in Masked Language "
               "Modeling?\" (EACL 2023): masking 40% outperformed 15% for BERT-large-size "
               "models on GLUE and SQuAD, and even 80% kept most of the performance; larger "
               "models favour higher rates. More masking is a harder task with less context, "
               "but more predictions per step."),
        fairness=("Same batches, seed and steps; only the share of tokens chosen differs. "
                  "Both are scored on the same held-out predictions, masked at 15%.")),
    Comparison(
        "batch", "Small vs large batch at the same tokens (Liu et al. 2019, §4.3, Table 3)",
        "batch size", "batch 8 × 600 steps", "batch 32 × 150 steps",
        {"batch_size": 8, "max_steps": 600, "warmup_steps": 100, "eval_every": 40},
        {"batch_size": 32, "max_steps": 150, "warmup_steps": 25, "eval_every": 10},
        paper=("At an equal number of training tokens, the paper compared batch 256 × 1M "
               "steps (held-out perplexity 3.99), 2K × 125K (3.68) and 8K × 31K (3.77), "
               "raising the learning rate with the batch (1e-4, 7e-4, 1e-3): large batches "
               "were better and parallelise, so RoBERTa trains with 8K."),
        fairness=("Same sequences in the same order: step k of the large batch holds exactly "
                  "the 4 sequences of steps 4k…4k+3 of the small one, so both see the same "
                  "4,800 sequences. The warmup covers the same tokens; the peak rate is kept "
                  "(a simplification: the paper raised it). Both are scored on the same "
                  "held-out predictions. The charts' x axis counts sequences seen.")),
    Comparison(
        "vocab", "BPE vocabulary size (Liu et al. 2019, §4.4)",
        "vocabulary", "2,048-token BPE", "8,192-token BPE",
        {"vocab_size": 2048}, {"vocab_size": 8192},
        paper=("BERT used a 30K character-level BPE vocabulary; RoBERTa a 50K byte-level BPE "
               "(as GPT-2), which can encode any text without unknown tokens. Early "
               "experiments showed slight differences, the byte-level one slightly worse on "
               "some tasks, but RoBERTa chose it for its universal encoding."),
        fairness=("Same text, seed, steps and tokens per step. A token of the larger "
                  "vocabulary holds more text, so its per-token accuracy and perplexity "
                  "measure a different task: the two are drawn side by side but not judged "
                  "against each other."),
        same_validation=False),
)}
CUSTOM_ID = "custom"


# --- training two runs together --------------------------------------------------------------

class ComparedPretrainer(Pretrainer):
    """A Pretrainer that can be scored on validation batches it is given, so that both sides of
    a comparison are judged on exactly the same held-out predictions."""

    def __init__(self, *args, validation: list[dict[str, torch.Tensor]] | None = None,
                 **kwargs):
        self._given_validation = validation  # read by _validation_batches during __init__
        super().__init__(*args, **kwargs)

    def _validation_batches(self) -> list[dict[str, torch.Tensor]]:
        if self._given_validation is not None:
            return self._given_validation
        return super()._validation_batches()

    @property
    def validation_batches(self) -> list[dict[str, torch.Tensor]]:
        return self._validation

    def masked_positions(self) -> int:
        """How many validation predictions showed <mask> (the <mask>-only accuracy's n)."""
        mask_id = self.tokenizer.mask_token_id
        return sum(int(((b["input_ids"] == mask_id) & (b["labels"] != IGNORE_INDEX)).sum())
                   for b in self._validation)


@dataclass
class PairedEvent:
    side: int  # 0 = A, 1 = B
    event: TrainEvent


class PairedRun:
    """Two trainers, interleaved: each turn goes to the side that has done the smaller share of
    its own steps (A on ties), so with equal budgets the order is A, B, A, B… and with a 4× larger
    batch on B it is A, B, A, A, A, A, B…: both move through the data together. `stop()` (from
    any thread) lets the side that is behind catch up, without passing the other, then stops
    both; a side that fails stops the other the same way."""

    def __init__(self, a: Trainer, b: Trainer):
        self.trainers = (a, b)
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def progress(self, side: int) -> float:
        trainer = self.trainers[side]
        return trainer.step / trainer.config.max_steps

    def run(self) -> Iterator[PairedEvent]:
        runs = [t.run() for t in self.trainers]
        finished = [False, False]

        def advance(side: int) -> Iterator[PairedEvent]:
            """Side's events up to and including its next step (or its end)."""
            for event in runs[side]:
                yield PairedEvent(side, event)
                if event.finished:
                    break
                if event.kind == "step":
                    return
            finished[side] = True

        while not all(finished):
            if self._stop.is_set():
                break
            open_sides = [s for s in (0, 1) if not finished[s]]
            side = min(open_sides, key=lambda s: (self.progress(s), s))
            for paired in advance(side):
                yield paired
                if paired.event.kind == "failed":
                    self._stop.set()
            if finished[side] and self.trainers[side].step < self.trainers[side].config.max_steps:
                self._stop.set()  # a side ended early (failed or stopped): end the other too
        # Stopping: the side that is behind catches up without passing the other, then both stop.
        while True:
            behind = min((0, 1), key=lambda s: (self.progress(s), s))
            ahead = 1 - behind
            trainer = self.trainers[behind]
            if finished[behind] or (trainer.step + 1) / trainer.config.max_steps > \
                    self.progress(ahead) + 1e-12:
                break
            yield from advance(behind)
        for side in (0, 1):
            self.trainers[side].stop()
            while not finished[side]:
                yield from advance(side)


# --- the verdict -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Spread:
    """Seed-to-seed spread of the difference B − A, measured by bench/experiments.py."""

    comparison: str
    max_steps: int  # the budget it was measured at (side A's steps)
    seeds: tuple[int, ...]
    command: str
    machine: str
    # eval step (of side A) -> {"mask_accuracy": [B − A per seed], "loss": [...]}
    differences: Mapping[int, Mapping[str, list[float]]]

    def sd(self, step: int, metric: str) -> float | None:
        """Standard deviation over seeds of the difference, at the measured step nearest to
        `step` (None when fewer than 2 seeds)."""
        if not self.differences:
            return None
        nearest = min(self.differences, key=lambda s: (abs(s - step), -s))
        values = self.differences[nearest].get(metric, [])
        return statistics.stdev(values) if len(values) >= 2 else None


def load_spreads(path: Path = SPREAD_FILE) -> dict[str, Spread]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {cid: Spread(cid, int(entry["max_steps"]), tuple(entry["seeds"]), entry["command"],
                        entry.get("machine", ""),
                        {int(step): diffs for step, diffs in entry["differences"].items()})
            for cid, entry in raw.items()}


@dataclass(frozen=True)
class Verdict:
    step: int
    mask_difference: float  # B − A, accuracy where the input was <mask> (fraction)
    loss_difference: float  # B − A, validation loss (log perplexity)
    noise: float  # the band |difference| must leave to count, same units as mask_difference
    noise_source: str
    within_noise: bool | None  # None: not judged (different tasks)
    text: str


def sampling_noise(accuracy_a: float, accuracy_b: float, n: int) -> float:
    """Two standard errors of a difference of two accuracies measured on n predictions each: the
    evaluation's own noise, a lower bound on the seed-to-seed spread."""
    if n <= 0:
        return float("inf")
    variance = (accuracy_a * (1 - accuracy_a) + accuracy_b * (1 - accuracy_b)) / n
    return 2 * math.sqrt(variance)


def verdict(comparison: Comparison, label_a: str, label_b: str, step: int,
            metrics_a: Mapping[str, float], metrics_b: Mapping[str, float], n_masked: int,
            spread: Spread | None, budget_matches: bool) -> Verdict:
    """What this run found, in a sentence, with its size against the noise."""
    acc_a, acc_b = metrics_a["val_mask_accuracy"], metrics_b["val_mask_accuracy"]
    loss_a, loss_b = metrics_a["val_loss"], metrics_b["val_loss"]
    diff, loss_diff = acc_b - acc_a, loss_b - loss_a
    figures = (f"At the end ({label_a} vs {label_b}): accuracy where the input was <mask> "
               f"{acc_a:.1%} vs {acc_b:.1%}, perplexity {math.exp(min(loss_a, 50)):,.1f} vs "
               f"{math.exp(min(loss_b, 50)):,.1f}.")
    if not comparison.same_validation:
        return Verdict(step, diff, loss_diff, float("nan"), "", None,
                       f"{figures} Per-token figures of different vocabularies measure "
                       f"different tasks, so this difference is not judged.")
    floor = sampling_noise(acc_a, acc_b, n_masked)
    sd = spread.sd(step, "mask_accuracy") if spread is not None and budget_matches else None
    if sd is not None:
        noise = max(2 * sd, floor)
        source = (f"twice the seed-to-seed spread of this difference ({len(spread.seeds)} seeds "
                  f"at these defaults, bench/experiments.py)")
    else:
        noise = floor
        why = ("was not measured for these settings" if spread is None else
               f"was measured for full runs of {spread.max_steps:,} steps only")
        source = (f"the evaluation's own sampling noise on {n_masked:,} <mask> predictions — "
                  f"a lower bound: the seed-to-seed spread {why}")
    loss_sd = spread.sd(step, "loss") if sd is not None else None
    within = abs(diff) < noise
    better = label_a if diff < 0 else label_b
    if within:
        finding = (f"The difference, {diff * 100:+.1f} points, is **within noise** (±"
                   f"{noise * 100:.1f} points: {source}).")
    else:
        finding = (f"**{better}** is ahead by {abs(diff) * 100:.1f} points where the input "
                   f"was <mask>, more than the noise (±{noise * 100:.1f} points: {source}).")
    if loss_sd is not None:
        loss_within = abs(loss_diff) < 2 * loss_sd
        finding += (f" Perplexity: the log-perplexity difference {loss_diff:+.3f} is "
                    f"{'within' if loss_within else 'outside'} its noise (±{2 * loss_sd:.3f}).")
    return Verdict(step, diff, loss_diff, noise, source, within, f"{figures} {finding}")
