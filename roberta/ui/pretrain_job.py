"""What the Train tab runs, free of Gradio: settings, cached data, the model, the export.

The defaults are the point of this module. A workshop presenter presses Start and the room must
see the loss fall and the probe guesses change within a minute, on a 2-core CPU, from scratch.
`PretrainSettings()` is that run, chosen by measurement (bench/train_first_minute.py and
bench/plateau.py): the 2-layer, 128-wide "micro" model from the structured start
(roberta/init.py) with its position rows held, a 2,048-token BPE (a smaller vocabulary is
learned faster), batches of 8 (this early, more updates beat bigger batches), no dropout, peak
learning rate 2e-3 after 150 warmup steps and a linear decay to zero at step 3,000 (~90 s on
two threads of a CPU with native bf16, ~130 s on one), evaluated every 50. Wider models take a
lower peak rate (`default_learning_rate`): at 2e-3 the 4-layer, 256-wide tiny preset stays on
the plateau even from the structured start. A short warmup (40 steps) left some seeds of micro
and tiny on the plateau for hundreds of steps more; 150 did not (bench/plateau.py, README).

Turning the bundled corpus into packed sequences takes seconds (tokenizer training ~5 s,
tokenizing ~6 s on 2 cores), so tokenizers and packed data are cached per process and the
default is prepared in a background thread at app start (`prewarm_default_data`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import weakref
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from roberta.config import PRESETS, RobertaConfig
from roberta.data import (
    DataError,
    bundled_pretraining_corpus,
    read_pasted_text,
    read_text_file,
)
from roberta.init import INIT_CHOICES, StructuredInit, initialise_
from roberta.masking import MaskingConfig
from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import DEFAULT_PROBES, PretrainConfig, TrainingError, default_warmup
from roberta.training.devices import cpu_supports_bf16
from roberta.training.memory import training_memory_bytes
from roberta.training.pretraining import PretrainingData, prepare_pretraining_data

from .limits import (
    check_batch_tokens,
    check_parameters,
    check_steps,
    check_training_memory,
    check_upload,
    current_limits,
)
from .runs import (
    OnceCache,
    SettingsError,
    as_float,
    as_int,
    check_choice,
    fingerprint,
    labelled,
    same_fields,
)

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
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")

DATA_SPLIT_SEED = 0  # the train/validation split stays put when the training seed changes
MIN_VOCAB = 300  # a byte-level BPE needs its 256 bytes and the special tokens first
# The most this app offers of each (the library bounds the rest; limits.py the host's caps).
MAXIMA = {"batch_size": 4096, "seq_length": 512, "vocab_size": 65_536, "eval_sequences": 4096,
          "num_layers": 24, "hidden_size": 4096, "num_heads": 64, "ffn_size": 16384}
# The library's field names, as the Train tab calls them.
LABELS = {
    "max_steps": "Steps", "learning_rate": "the learning rate", "warmup_steps": "the warmup",
    "batch_size": "the batch size", "seq_length": "the sequence length",
    "eval_every": "“Evaluate every”", "eval_sequences": "validation sequences",
    "seed": "Seed", "vocab_size": "the vocabulary size", "dropout": "Dropout",
    "mlm_probability": "the masking rate", "mask_fraction": "the <mask> share",
    "random_fraction": "the random-token share", "hold_positions_steps":
    "Hold positions for (steps)", "num_layers": "Layers", "hidden_size": "the hidden size",
    "num_heads": "Attention heads", "ffn_size": "the feed-forward size",
    "num_hidden_layers": "the number of layers", "num_attention_heads":
    "the number of attention heads", "intermediate_size": "the feed-forward size",
    "hidden_dropout_prob": "dropout", "attention_probs_dropout_prob": "dropout"}


@dataclass
class PretrainSettings:
    """Every choice on the Train tab. The defaults are the tuned one-minute run."""

    max_steps: int = 3000
    corpus: str = "bundled"
    upload_paths: Sequence[str] = ()
    pasted_text: str = ""
    tokenizer: str = "new"
    vocab_size: int = 2048
    size: str = "micro"
    num_layers: int = 2  # the custom size's shape; ignored for a named preset
    hidden_size: int = 128
    num_heads: int = 2
    ffn_size: int = 512
    dropout: float = 0.0  # a 2-layer model trained for a minute underfits: dropout only slows it
    seq_length: int = PretrainConfig.seq_length
    mlm_probability: float = MaskingConfig.mlm_probability
    mask_fraction: float = MaskingConfig.mask_fraction
    random_fraction: float = MaskingConfig.random_fraction
    whole_word: bool = False
    static_masking: bool = False
    learning_rate: float | None = None  # None: default_learning_rate for the model's width
    warmup_steps: int | None = None  # None: default_warmup for the run's length
    batch_size: int = 8  # more updates per second beat bigger batches this early
    seed: int = 0
    init: str = "structured"  # or "roberta": see roberta/init.py
    hold_positions_steps: int = -1  # the structured start's position rows: fixed for the run
    eval_every: int = 50
    eval_sequences: int = 128
    device: str = "cpu"
    precision: str = PretrainConfig.precision
    probes: Sequence[str] = DEFAULT_PROBES


# --- small pieces of validation -------------------------------------------------------------

def parse_probes(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Probe sentences, one per line; each needs a <mask>. Empty: the default probes."""
    lines = text.splitlines() if isinstance(text, str) else list(text or ())
    probes = tuple(line.strip() for line in lines if line and line.strip())
    if not probes:
        return DEFAULT_PROBES
    if len(probes) > 8:
        raise SettingsError(f"Give at most 8 probe sentences (there are {len(probes)}).")
    for probe in probes:
        if "<mask>" not in probe:
            raise SettingsError(f"The probe sentence “{probe}” has no <mask>: put <mask> where "
                                f"the model should guess a word.")
    return probes


