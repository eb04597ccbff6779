"""A pretraining run as a person chooses it: text, tokenizer, model size, start, masking,
optimisation, device. The Train tab's form, the Experiments tab's sides and the benchmarks are
made of these settings; `resolve` checks them and fills in the defaults that depend on others.

`ONE_MINUTE_RUN` (the defaults) is the point of this module. A workshop presenter presses Start
and the room must see the loss fall and the probe guesses change within a minute, on a 2-core
CPU, from scratch. It was chosen by measurement (bench/train_first_minute.py and
bench/plateau.py): the 2-layer, 128-wide "micro" model from the structured start
(roberta/init.py) with its position rows held, a 2,048-token BPE (a smaller vocabulary is
learned faster), batches of 8 (this early, more updates beat bigger batches), no dropout, peak
learning rate 2e-3 after 150 warmup steps and a linear decay to zero at step 3,000 (~90 s on
two threads of a CPU with native bf16, ~130 s on one), evaluated every 50. Wider models take a
lower peak rate (`default_learning_rate`): at 2e-3 the 4-layer, 256-wide tiny preset stays on
the plateau even from the structured start. A short warmup (40 steps) left some seeds of micro
and tiny on the plateau for hundreds of steps more; 150 did not (bench/plateau.py, README).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..config import PRESETS, RobertaConfig
from ..data import DataError
from ..init import INIT_CHOICES, STRUCTURED_START, StructuredInit, initialise_
from ..masking import MaskingConfig
from ..model import RobertaForMaskedLM
from ..settings import SettingError, TrainingError, check, like, setting
from ..timelapse import MAX_SNAPSHOTS
from ..tokenizer import RobertaTokenizer
from .config import DEFAULT_PROBES, HOLD_WHOLE_RUN, PretrainConfig, TrainConfig
from .devices import cpu_supports_bf16
from .pretraining import PretrainingData, prepare_pretraining_data

CORPUS_CHOICES = (
    ("Bundled: BBC News + fine-food reviews (1.6M tokens)", "bundled"),
    ("Uploaded .txt file(s)", "upload"),
    ("Pasted text", "pasted"),
)
TOKENIZER_CHOICES = (
    ("Train a new byte-level BPE on the corpus", "new"),
    ("The embedded model's tokenizer", "embedded"),
)
SIZE_CHOICES = tuple(name for name in PRESETS if name not in ("base", "large")) + (
    "base", "large", "custom")
INIT_LABELS = (
    ("Structured start: neighbour heads built in at step 0", "structured"),
    ("RoBERTa's random start, N(0, 0.02)", "roberta"),
)
DEVICE_CHOICES = ("cpu", "cuda")

DATA_SPLIT_SEED = 0  # the train/validation split stays put when the training seed changes
MIN_VOCAB = 300  # a byte-level BPE needs its 256 bytes and the special tokens first
MAX_PROBES = 8
SIZE = "micro"  # 2 layers, 128 wide: past the plateau within a minute on a 2-core CPU
SHAPE = PRESETS[SIZE]


def _values(choices: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(value for _, value in choices)


@dataclass
class PretrainSettings:
    """Every choice of a pretraining run. The defaults are the tuned one-minute run."""

    max_steps: int = like(PretrainConfig, "max_steps", 3000)
    corpus: str = setting("bundled", "corpus", choices=_values(CORPUS_CHOICES))
    upload_paths: Sequence[str] = ()
    pasted_text: str = ""
    tokenizer: str = setting("new", "tokenizer choice", choices=_values(TOKENIZER_CHOICES))
    vocab_size: int = like(RobertaConfig, "vocab_size", 2048, minimum=MIN_VOCAB,
                           maximum=65_536, help="smaller vocabularies learn faster but split "
                                                "words into more pieces")
    size: str = setting(SIZE, "model size", choices=SIZE_CHOICES)
    # The custom size's shape (at first the preset's); ignored for a named preset.
    num_layers: int = like(RobertaConfig, "num_hidden_layers", SHAPE["num_hidden_layers"],
                           label="Layers", minimum=1, maximum=24)
    hidden_size: int = like(RobertaConfig, "hidden_size", SHAPE["hidden_size"], minimum=1,
                            maximum=4096)
    num_heads: int = like(RobertaConfig, "num_attention_heads", SHAPE["num_attention_heads"],
                          label="Attention heads", minimum=1, maximum=64)
    ffn_size: int = like(RobertaConfig, "intermediate_size", SHAPE["intermediate_size"],
                         minimum=1, maximum=16384)
    # A 2-layer model trained for a minute underfits: dropout only slows it.
    dropout: float = like(RobertaConfig, "hidden_dropout_prob", 0.0, label="Dropout")
    seq_length: int = like(PretrainConfig, "seq_length")
    mlm_probability: float = like(MaskingConfig, "mlm_probability")
    mask_fraction: float = like(MaskingConfig, "mask_fraction")
    random_fraction: float = like(MaskingConfig, "random_fraction")
    whole_word: bool = False
    static_masking: bool = False
    learning_rate: float | None = like(PretrainConfig, "learning_rate")
    warmup_steps: int | None = like(PretrainConfig, "warmup_steps")
    batch_size: int = like(PretrainConfig, "batch_size", 8)  # more updates beat bigger batches
    seed: int = like(TrainConfig, "seed")
    init: str = setting(STRUCTURED_START, "initialisation", choices=INIT_CHOICES)
    # The structured start's position rows: fixed for the run (ignored for RoBERTa's start).
    hold_positions_steps: int = like(PretrainConfig, "hold_positions_steps", HOLD_WHOLE_RUN)
    eval_every: int = like(PretrainConfig, "eval_every", 50)
    eval_sequences: int = like(PretrainConfig, "eval_sequences", 128)
    device: str = like(TrainConfig, "device", "cpu", choices=DEVICE_CHOICES)
    precision: str = like(TrainConfig, "precision")
    probes: Sequence[str] = DEFAULT_PROBES
    snapshots: int = like(PretrainConfig, "snapshots", MAX_SNAPSHOTS)  # every app run has one


ONE_MINUTE_RUN = PretrainSettings()


def parse_probes(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Probe sentences, one per line; each needs a <mask>. Empty: the default probes."""
    lines = text.splitlines() if isinstance(text, str) else list(text or ())
    probes = tuple(line.strip() for line in lines if line and line.strip())
    if not probes:
        return DEFAULT_PROBES
    if len(probes) > MAX_PROBES:
        raise SettingError("Give at most {most} probe sentences (there are {count}).",
                           most=MAX_PROBES, count=len(probes))
    for probe in probes:
        if "<mask>" not in probe:
            raise SettingError("The probe sentence “{probe}” has no <mask>: put <mask> where "
                               "the model should guess a word.", probe=probe)
    return probes


