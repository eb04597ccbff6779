"""The settings of a training run, checked before anything is built.

`TrainConfig` is what the engine needs (optimizer, schedule, precision, device, cadence);
`PretrainConfig` and `FinetuneConfig` add what each kind of run needs. A `None` learning rate or
warmup in a PretrainConfig means "the default for this model and run" (`resolved`). Each setting
is declared once, with its label, bounds and flag (roberta/settings.py); a kind of run that
shares one (`like`) changes only its default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..masking import MaskingConfig
from ..packing import PACKING_MODES
from ..settings import check, like, setting
from ..timelapse import MAX_SNAPSHOTS

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

DEFAULT_PROBES = (
    "The government said the new <mask> would cost millions.",
    "This coffee tastes <mask> and I will buy it again.",
    "The film was a huge <mask> at the box office.",
    "I gave my dog a <mask> and he loved it.",
)


@dataclass
class TrainConfig:
    max_steps: int = setting(1000, "Steps", minimum=1, flag="--max-steps")
    batch_size: int = setting(16, "the batch size", minimum=1, maximum=4096,
                              flag="--batch-size", help="per process")
    learning_rate: float = setting(1e-3, "the learning rate", minimum=0, above=True,
                                   maximum=1, below=True, flag="--lr", help="peak learning rate")
    warmup_steps: int = setting(50, "the warmup", minimum=0, flag="--warmup-steps")
    # linear decay from the peak down to this fraction at max_steps
    min_lr_ratio: float = setting(0.0, "the final learning-rate ratio", minimum=0, maximum=1,
                                  flag="--min-lr-ratio")
    weight_decay: float = setting(0.01, "the weight decay", minimum=0, flag="--weight-decay")
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-6
    grad_clip: float = setting(1.0, "gradient clipping", minimum=0, flag="--grad-clip",
                               help="0 disables clipping")
    grad_accum_steps: int = setting(1, "gradient accumulation", minimum=1, flag="--grad-accum")
    precision: str = setting("auto", "precision", choices=PRECISIONS, flag="--precision")
    device: str = setting("auto", "device", flag="--device",
                          help="auto, cpu, cuda, cuda:N or mps")
    seed: int = setting(0, "Seed", minimum=0, maximum=2**31 - 1, flag="--seed")
    eval_every: int = setting(50, "“Evaluate every”", minimum=1, flag="--eval-every")
    checkpoint_every: int = setting(0, "the checkpoint interval", minimum=0,
                                    flag="--checkpoint-every",
                                    help="0: only at the end (when output_dir is set)")
    output_dir: str | None = None

    def validate(self) -> None:
        check(self)


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


# Steps a structured start's position rows stay fixed unless a run says otherwise: the whole run
# (-1), the safest (roberta/init.py; bench/plateau.py measured 0 with a 150-step warmup as good).
HOLD_WHOLE_RUN = -1


@dataclass
class PretrainConfig(TrainConfig):
    learning_rate: float | None = like(TrainConfig, "learning_rate", None,
                                       unset="2e-3 x 128 / hidden size")
    warmup_steps: int | None = like(TrainConfig, "warmup_steps", None,
                                    unset="150, or a tenth of the run")
    eval_every: int = like(TrainConfig, "eval_every", 100)
    # A model has at most 512 positions (RoBERTa's 514 minus the padding offset).
    seq_length: int = setting(128, "the sequence length", minimum=8, maximum=512,
                              flag="--seq-length")
    validation_fraction: float = setting(0.02, "the validation fraction", minimum=0,
                                         above=True, maximum=0.5, below=True)
    # FULL-SENTENCES or DOC-SENTENCES (RoBERTa paper, section 4.2)
    packing: str = setting("full_sentences", "Packing", choices=PACKING_MODES, flag="--packing")
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    static_masking: bool = False  # the paper's baseline: masks fixed once, duplicated copies
    static_copies: int = setting(10, "static copies", minimum=1)
    eval_sequences: int = setting(256, "validation sequences", minimum=1, maximum=4096,
                                  help="validation sequences scored at every evaluation")
    probes: tuple[str, ...] = DEFAULT_PROBES
    # Steps the position embeddings stay fixed, -1 for the whole run. A structured start
    # (roberta/init.py) needs its position rows held while the rest learns to use them.
    hold_positions_steps: int = setting(
        0, "Hold positions for (steps)", minimum=HOLD_WHOLE_RUN, flag="--hold-positions",
        help="steps the structured start's position rows stay fixed (-1: the whole run, 0: "
             "trainable from the start)")
    # The run's time-lapse (roberta/timelapse.py). Off unless asked for here: a script or the
    # command line pays nothing and writes no extra file; the app's runs keep 60 (PretrainSettings).
    snapshots: int = setting(0, "Snapshots", minimum=0, maximum=MAX_SNAPSHOTS, flag="--snapshots",
                             help="keep at most N snapshots of the run for its time-lapse, "
                                  "saved beside the weights (0: none)")

    @staticmethod
    def hold_for(init: str, steps: int = HOLD_WHOLE_RUN) -> int:
        """hold_positions_steps for a start ("structured" or "roberta"): only the structured
        start's position rows are held (`steps`, -1 the whole run); RoBERTa's random positions
        must learn from step 0."""
        return steps if init == "structured" else 0

    def validate(self) -> None:
        check(self)

    def resolved(self, hidden_size: int) -> tuple[PretrainConfig, list[str]]:
        """This config with its defaults filled in for a model `hidden_size` wide, and notes on
        what was changed: a warmup as long as the run (the learning rate would never reach its
        peak) becomes the default warmup for the run's length."""
        lr, warmup, notes = self.learning_rate, self.warmup_steps, []
        default = default_warmup(self.max_steps)
        if warmup is not None and warmup >= self.max_steps > 0:
            notes.append(f"The warmup ({warmup} steps) is as long as the run ({self.max_steps} "
                         f"steps), so the learning rate would never reach its peak: warming up "
                         f"for {default} steps instead (a tenth of the run).")
            warmup = default
        return dataclasses.replace(
            self, learning_rate=default_learning_rate(hidden_size) if lr is None else lr,
            warmup_steps=default if warmup is None else warmup), notes


# A new classifier's dropout, whatever its masked LM was pretrained with (the embedded one: none).
FINETUNE_DROPOUT = 0.1


@dataclass
class FinetuneConfig(TrainConfig):
    max_steps: int = like(TrainConfig, "max_steps", 300)
    batch_size: int = like(TrainConfig, "batch_size", 32, maximum=512)
    learning_rate: float = like(TrainConfig, "learning_rate", 2e-4)
    warmup_steps: int = like(TrainConfig, "warmup_steps", 30, label="Warmup steps")
    seq_length: int = like(PretrainConfig, "seq_length", label="Max tokens per text")
    validation_fraction: float = like(PretrainConfig, "validation_fraction", 0.1,
                                       flag="--validation-fraction")
    eval_every: int = like(TrainConfig, "eval_every", 25)
    # Batches of texts of like length (drawn at random within groups of 64 batches' worth):
    # a batch pads to its longest text, and one review among 31 tweets pads them all.
    group_by_length: bool = True