def validate(settings: PretrainSettings) -> tuple[PretrainSettings, list[str]]:
    """Check and normalise settings: (clean settings, warnings). SettingsError (or LimitError,
    over this host's caps) in a plain sentence for bad ones. The bounds are the library's: this
    converts the form's values, names the controls and applies what the app offers."""
    s, warnings = settings, []
    for what, value, options in (
            ("corpus", s.corpus, [v for _, v in CORPUS_CHOICES]),
            ("tokenizer choice", s.tokenizer, [v for _, v in TOKENIZER_CHOICES]),
            ("model size", s.size, SIZE_CHOICES), ("initialisation", s.init, INIT_CHOICES),
            ("device", s.device, DEVICE_CHOICES), ("precision", s.precision, PRECISION_CHOICES)):
        check_choice(what, value, options)
    if s.device == "cuda" and not torch.cuda.is_available():
        raise SettingsError("CUDA was chosen but this machine has no CUDA GPU; choose cpu.")
    if s.precision == "fp16" and s.device != "cuda":
        raise SettingsError("fp16 training needs a CUDA GPU. On the CPU use fp32 (or auto).")
    if s.precision == "bf16" and s.device == "cpu" and not cpu_supports_bf16():
        warnings.append("This CPU has no native bfloat16, so bf16 runs emulated and far slower "
                        "than fp32. Choose auto or fp32 for speed.")
    numbers = {f.name: (as_int(LABELS[f.name], getattr(s, f.name), MAXIMA.get(f.name))
                        if f.type == "int" else as_float(LABELS[f.name], getattr(s, f.name)))
               for f in fields(s) if f.type in ("int", "float")}  # as their fields say
    if numbers["vocab_size"] < MIN_VOCAB:
        raise SettingsError(f"The vocabulary size must be at least {MIN_VOCAB}.")
    clean = with_shape(replace(
        s, **numbers, probes=parse_probes(s.probes),
        learning_rate=None if s.learning_rate in (None, "") else
        as_float("The learning rate", s.learning_rate),
        warmup_steps=None if s.warmup_steps in (None, "") else
        as_int("Warmup steps", s.warmup_steps)))
    with labelled(LABELS):
        config = model_config(clean, clean.vocab_size)  # the largest vocabulary it can have
        training = pretrain_config(clean).for_width(clean.hidden_size)
        training.validate()
    if training.warmup_steps >= training.max_steps:
        # e.g. `/train` called with a step count only, beside the 150-step default warmup
        warnings.append(f"The warmup ({training.warmup_steps} steps) is as long as the run "
                        f"({training.max_steps} steps), so the learning rate would never reach "
                        f"its peak: warming up for {default_warmup(training.max_steps)} steps "
                        f"instead (a tenth of the run).")
        training.warmup_steps = default_warmup(training.max_steps)
    if training.learning_rate > 1e-2:
        warnings.append(f"A learning rate of {training.learning_rate:g} is very high for a "
                        f"post-LayerNorm transformer; the loss may jump or become NaN.")
    if s.init == "structured":
        try:
            StructuredInit().validate(clean.hidden_size, clean.num_heads, clean.num_layers)
        except ValueError as err:
            raise SettingsError(f"This model cannot take the structured start ({err}); choose "
                                f"RoBERTa's random start or wider heads.") from None
    check_steps(clean.max_steps)
    check_batch_tokens(clean.batch_size, clean.seq_length)
    check_parameters(RobertaForMaskedLM.parameter_count(config))
    check_memory(clean, config)
    return replace(clean, learning_rate=training.learning_rate,
                   warmup_steps=training.warmup_steps), warnings


