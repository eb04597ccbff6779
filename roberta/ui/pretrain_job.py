"""What the Train tab runs, free of Gradio: its form's values as library settings
(roberta/training/pretrain_settings.py: the one-minute run and its checks), this host's caps,
cached data, the model, the export.

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
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from roberta.config import RobertaConfig
from roberta.data import DataError, bundled_pretraining_corpus
from roberta.masking import MaskingConfig
from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.settings import SettingError, naming
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import PretrainConfig
from roberta.training.memory import training_memory_bytes
from roberta.training.pretrain_settings import (
    ONE_MINUTE_RUN,
    PretrainSettings,
    model_config,
    new_model,
    new_tokenizer,
    pretraining_data,
    resolve,
)
from roberta.training.pretraining import PretrainingData
from roberta.uploads import read_pasted_text, read_text_file

from .limits import (
    check_batch_tokens,
    check_parameters,
    check_steps,
    check_training_memory,
    check_upload,
    current_limits,
)
from .runs import OnceCache, SettingsError, fingerprint, form_numbers, in_words  # noqa: F401

# A setting as the Train tab words it: its control's label.
LABEL_OF = naming(PretrainSettings, RobertaConfig, PretrainConfig, MaskingConfig)


def validate(settings: PretrainSettings) -> tuple[PretrainSettings, list[str]]:
    """Check and normalise settings: (clean settings, warnings). SettingsError (or LimitError,
    over this host's caps) in a plain sentence naming the tab's controls. The form's values
    become numbers here; every bound is the library's (pretrain_settings.resolve)."""
    try:
        clean, warnings = resolve(replace(settings, **form_numbers(settings, LABEL_OF)))
    except SettingError as err:
        raise in_words(err, LABEL_OF) from None
    check_steps(clean.max_steps)
    check_batch_tokens(clean.batch_size, clean.seq_length)
    config = model_config(clean, clean.vocab_size)  # the largest vocabulary it can have
    check_parameters(RobertaForMaskedLM.parameter_count(config))
    check_memory(clean, config)
    return clean, warnings


def check_memory(settings: PretrainSettings, config: RobertaConfig, what: str = "This run") -> None:
    """LimitError when a step of this run is estimated to need more memory than one run may."""
    estimate = training_memory_bytes(config, settings.batch_size, settings.seq_length,
                                     mask_rate=settings.mlm_probability)
    check_training_memory(estimate, settings.batch_size, settings.seq_length, what=what)


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
    tokenizer = TOKENIZERS.get(key, lambda: new_tokenizer(settings, corpus.texts))
    return key, tokenizer


def get_data(settings: PretrainSettings, corpus: Corpus, tokenizer_key: str,
             tokenizer: RobertaTokenizer) -> PretrainingData:
    key = (corpus.key, tokenizer_key, settings.seq_length)
    return PACKED_DATA.get(key, lambda: pretraining_data(settings, corpus.texts, tokenizer))


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
            settings = ONE_MINUTE_RUN
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
    return new_model(settings, tokenizer)


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
                  description: str = "", parent: Path | str | None = None,
                  timelapse=None) -> Path:
    """Zip config.json, model.safetensors and the tokenizer files in one folder, under a new
    temporary directory in `parent` (default: the system's temp folder), so a later export
    never overwrites an earlier one's file. Only the zip stays there: the files it was made
    from are deleted once zipped (they would double the export's size on disk). A run's
    `timelapse` (roberta.timelapse) goes beside the weights, for an import to replay."""
    folder = f"{slug(name)}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="roberta-lab-export-", dir=parent))
    try:
        model_dir = workdir / folder
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        if timelapse is not None and timelapse.snapshots:
            timelapse.save(model_dir)
        (model_dir / "README.md").write_text(_export_readme(model, name, folder, description))
        archive = workdir / f"{folder}.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(model_dir.iterdir()):
                zf.write(file, f"{folder}/{file.name}")
        shutil.rmtree(model_dir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)  # a failed export leaves nothing behind
        raise
    return archive


class ModelExport:
    """One browser tab's downloadable zip: the same model asked for again gets the same file
    (each export is a zip of the model's size), and exporting another model deletes the
    previous zip. `discard()` deletes the current one; the UI calls it when the session that
    held this object ends, and the folder also goes when this object is freed.

    `parent` is where the zips are made: the UI gives Gradio's cache folder, from which Gradio
    serves a file in place; from anywhere else it would keep a copy of every zip it serves
    until its cache sweep, past the session and past this object."""

    def __init__(self, parent: Path | str | None = None) -> None:
        self._parent = parent
        self._lock = threading.Lock()
        self._model: torch.nn.Module | None = None
        self._archive: Path | None = None
        self._cleanup: weakref.finalize | None = None

    @property
    def archive(self) -> Path | None:
        """The current zip, if one was made and not discarded."""
        return self._archive

    def zip_for(self, model: torch.nn.Module, tokenizer: RobertaTokenizer, name: str,
                description: str = "", timelapse=None) -> Path:
        with self._lock:
            # A trained model is never trained further (a new run builds a new one), so the
            # object itself identifies the version.
            if self._model is model and self._archive is not None and self._archive.is_file():
                return self._archive
            self._discard()
            archive = export_hf_zip(model, tokenizer, name, description, self._parent,
                                    timelapse)
            self._model, self._archive = model, archive
            self._cleanup = weakref.finalize(self, shutil.rmtree, archive.parent, True)
            return archive

    def discard(self) -> None:
        """Delete the current zip and its folder (a later zip_for makes a new one)."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        if self._cleanup is not None:
            self._cleanup()  # deletes the previous export's folder
        self._model = self._archive = self._cleanup = None
