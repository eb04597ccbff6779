"""The settings of a training run, checked before anything is built.

`TrainConfig` is what the engine needs (optimizer, schedule, precision, device, cadence);
`PretrainConfig` and `FinetuneConfig` add what each kind of run needs. A `None` learning rate or
warmup in a PretrainConfig means "the default for this model and run" (`for_width`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..masking import MaskingConfig

DEFAULT_PROBES = (
    "The government said the new <mask> would cost millions.",
    "This coffee tastes <mask> and I will buy it again.",
    "The film was a huge <mask> at the box office.",
    "I gave my dog a <mask> and he loved it.",
)


class TrainingError(ValueError):
    """Impossible settings or data for a run, in a plain sentence."""


@dataclass
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.0  # linear decay from the peak down to this fraction at max_steps
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-6
    grad_clip: float = 1.0  # 0 disables clipping
    grad_accum_steps: int = 1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | mps | cuda:N
    seed: int = 0
    eval_every: int = 50
    checkpoint_every: int = 0  # 0: only at the end (when output_dir is set)
    output_dir: str | None = None

    def validate(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum_steps", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise TrainingError(f"{name} must be at least 1 (a whole number), "
                                    f"got {getattr(self, name)!r}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise TrainingError(f"learning_rate must be above 0 and below 1, got "
                                f"{self.learning_rate:g}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise TrainingError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not 0 <= self.seed < 2**31:
            raise TrainingError(f"seed must be between 0 and {2**31 - 1}, got {self.seed!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise TrainingError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.checkpoint_every < 0:
            raise TrainingError("weight_decay, grad_clip and checkpoint_every must be >= 0")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise TrainingError(f"precision must be auto, fp32, bf16 or fp16, "
                                f"got {self.precision!r}")


def default_learning_rate(hidden_size: int) -> float:
    """The peak pretraining rate a model learns at from the structured start: 2e-3 at 128 wide,
    scaled as 1/width (Adam's updates to a hidden matrix grow with its width). Measured with
    bench/plateau.py: micro leaves the plateau at 2e-3; tiny (256 wide) stays on it at 2e-3 and
    leaves it at 1e-3; mini (384) leaves it at 6.7e-4."""
    return 2e-3 * min(1.0, 128 / hidden_size)


def default_warmup(max_steps: int) -> int:
    """150 warmup steps, or a tenth of a shorter run. With 40, some seeds of micro and tiny sat
    on the plateau hundreds of steps longer, even from the structured start (bench/plateau.py)."""
    return min(150, max_steps // 10)


@dataclass
class PretrainConfig(TrainConfig):
    learning_rate: float | None = None  # None: default_learning_rate for the model's width
    warmup_steps: int | None = None  # None: default_warmup for the run's length
    eval_every: int = 100
    seq_length: int = 128
    validation_fraction: float = 0.02
    packing: str = "full_sentences"  # or doc_sentences (RoBERTa paper, section 4.2)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    static_masking: bool = False  # the paper's baseline: masks fixed once, duplicated copies
    static_copies: int = 10
    eval_sequences: int = 256  # validation sequences scored at every evaluation
    probes: tuple[str, ...] = DEFAULT_PROBES
    # Steps the position embeddings stay fixed, -1 for the whole run. A structured start
    # (roberta/init.py) needs its position rows held while the rest learns to use them.
    hold_positions_steps: int = 0

    @staticmethod
    def hold_for(init: str, steps: int = -1) -> int:
        """hold_positions_steps for a start ("structured" or "roberta"): only the structured
        start's position rows are held (`steps`, -1 the whole run); RoBERTa's random positions
        must learn from step 0."""
        return steps if init == "structured" else 0

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.seq_length, int) or self.seq_length < 8:
            raise TrainingError(f"seq_length must be an integer >= 8, got {self.seq_length!r}")
        if not 0 < self.validation_fraction < 0.5:
            raise TrainingError("validation_fraction must be in (0, 0.5)")
        if self.static_copies < 1 or self.eval_sequences < 1:
            raise TrainingError("static_copies and eval_sequences must be positive")
        if not isinstance(self.hold_positions_steps, int) or self.hold_positions_steps < -1:
            raise TrainingError(f"hold_positions_steps must be -1 (the whole run), 0 or a "
                                f"number of steps, got {self.hold_positions_steps!r}")

    def for_width(self, hidden_size: int) -> PretrainConfig:
        """This config with its defaults filled in for a model `hidden_size` wide."""
        lr, warmup = self.learning_rate, self.warmup_steps
        return dataclasses.replace(
            self, learning_rate=default_learning_rate(hidden_size) if lr is None else lr,
            warmup_steps=default_warmup(self.max_steps) if warmup is None else warmup)


# A new classifier's dropout, whatever its masked LM was pretrained with (the embedded one: none).
FINETUNE_DROPOUT = 0.1



@dataclass
class FinetuneConfig(TrainConfig):
    max_steps: int = 300
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup_steps: int = 30
    seq_length: int = 128
    validation_fraction: float = 0.1
    eval_every: int = 25
    # Batches of texts of like length (drawn at random within groups of 64 batches' worth):
    # a batch pads to its longest text, and one review among 31 tweets pads them all.
    group_by_length: bool = True