def check_memory(settings: PretrainSettings, config: RobertaConfig, what: str = "This run") -> None:
    """LimitError when a step of this run is estimated to need more memory than one run may."""
    estimate = training_memory_bytes(config, settings.batch_size, settings.seq_length,
                                     mask_rate=settings.mlm_probability)
    check_training_memory(estimate, settings.batch_size, settings.seq_length, what=what)


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
    """The library's settings of the same names (the rest: the library's defaults)."""
    return PretrainConfig(
        **same_fields(settings, PretrainConfig, "probes", "hold_positions_steps", "masking"),
        masking=MaskingConfig(**same_fields(settings, MaskingConfig)),
        hold_positions_steps=PretrainConfig.hold_for(settings.init,
                                                     settings.hold_positions_steps),
        probes=tuple(settings.probes))


# --- corpus, tokenizer and packed data, cached per process -----------------------------------

TOKENIZERS = OnceCache(maxsize=4)
PACKED_DATA = OnceCache(maxsize=3)  # the bundled corpus at 128 tokens is ~28 MB of int64


@dataclass
class Corpus:
    key: str  # identifies the text for the caches: "bundled" or a content hash
    texts: list[str]
    description: str


def load_corpus(settings: PretrainSettings) -> Corpus:
    """The texts to pretrain on. DataError (a plain sentence) for bad uploads or pastes."""
    if settings.corpus == "bundled":
        texts = bundled_pretraining_corpus()
        return Corpus("bundled", texts, f"the bundled corpus ({len(texts):,} documents)")
    max_bytes = current_limits().max_upload_bytes
    if settings.corpus == "upload":
        paths = [p for p in (settings.upload_paths or []) if p]
        if not paths:
            raise DataError("No file was uploaded: add one or more .txt files, or choose the "
                            "bundled corpus.")
        check_upload(paths)
        texts: list[str] = []
        for path in paths:
            if Path(path).suffix.lower() not in (".txt", ".text", ".md", ""):
                raise DataError(f"{Path(path).name} is not a .txt file: upload plain text.")
            texts += read_text_file(path, max_bytes=max_bytes)
        name = ", ".join(Path(p).name for p in paths[:3]) + (" …" if len(paths) > 3 else "")
    elif settings.corpus == "pasted":
        texts = read_pasted_text(settings.pasted_text or "", max_bytes=max_bytes)
        name = "the pasted text"
    else:
        raise SettingsError(f"Unknown corpus {settings.corpus!r}.")
    if len(texts) < 2:
        raise DataError(f"{name[:1].upper() + name[1:]} holds a single document; separate at "
                        f"least two documents (or paragraphs) with a blank line so that one "
                        f"can be held out for validation.")
    return Corpus(fingerprint(texts), texts,
                  f"{name} ({len(texts):,} documents, {sum(map(len, texts)):,} characters)")


