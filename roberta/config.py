"""RobertaConfig: one dataclass, transformers' field names, RoBERTa's defaults.

The field names match `transformers.RobertaConfig` so a `config.json` written by either library
reads in the other unchanged. Keys we do not model (`architectures`, `torch_dtype`, ...) are kept in
`extra` and written back out, so a round trip loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .settings import SettingError, setting

# Shapes of the named presets. Positions are always sequence length + 2 (RoBERTa's position ids
# start at padding_idx + 1), so 128 tokens need 130 positions and 512 need 514.
PRESETS: dict[str, dict[str, Any]] = {
    # For tests: well under 1M parameters.
    "nano": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=256, vocab_size=1024, max_position_embeddings=130),
    # Learns visibly within a minute on a 2-core CPU: the live Train tab's default.
    "micro": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=512, vocab_size=4096, max_position_embeddings=130),
    "tiny": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                 intermediate_size=1024, vocab_size=8192, max_position_embeddings=258),
    "mini": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                 intermediate_size=1536, vocab_size=8192, max_position_embeddings=514),
    "small": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
                  intermediate_size=2048, vocab_size=16384, max_position_embeddings=514),
    # The shapes of FacebookAI/roberta-base and roberta-large.
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, vocab_size=50265, max_position_embeddings=514),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, vocab_size=50265, max_position_embeddings=514),
}


MAX_LABELS = 10_000  # a bound on num_labels / id2label, so a config cannot ask for millions


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A config value in a message: short, whatever it holds."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


@dataclass
class RobertaConfig:
    vocab_size: int = setting(50265, "the vocabulary size", flag="--vocab-size")
    hidden_size: int = setting(768, "the hidden size", flag="--hidden")
    num_hidden_layers: int = setting(12, "the number of layers", flag="--layers")
    num_attention_heads: int = setting(12, "the number of attention heads", flag="--heads")
    intermediate_size: int = setting(3072, "the feed-forward size", flag="--ffn")
    hidden_act: str = "gelu"
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5  # roberta-base's value; transformers' class default is 1e-12
    hidden_dropout_prob: float = setting(0.1, "dropout", flag="--dropout")
    attention_probs_dropout_prob: float = setting(0.1, "dropout", flag="--dropout")
    classifier_dropout: float | None = None  # None: use hidden_dropout_prob
    initializer_range: float = 0.02
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not _is_int(self.num_labels) or not 1 <= self.num_labels <= MAX_LABELS:
            raise ValueError(f"num_labels must be a whole number from 1 to {MAX_LABELS:,}, got "
                             f"{_shown(self.num_labels)}")
        if self.id2label is None:
            self.id2label = {i: f"LABEL_{i}" for i in range(self.num_labels)}
        for name in ("id2label", "label2id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, dict) or len(value) > MAX_LABELS):
                raise ValueError(f"{name} must map labels to ids (at most {MAX_LABELS:,} of "
                                 f"them), got {_shown(value)}")
        # JSON turns int keys into strings; give them back their type.
        try:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
            self.num_labels = len(self.id2label)
            if self.label2id is None:
                self.label2id = {v: k for k, v in self.id2label.items()}
            self.label2id = {str(k): int(v) for k, v in self.label2id.items()}
        except (TypeError, ValueError) as err:
            raise ValueError("id2label and label2id must pair whole-number ids with label "
                             "names") from err
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field of an impossible configuration."""
        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings", "type_vocab_size")
        for name in positive:
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise SettingError(f"{{{name}}} must be a positive integer, got {{value}}",
                                   value=_shown(value))
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if not _is_int(getattr(self, name)):
                raise ValueError(f"{name} must be a whole number, got "
                                 f"{_shown(getattr(self, name))}")
        if self.hidden_size % self.num_attention_heads:
            raise SettingError("{hidden_size} ({size}) must be divisible by "
                               "{num_attention_heads} ({heads})", size=self.hidden_size,
                               heads=self.num_attention_heads)
        if self.max_position_embeddings < self.pad_token_id + 2:
            raise ValueError(
                f"max_position_embeddings ({self.max_position_embeddings}) is too small: RoBERTa "
                f"positions start at pad_token_id + 1 = {self.pad_token_id + 1}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps",
                     "initializer_range", "classifier_dropout"):
            value = getattr(self, name)
            if name == "classifier_dropout" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"{name} must be a number, got {_shown(value)}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) < 1.0:
                raise SettingError(f"{{{name}}} must be in [0, 1), got {{value}}",
                                   value=repr(getattr(self, name)))
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(f"{name} ({getattr(self, name)}) is outside the vocabulary "
                                 f"(vocab_size {self.vocab_size})")
        if self.hidden_act != "gelu":
            raise ValueError(f"hidden_act must be 'gelu' (RoBERTa's erf GELU), got "
                             f"{_shown(self.hidden_act)}")

    @property
    def max_sequence_length(self) -> int:
        """Longest input the position table covers: two rows sit below the first position."""
        return self.max_position_embeddings - self.pad_token_id - 1

    @classmethod
    def preset(cls, name: str, seq_length: int | None = None, **overrides: Any) -> RobertaConfig:
        """The named shape ("custom": none, the overrides give it) with `overrides`; with
        `seq_length`, positions for sequences that long (never fewer than the preset's)."""
        if name not in PRESETS and name != "custom":
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        shape = {**PRESETS.get(name, {}), **overrides}
        if seq_length is not None:
            shape["max_position_embeddings"] = max(
                seq_length + 2, PRESETS.get(name, {}).get("max_position_embeddings", 0))
        return cls(**shape)

    # --- config.json, as transformers reads and writes it ---------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "extra"}
        data["id2label"] = {str(k): v for k, v in self.id2label.items()}
        return {**self.extra, **data, "model_type": "roberta"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobertaConfig:
        model_type = data.get("model_type", "roberta")
        if model_type != "roberta":
            raise ValueError(f"config.json describes a {_shown(model_type)} model, not "
                             f"'roberta'")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known and k != "model_type"}
        return cls(**kwargs, extra=extra)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RobertaConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read config {path}: {err}") from err
        except RecursionError:
            raise ValueError(f"config {path} is nested too deeply to be a config") from None
        if not isinstance(data, dict):
            raise ValueError(f"config {path} is not a JSON object")
        try:
            return cls.from_dict(data)
        except TypeError as err:  # e.g. a field of the wrong type
            raise ValueError(f"config {path} is invalid: {err}") from err
