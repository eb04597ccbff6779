"""Import a Hugging Face checkpoint from a .zip upload, safely.

A visitor may upload anything, so the archive is treated as hostile: members with absolute
paths, `..` or symlinks are refused before anything is written, only the files a checkpoint
needs are extracted (never `extractall`), sizes are checked against what is actually read (a zip
header can lie), and weights are read from safetensors only — a `pytorch_model.bin` is a pickle
and is refused, never loaded. Every problem raises `CheckpointZipError` (a ValueError) with a
sentence that says what is wrong.
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from .config import RobertaConfig
from .hub import (
    CONFIG_NAME,
    LEGACY_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    check_parameter_cap,
)
from .import_checks import (
    FILE_LIMITS,
    ImportBudget,
    ImportRefused,
    check_budget,
    check_finite,
    check_tokenizer_files,
    clean_config,
    read_json,
    size_text,
)
from .timelapse import FILE_NAME as TIMELAPSE_NAME
from .timelapse import MAX_FILE_BYTES as TIMELAPSE_LIMIT
from .timelapse import TimeLapse, load_timelapse
from .tokenizer import RobertaTokenizer

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json")
MAX_MEMBERS = 10_000
CHUNK = 1 << 20


class CheckpointZipError(ValueError):
    """The upload is not a usable checkpoint archive; the message says why."""


@dataclass
class ImportedCheckpoint:
    model: torch.nn.Module
    tokenizer: RobertaTokenizer
    task: str  # "mlm" | "classifier"
    directory: Path  # where the checked files were extracted
    timelapse: TimeLapse | None = None  # the run's time-lapse, when it has a usable one
    timelapse_note: str = ""  # otherwise, one sentence saying why not


def _member_path(name: str) -> PurePosixPath:
    """The member's path, or CheckpointZipError when it could land outside the folder."""
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise CheckpointZipError(f"The zip holds an absolute path ({name!r}); refusing it.")
    if ".." in path.parts:
        raise CheckpointZipError(f"The zip holds a path that climbs out of its folder "
                                 f"({name!r}); refusing it.")
    return path


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _index_members(archive: zipfile.ZipFile) -> dict[PurePosixPath, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise CheckpointZipError(f"The zip holds {len(infos):,} entries; a checkpoint has a "
                                 f"handful.")
    files = {}
    for info in infos:
        path = _member_path(info.filename)
        if _is_symlink(info):
            raise CheckpointZipError(f"The zip holds a symbolic link ({info.filename!r}); "
                                     f"refusing it.")
        if info.flag_bits & 0x1:
            raise CheckpointZipError("The zip is encrypted; upload an unencrypted one.")
        if not info.is_dir():
            files[path] = info
    return files


def _checkpoint_root(files: dict[PurePosixPath, zipfile.ZipInfo]) -> PurePosixPath:
    """The folder in the zip that holds config.json: the top, or one folder down, ..."""
    configs = sorted((p for p in files if p.name == CONFIG_NAME and "__MACOSX" not in p.parts),
                     key=lambda p: len(p.parts))
    if not configs:
        raise CheckpointZipError(f"The zip has no {CONFIG_NAME}: zip the checkpoint folder "
                                 f"that save_pretrained wrote (config.json, model.safetensors, "
                                 f"tokenizer files).")
    if len(configs) > 1 and len(configs[0].parts) == len(configs[1].parts):
        raise CheckpointZipError(f"The zip holds several checkpoints ({configs[0]}, "
                                 f"{configs[1]}); upload one at a time.")
    return configs[0].parent


def _needed_files(files: dict[PurePosixPath, zipfile.ZipInfo], root: PurePosixPath,
                  archive: zipfile.ZipFile) -> list[str]:
    present = {p.name for p in files if p.parent == root}
    needed = [CONFIG_NAME]
    if WEIGHTS_NAME in present:
        needed.append(WEIGHTS_NAME)
    elif WEIGHTS_INDEX_NAME in present:
        index_info = files[root / WEIGHTS_INDEX_NAME]
        if index_info.file_size > 10 * CHUNK:
            raise CheckpointZipError(f"{WEIGHTS_INDEX_NAME} is implausibly large.")
        try:
            index = json.loads(archive.read(index_info))
            shards = sorted(set(index["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise CheckpointZipError(f"{WEIGHTS_INDEX_NAME} is not a valid index.") from err
        for shard in shards:
            if not isinstance(shard, str) or PurePosixPath(shard).name != shard \
                    or not shard.endswith(".safetensors"):
                raise CheckpointZipError(f"{WEIGHTS_INDEX_NAME} names an odd shard {shard!r}.")
            if shard not in present:
                raise CheckpointZipError(f"The zip lacks the weight shard {shard}.")
        needed += [WEIGHTS_INDEX_NAME, *shards]
    elif LEGACY_WEIGHTS_NAME in present or any(n.endswith(".bin") for n in present):
        raise CheckpointZipError(
            f"The zip has only {LEGACY_WEIGHTS_NAME}, a pickle file, which is never loaded "
            f"here. Save the model with safetensors (save_pretrained does by default) and zip "
            f"it again.")
    else:
        raise CheckpointZipError(f"The zip has no weights: expected {WEIGHTS_NAME} next to "
                                 f"{CONFIG_NAME}.")
    if "tokenizer.json" not in present and not {"vocab.json", "merges.txt"} <= present:
        raise CheckpointZipError("The zip has no tokenizer: expected tokenizer.json, or "
                                 "vocab.json and merges.txt, next to config.json.")
    return needed + [n for n in TOKENIZER_FILES if n in present]


def _too_big(name: str) -> CheckpointZipError:
    return CheckpointZipError(f"{name} is more than the {size_text(FILE_LIMITS[name])} a "
                              f"checkpoint's {name} may have.")


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path,
             budget: list[int]) -> None:
    """Copy one member, counting the bytes really read against the budget and against the
    member's own limit (FILE_LIMITS: config and tokenizer files are small)."""
    own_limit = FILE_LIMITS.get(target.name)
    written = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(CHUNK):
            budget[0] -= len(chunk)
            written += len(chunk)
            if budget[0] < 0:
                raise CheckpointZipError("The checkpoint unpacks to more than the upload limit.")
            if own_limit is not None and written > own_limit:
                raise _too_big(target.name)
            sink.write(chunk)


def extract_checkpoint(zip_path: str | Path, destination: str | Path,
                       max_bytes: int) -> Path:
    """Check the archive and extract the checkpoint's files flat into `destination`."""
    zip_path, destination = Path(zip_path), Path(destination)
    if not zip_path.is_file():
        raise CheckpointZipError("No file was uploaded.")
    if zip_path.stat().st_size > max_bytes:
        raise CheckpointZipError(f"The upload is {zip_path.stat().st_size / 1e6:.1f} MB; the "
                                 f"limit is {max_bytes / 1e6:.0f} MB.")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointZipError("The upload is not a readable .zip file.") from err
    with archive:
        files = _index_members(archive)
        root = _checkpoint_root(files)
        needed = _needed_files(files, root, archive)
        if sum(files[root / n].file_size for n in needed) > max_bytes:
            raise CheckpointZipError(f"The checkpoint unpacks to more than the "
                                     f"{max_bytes / 1e6:.0f} MB limit.")
        for name in needed:
            if files[root / name].file_size > FILE_LIMITS.get(name, max_bytes):
                raise _too_big(name)
        destination.mkdir(parents=True, exist_ok=True)
        budget = [max_bytes]
        try:
            for name in needed:
                _extract(archive, files[root / name], destination / name, budget)
        except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as err:
            raise CheckpointZipError(f"The zip is damaged ({err}).") from err
        if root / TIMELAPSE_NAME in files:
            _copy_timelapse(archive, files[root / TIMELAPSE_NAME], destination / TIMELAPSE_NAME)
    return destination


def _copy_timelapse(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """The time-lapse, which may be bad without costing the model: at most one byte past its
    cap (bytes really read; load_timelapse then refuses it as too large), and empty when the
    member is damaged (load_timelapse then says the file is unreadable)."""
    try:
        with archive.open(info) as source, open(target, "wb") as sink:
            while (room := TIMELAPSE_LIMIT + 1 - sink.tell()) > 0 and \
                    (chunk := source.read(min(CHUNK, room))):
                sink.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError):
        target.write_bytes(b"")


def _read_config(directory: Path) -> RobertaConfig:
    """config.json, bounded in size and nesting, with the keys the app does not read dropped
    (and the file rewritten so, for from_pretrained to read)."""
    try:
        data = read_json(directory / CONFIG_NAME, CONFIG_NAME)
    except ImportRefused as err:
        raise CheckpointZipError(str(err)) from None
    if not isinstance(data, dict):
        raise CheckpointZipError("config.json is not a RoBERTa config: it holds no JSON object.")
    data = clean_config(data)
    (directory / CONFIG_NAME).write_text(json.dumps(data, indent=2, sort_keys=True))
    try:
        return RobertaConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        raise CheckpointZipError(f"config.json is not a RoBERTa config: {err}.") from None


def load_checkpoint_zip(zip_path: str | Path, destination: str | Path, max_bytes: int,
                        max_parameters: int | None = None,
                        budget: ImportBudget | None = None) -> ImportedCheckpoint:
    """Extract, then load the model (masked LM or sequence classifier, from config.json's
    `architectures`) and its tokenizer, checking they belong together. A config describing more
    than `max_parameters`, or a model costing more to serve than `budget` (layers, FLOPs per
    window, memory per request, vocabulary: roberta.import_checks), is refused before the model
    is built: a few bytes of config could otherwise ask for gigabytes or minutes. Tokenizers
    must be RoBERTa's byte-level BPE, and weights finite. A time-lapse beside the weights
    (roberta/timelapse.py) comes back with it, or the one sentence saying why it does not: a
    missing or bad one never stops the model from loading."""
    from .model import RobertaForMaskedLM, RobertaForSequenceClassification

    budget = budget or ImportBudget()
    directory = extract_checkpoint(zip_path, destination, max_bytes)
    config = _read_config(directory)
    architectures = config.extra.get("architectures") or []  # a list of str (clean_config)
    if "RobertaForSequenceClassification" in architectures:
        model_class, task = RobertaForSequenceClassification, "classifier"
    elif not architectures or "RobertaForMaskedLM" in architectures:
        model_class, task = RobertaForMaskedLM, "mlm"
    else:
        raise CheckpointZipError(
            f"config.json says the model is {', '.join(architectures)[:120]}; only "
            f"RobertaForMaskedLM and RobertaForSequenceClassification can be used here.")
    try:
        if max_parameters is not None:
            check_parameter_cap(model_class, config, max_parameters)
        check_budget(config, task, budget)
        check_tokenizer_files(directory, budget.max_vocab)
    except ImportRefused as err:
        raise CheckpointZipError(str(err)) from None
    except ValueError as err:
        raise CheckpointZipError(f"The checkpoint does not load: {err}") from err
    try:
        model = model_class.from_pretrained(directory, max_parameters=max_parameters)
        tokenizer = RobertaTokenizer.from_pretrained(directory)
        check_finite(model)
    except ImportRefused as err:
        raise CheckpointZipError(str(err)) from None
    except ValueError as err:
        raise CheckpointZipError(f"The checkpoint does not load: {err}") from err
    if getattr(model, "newly_initialized_keys", None):
        raise CheckpointZipError(f"The checkpoint has no trained "
                                 f"{'masked-LM' if task == 'mlm' else 'classification'} head.")
    if tokenizer.vocab_size > model.config.vocab_size:
        raise CheckpointZipError(f"The tokenizer has {tokenizer.vocab_size:,} tokens but the "
                                 f"model only {model.config.vocab_size:,}: they do not belong "
                                 f"together.")
    if model.config.vocab_size > tokenizer.vocab_size:
        # The model could then guess ids the tokenizer cannot write back as text.
        raise CheckpointZipError(f"The model has {model.config.vocab_size:,} token ids but its "
                                 f"tokenizer only {tokenizer.vocab_size:,}: they do not belong "
                                 f"together (zip the tokenizer files the model was trained "
                                 f"with).")
    return ImportedCheckpoint(model.eval(), tokenizer, task, directory,
                              *load_timelapse(directory))


def remove_quietly(directory: str | Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