def get_tokenizer(settings: PretrainSettings, corpus: Corpus,
                  embedded: RobertaTokenizer | None) -> tuple[str, RobertaTokenizer]:
    """(cache key, tokenizer): the embedded model's, or a BPE trained on the corpus."""
    if settings.tokenizer == "embedded":
        if embedded is None:
            raise SettingsError("The embedded model's tokenizer is missing (there is no "
                                "embedded model yet). Choose “Train a new byte-level BPE”.")
        return f"embedded:{id(embedded)}", embedded
    key = f"bpe:{corpus.key}:{settings.vocab_size}"
    tokenizer = TOKENIZERS.get(key, lambda: RobertaTokenizer.train(
        corpus.texts, vocab_size=settings.vocab_size))
    return key, tokenizer


def get_data(settings: PretrainSettings, corpus: Corpus, tokenizer_key: str,
             tokenizer: RobertaTokenizer) -> PretrainingData:
    key = (corpus.key, tokenizer_key, settings.seq_length)

    def prepare() -> PretrainingData:
        try:
            return prepare_pretraining_data(corpus.texts, tokenizer, settings.seq_length,
                                            PretrainConfig.validation_fraction, DATA_SPLIT_SEED)
        except TrainingError as err:
            raise DataError(f"The corpus is too small to train on: {err}.") from err

    return PACKED_DATA.get(key, prepare)


# --- how long a run takes on this host ------------------------------------------------------

class StepPace:
    """How long a step took on this host, timed by the runs it trained (evaluations included:
    what a learner waits for). Kept per size and per batch token, so a run of another batch
    size or length is estimated in proportion. Per process, shared by every session."""

    MIN_STEPS = 20  # fewer steps time the start-up more than the steps

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds_per_token_step: dict[str, float] = {}

    def record(self, size: str, batch_size: int, seq_length: int, steps: int,
               seconds: float) -> None:
        if steps >= self.MIN_STEPS and seconds > 0 and batch_size > 0 and seq_length > 0:
            with self._lock:
                self._seconds_per_token_step[size] = seconds / steps / (batch_size * seq_length)

    def seconds_per_step(self, size: str, batch_size: int, seq_length: int) -> float | None:
        """None until a run of this size has been timed here."""
        with self._lock:
            per_token = self._seconds_per_token_step.get(size)
        return None if per_token is None else per_token * batch_size * seq_length


STEP_PACE = StepPace()

_prewarm_thread: threading.Thread | None = None
PREWARM_DELAY_SECONDS = 2.0


def prewarm_default_data() -> threading.Thread | None:
    """Prepare the default run's tokenizer and packed data in a background thread, at low
    priority, so the first Start does not wait. Off with ROBERTA_LAB_PREWARM=0."""
    global _prewarm_thread
    if os.environ.get("ROBERTA_LAB_PREWARM", "1") == "0":
        return None
    if _prewarm_thread is not None:
        return _prewarm_thread

    def work() -> None:
        # Linux: a thread's own nice value, so the app's requests keep their priority.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        time.sleep(PREWARM_DELAY_SECONDS)  # let the app finish starting first
        try:
            settings = PretrainSettings()
            corpus = load_corpus(settings)
            key, tokenizer = get_tokenizer(settings, corpus, None)
            get_data(settings, corpus, key, tokenizer)
            # Building the first AdamW imports torch._dynamo (~3 s): do it now, not on Start.
            import torch._dynamo  # noqa: F401
        except Exception:  # e.g. the bundled packages are missing: Start will say so
            pass

    _prewarm_thread = threading.Thread(target=work, name="roberta-lab-prewarm", daemon=True)
    _prewarm_thread.start()
    return _prewarm_thread