def resolve(settings: PretrainSettings) -> tuple[PretrainSettings, list[str]]:
    """The settings checked, with the named size's shape, the default learning rate and
    warmup filled in, and the probes parsed; and warnings. SettingError for impossible ones."""
    s, warnings = settings, []
    check(s)
    if s.device == "cuda" and not torch.cuda.is_available():
        raise SettingError("CUDA was chosen but this machine has no CUDA GPU; choose cpu.")
    if s.precision == "fp16" and s.device != "cuda":
        raise SettingError("fp16 training needs a CUDA GPU. On the CPU use fp32 (or auto).")
    if s.precision == "bf16" and s.device == "cpu" and not cpu_supports_bf16():
        warnings.append("This CPU has no native bfloat16, so bf16 runs emulated and far slower "
                        "than fp32. Choose auto or fp32 for speed.")
    clean = with_shape(replace(s, probes=parse_probes(s.probes)))
    model_config(clean, clean.vocab_size)  # the largest vocabulary it can have
    training, notes = pretrain_config(clean).resolved(clean.hidden_size)
    training.validate()
    warnings += notes
    if training.learning_rate > 1e-2:
        warnings.append(f"A learning rate of {training.learning_rate:g} is very high for a "
                        f"post-LayerNorm transformer; the loss may jump or become NaN.")
    if s.init == "structured":
        try:
            StructuredInit().validate(clean.hidden_size, clean.num_heads, clean.num_layers)
        except ValueError as err:
            raise SettingError("This model cannot take the structured start ({why}); choose "
                               "RoBERTa's random start or wider heads.", why=err) from None
    return replace(clean, learning_rate=training.learning_rate,
                   warmup_steps=training.warmup_steps), warnings


def with_shape(settings: PretrainSettings) -> PretrainSettings:
    """The settings with the named preset's shape (a custom size keeps its own)."""
    if settings.size == "custom":
        return settings
    shape = PRESETS[settings.size]
    return replace(settings, num_layers=shape["num_hidden_layers"],
                   hidden_size=shape["hidden_size"], num_heads=shape["num_attention_heads"],
                   ffn_size=shape["intermediate_size"])


def model_config(settings: PretrainSettings, vocab_size: int) -> RobertaConfig:
    """The model's shape: the preset's (or the custom one), the tokenizer's exact vocabulary,
    and enough positions for the sequence length."""
    return RobertaConfig.preset(
        settings.size, seq_length=settings.seq_length, vocab_size=vocab_size,
        hidden_size=settings.hidden_size, num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads, intermediate_size=settings.ffn_size,
        hidden_dropout_prob=settings.dropout, attention_probs_dropout_prob=settings.dropout)


def pretrain_config(settings: PretrainSettings) -> PretrainConfig:
    """The engine's settings for this run (the rest: PretrainConfig's defaults)."""
    s = settings
    return PretrainConfig(
        max_steps=s.max_steps, batch_size=s.batch_size, learning_rate=s.learning_rate,
        warmup_steps=s.warmup_steps, precision=s.precision, device=s.device, seed=s.seed,
        eval_every=s.eval_every, seq_length=s.seq_length, static_masking=s.static_masking,
        eval_sequences=s.eval_sequences, probes=tuple(s.probes), snapshots=s.snapshots,
        masking=MaskingConfig(s.mlm_probability, s.mask_fraction, s.random_fraction,
                              s.whole_word),
        hold_positions_steps=PretrainConfig.hold_for(s.init, s.hold_positions_steps))


def new_tokenizer(settings: PretrainSettings, texts: Sequence[str]) -> RobertaTokenizer:
    """A byte-level BPE of the settings' vocabulary size, trained on `texts`."""
    return RobertaTokenizer.train(texts, vocab_size=settings.vocab_size)


def pretraining_data(settings: PretrainSettings, texts: Sequence[str],
                     tokenizer: RobertaTokenizer,
                     packing: str = PretrainConfig.packing) -> PretrainingData:
    """`texts` split (by DATA_SPLIT_SEED, whatever the run's seed) and packed for this run."""
    try:
        return prepare_pretraining_data(texts, tokenizer, settings.seq_length,
                                        PretrainConfig.validation_fraction, DATA_SPLIT_SEED,
                                        packing=packing)
    except TrainingError as err:
        raise DataError(f"The corpus is too small to train on: {err}.") from err


def new_model(settings: PretrainSettings, tokenizer: RobertaTokenizer) -> RobertaForMaskedLM:
    """The run's model, drawn from the settings' seed and started as they say."""
    torch.manual_seed(settings.seed)
    model = RobertaForMaskedLM(model_config(settings, tokenizer.vocab_size))
    initialise_(model, settings.init)
    return model
