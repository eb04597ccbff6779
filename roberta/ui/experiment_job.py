"""What the Experiments tab runs, free of Gradio: two Train-tab configurations that differ in one
setting, prepared and trained together as one `PairedRun` (roberta/experiments.py).

The Train tab's own pieces are reused as they are (pretrain_job: settings validation, the cached
corpus, tokenizers and packed data, the model builder), so a side of a comparison is exactly the
run the Train tab would make with those settings. What the Train tab has no control for —
DOC-SENTENCES packing, training on a subset of the sequences, the number of static copies — is
added here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from roberta.experiments import (
    COMPARISONS,
    CUSTOM_ID,
    EXTRA_SETTINGS,
    ComparedPretrainer,
    Comparison,
    ExperimentError,
    PairedRun,
    Spread,
    load_spreads,
)
from roberta.packing import PACKING_MODES, PackedSequences
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import PretrainConfig
from roberta.training.pretrain_settings import DATA_SPLIT_SEED, PretrainSettings, pretrain_config
from roberta.training.pretraining import PretrainingData, prepare_pretraining_data

from .limits import LimitError, check_batch_tokens, check_steps
from .pretrain_job import (
    PACKED_DATA,
    build_model,
    get_data,
    get_tokenizer,
    load_corpus,
    validate,
)
from .runs import SettingsError, as_int

# The settings "custom" can compare: Train-tab fields, plus packing. (name, what it parses to)
CUSTOM_SETTINGS: dict[str, type] = {
    "init": str, "learning_rate": float, "warmup_steps": int, "batch_size": int,
    "mlm_probability": float, "mask_fraction": float, "random_fraction": float,
    "static_masking": bool, "whole_word": bool, "vocab_size": int, "size": str,
    "dropout": float, "hold_positions_steps": int, "seq_length": int, "packing": str,
}
# Settings whose sides cannot be scored on the same held-out sequences.
SEPARATE_VALIDATION = {"vocab_size", "seq_length", "size"}


def _parse(name: str, kind: type, text: Any) -> Any:
    raw = str(text).strip()
    if raw == "":
        raise ExperimentError(f"Give a value for each side of “{name}”.")
    if kind is bool:
        lowered = raw.lower()
        if lowered in ("true", "yes", "1", "on", "static"):
            return True
        if lowered in ("false", "no", "0", "off", "dynamic"):
            return False
        raise ExperimentError(f"“{name}” is true or false, not {raw!r}.")
    if kind is int:
        return _whole(name, raw, -1)
    if kind is float:
        try:
            value = float(raw)
        except ValueError:
            raise ExperimentError(f"“{name}” must be a number, not {raw!r}.") from None
        if not math.isfinite(value):
            raise ExperimentError(f"“{name}” must be a finite number.")
        return value
    return raw


def custom_comparison(setting: str | None, value_a: Any, value_b: Any) -> Comparison:
    """A comparison of any two values of one Train-tab setting, e.g. ("learning_rate", "1e-3",
    "3e-3"). ExperimentError for an unknown setting or two identical values."""
    if setting not in CUSTOM_SETTINGS:
        raise ExperimentError(f"Choose the setting to compare: one of "
                              f"{', '.join(CUSTOM_SETTINGS)} (not {setting!r}).")
    kind = CUSTOM_SETTINGS[setting]
    a, b = _parse(setting, kind, value_a), _parse(setting, kind, value_b)
    if a == b:
        raise ExperimentError(f"The two configurations are identical ({setting} = {a!r} on both "
                              f"sides): give the two sides different values.")
    if setting == "packing" and not {a, b} <= set(PACKING_MODES):
        raise ExperimentError(f"Packing is {' or '.join(PACKING_MODES)}.")
    return Comparison(
        CUSTOM_ID, f"Custom: {setting} = {a} vs {b}", setting, f"{setting} = {a}",
        f"{setting} = {b}", {setting: a}, {setting: b},
        paper="A comparison of your own: the two runs differ only in this setting.",
        fairness=("Same text, seed and budget; where the setting does not change the batches "
                  "they are the same batches in the same order."),
        same_validation=setting not in SEPARATE_VALIDATION)


def comparison_for(comparison_id: str | None, setting: str | None = None, value_a: Any = "",
                   value_b: Any = "") -> Comparison:
    if comparison_id == CUSTOM_ID:
        return custom_comparison(setting, value_a, value_b)
    if comparison_id not in COMPARISONS:
        raise ExperimentError(f"Unknown comparison {comparison_id!r}: choose one of "
                              f"{', '.join([*COMPARISONS, CUSTOM_ID])}.")
    return COMPARISONS[comparison_id]


@dataclass
class Side:
    label: str
    settings: PretrainSettings  # validated
    extras: dict[str, Any]  # packing, train_sequences, static_copies


def _whole(label: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    number = as_int(label, value, maximum)
    if number < minimum:
        raise SettingsError(f"{label} must be at least {minimum}; it is {number}.")
    return number


def side_settings(comparison: Comparison, seed: int = 0,
                  max_steps: int | None = None) -> tuple[Side, Side, list[str]]:
    """Both sides' validated settings (same seed), and any warnings. A given `max_steps` is side
    A's budget; side B's is scaled with it (the batch comparison keeps its equal tokens)."""
    seed = _whole("Seed", seed, 0, 2**31 - 1)
    overrides = comparison.sides()
    factor = 1.0
    if max_steps not in (None, ""):
        steps = _whole("Steps", max_steps, 2)
        factor = steps / overrides[0]["max_steps"]
    sides, warnings = [], []
    for label, override in zip((comparison.label_a, comparison.label_b), overrides,
                               strict=True):
        override = dict(override)
        if factor != 1.0:
            for name in ("max_steps", "warmup_steps"):
                override[name] = max(1 if name == "max_steps" else 0,
                                     round(override[name] * factor))
        extras = {k: override.pop(k) for k in EXTRA_SETTINGS if k in override}
        try:
            settings, side_warnings = validate(PretrainSettings(**override, seed=seed))
        except TypeError as err:  # an override that is not a Train-tab setting
            raise ExperimentError(f"Not a Train-tab setting: {err}.") from None
        except LimitError as err:  # say which side is over the host's caps
            raise LimitError(f"{label}: {err}") from None
        check_steps(settings.max_steps)
        warnings += [f"{label}: {w}" for w in side_warnings]
        sides.append(Side(label, settings, extras))
    return sides[0], sides[1], warnings


def packed_data(settings: PretrainSettings, extras: Mapping[str, Any],
                embedded: RobertaTokenizer | None) -> tuple[RobertaTokenizer, PretrainingData]:
    """The side's tokenizer and packed data, from the Train tab's per-process caches."""
    corpus = load_corpus(settings)
    key, tokenizer = get_tokenizer(settings, corpus, embedded)
    packing = extras.get("packing", "full_sentences")
    if packing not in PACKING_MODES:
        raise ExperimentError(f"Packing is {' or '.join(PACKING_MODES)}, not {packing!r}.")
    if packing == "full_sentences":
        data = get_data(settings, corpus, key, tokenizer)
    else:  # a key get_data never uses (it has no packing element)
        data = PACKED_DATA.get(
            (corpus.key, key, settings.seq_length, packing),
            lambda: prepare_pretraining_data(corpus.texts, tokenizer, settings.seq_length,
                                             PretrainConfig.validation_fraction, DATA_SPLIT_SEED,
                                             packing=packing))
    subset = extras.get("train_sequences")
    if subset:
        data = training_subset(data, int(subset))
    return tokenizer, data


def training_subset(data: PretrainingData, n: int) -> PretrainingData:
    """n training sequences drawn at random (seed fixed: both sides get the same ones)."""
    if n >= len(data.train):
        return data
    rows = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(
        DATA_SPLIT_SEED))[:n].sort().values
    train = PackedSequences(data.train.input_ids[rows], data.train.attention_mask[rows])
    return PretrainingData(train, data.validation)


def real_tokens_per_sequence(data: PretrainingData) -> float:
    return data.train.num_tokens / max(1, len(data.train))


@dataclass
class ExperimentJob:
    comparison: Comparison
    sides: tuple[Side, Side]
    trainers: tuple[ComparedPretrainer, ComparedPretrainer]
    pair: PairedRun
    spread: Spread | None
    budget_matches: bool  # the spread was measured at exactly this budget
    notes: list[str]

    @property
    def labels(self) -> tuple[str, str]:
        return self.sides[0].label, self.sides[1].label

    def sequences_per_step(self, side: int) -> int:
        return self.sides[side].settings.batch_size


def build_job(comparison: Comparison, seed: int = 0, max_steps: int | None = None,
              embedded: RobertaTokenizer | None = None,
              stopped: Callable[[], bool] = lambda: False) -> ExperimentJob | None:
    """Prepare both sides (data, models, trainers). None when `stopped()` turned true."""
    side_a, side_b, notes = side_settings(comparison, seed, max_steps)
    if dataclasses.asdict(side_a.settings) == dataclasses.asdict(side_b.settings) and \
            side_a.extras == side_b.extras:
        raise ExperimentError("The two configurations are identical after checking the "
                              "settings: nothing would differ between the runs.")
    tokenizer_a, data_a = packed_data(side_a.settings, side_a.extras, embedded)
    if stopped():
        return None
    tokenizer_b, data_b = packed_data(side_b.settings, side_b.extras, embedded)
    if stopped():
        return None
    if comparison.equal_tokens:
        per_a, per_b = real_tokens_per_sequence(data_a), real_tokens_per_sequence(data_b)
        batch_b = max(1, round(side_a.settings.batch_size * per_a / per_b))
        check_batch_tokens(batch_b, side_b.settings.seq_length)
        side_b = replace(side_b, settings=replace(side_b.settings, batch_size=batch_b))
        notes.append(f"{side_b.label}: {per_b:.0f} real tokens per sequence against "
                     f"{per_a:.0f}, so batches of {batch_b} hold about as many tokens as "
                     f"{side_a.settings.batch_size} of {side_a.label}.")
    model_a = build_model(side_a.settings, tokenizer_a, what=side_a.label)
    trainer_a = ComparedPretrainer(model_a, tokenizer_a, data_a, config_for(side_a))
    model_b = build_model(side_b.settings, tokenizer_b, what=side_b.label)
    shared = trainer_a.validation_batches if comparison.same_validation else None
    trainer_b = ComparedPretrainer(model_b, tokenizer_b, data_b, config_for(side_b),
                                   validation=shared)
    spread = load_spreads().get(comparison.id) if comparison.id != CUSTOM_ID else None
    budget_matches = spread is not None and spread.max_steps == side_a.settings.max_steps
    return ExperimentJob(comparison, (side_a, side_b), (trainer_a, trainer_b),
                         PairedRun(trainer_a, trainer_b), spread, budget_matches, notes)


def config_for(side: Side) -> PretrainConfig:
    """The Train tab's config for these settings, with the side's number of static copies."""
    config = pretrain_config(side.settings)
    if "static_copies" in side.extras:
        config.static_copies = int(side.extras["static_copies"])
    return config