def build_model(settings: PretrainSettings, tokenizer: RobertaTokenizer,
                what: str = "This run") -> RobertaForMaskedLM:
    config = model_config(settings, tokenizer.vocab_size)
    check_parameters(RobertaForMaskedLM.parameter_count(config))
    check_memory(settings, config, what)  # the batch may have changed since validate()
    torch.manual_seed(settings.seed)
    model = RobertaForMaskedLM(config)
    initialise_(model, settings.init)
    return model


# --- export ----------------------------------------------------------------------------------

EXPORT_README = """# {name}

A RoBERTa {kind} trained in RoBERTa Lab, in the Hugging Face format.

```python
from transformers import {auto_class}, AutoTokenizer, pipeline
model = {auto_class}.from_pretrained("{folder}")
tokenizer = AutoTokenizer.from_pretrained("{folder}")
print(pipeline("{task}", model=model, tokenizer=tokenizer)("{example}"))
```

{description}
"""


def _export_readme(model: torch.nn.Module, name: str, folder: str, description: str) -> str:
    if isinstance(model, RobertaForSequenceClassification):
        labels = ", ".join(model.config.id2label[i] for i in range(model.config.num_labels))
        usage = dict(kind=f"sequence classifier (labels: {labels})",
                     auto_class="AutoModelForSequenceClassification", task="text-classification",
                     example="This movie was wonderful.")
    else:
        usage = dict(kind="masked language model", auto_class="AutoModelForMaskedLM",
                     task="fill-mask", example="The <mask> was good.")
    return EXPORT_README.format(name=name, folder=folder, description=description, **usage)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "model"


def export_hf_zip(model: torch.nn.Module, tokenizer: RobertaTokenizer, name: str,
                  description: str = "") -> Path:
    """Zip config.json, model.safetensors and the tokenizer files in one folder, under a new
    temporary directory (a later export never overwrites an earlier one's file)."""
    folder = f"{slug(name)}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix="roberta-lab-export-"))
    model_dir = workdir / folder
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / "README.md").write_text(_export_readme(model, name, folder, description))
    archive = workdir / f"{folder}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(model_dir.iterdir()):
            zf.write(file, f"{folder}/{file.name}")
    return archive


class ModelExport:
    """One browser tab's downloadable zip: the same model asked for again gets the same file
    (each export is a folder of the model's size, and Gradio caches a copy of every distinct
    file it serves), and exporting another model deletes the previous zip. The folder is also
    deleted when this object is freed, i.e. when Gradio drops the session that held it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: torch.nn.Module | None = None
        self._archive: Path | None = None
        self._cleanup: weakref.finalize | None = None

    def zip_for(self, model: torch.nn.Module, tokenizer: RobertaTokenizer, name: str,
                description: str = "") -> Path:
        with self._lock:
            # A trained model is never trained further (a new run builds a new one), so the
            # object itself identifies the version.
            if self._model is model and self._archive is not None and self._archive.is_file():
                return self._archive
            self._discard()
            archive = export_hf_zip(model, tokenizer, name, description)
            self._model, self._archive = model, archive
            self._cleanup = weakref.finalize(self, shutil.rmtree, archive.parent, True)
            return archive

    def _discard(self) -> None:
        if self._cleanup is not None:
            self._cleanup()  # deletes the previous export's folder
        self._model = self._archive = self._cleanup = None
