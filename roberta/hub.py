"""Checkpoints in the Hugging Face directory format: `config.json` + `model.safetensors`.

A directory we write loads unchanged in `transformers.AutoModelForMaskedLM` /
`AutoModelForSequenceClassification`, and a transformers directory loads unchanged here. Weights
are read from safetensors, or from a legacy `pytorch_model.bin` with `weights_only=True` only:
nothing is ever unpickled. Anything wrong with a checkpoint raises ValueError saying what.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path

import torch

from .config import RobertaConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"

# Saved once, shared in the model: (the copy's key, the key it is tied to).
TIED_KEYS = {
    "lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
    "lm_head.decoder.bias": "lm_head.bias",
}
# Parts that belong to one task; a checkpoint of another task may lack or carry them.
HEAD_PREFIXES = ("lm_head.", "classifier.", "pooler.", "roberta.pooler.")
# Buffers older transformers versions saved; nothing here needs them.
IGNORED_KEYS = re.compile(r"(^|\.)embeddings\.position_ids$")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class HubUnreachableError(OSError):
    """A hub id was given and the Hugging Face hub could not be reached."""


def resolve_pretrained_dir(name_or_path: str | os.PathLike, allow_patterns: list[str]) -> Path:
    """A local checkpoint directory, or a hub id ("FacebookAI/roberta-base") downloaded to the
    huggingface_hub cache."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"{path} is a file; expected a checkpoint directory")
    name = str(name_or_path)
    if not _HUB_ID.match(name):
        raise ValueError(f"no checkpoint directory at {path}")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError
    except ImportError as err:  # pragma: no cover - huggingface_hub is a requirement
        raise HubUnreachableError(f"'{name}' is not a local directory and huggingface_hub "
                                  f"is not installed to download it") from err
    try:
        return Path(snapshot_download(name, allow_patterns=allow_patterns))
    except RepositoryNotFoundError as err:
        raise ValueError(f"'{name}' is neither a local directory nor a model on the "
                         f"Hugging Face hub") from err
    except Exception as err:
        raise HubUnreachableError(
            f"'{name}' is not a local directory, and the Hugging Face hub cannot be reached to "
            f"download it ({type(err).__name__}). Connect to the network, or pass the path of "
            f"a downloaded checkpoint directory.") from err


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The state dict stored in a checkpoint directory, without unpickling anything."""
    from safetensors.torch import load_file

    def load_safetensors(file: Path) -> dict[str, torch.Tensor]:
        try:
            return load_file(file)
        except Exception as err:
            raise ValueError(f"{file} is not a readable safetensors file (truncated or "
                             f"corrupt?): {err}") from err

    if (directory / WEIGHTS_NAME).is_file():
        return load_safetensors(directory / WEIGHTS_NAME)
    if (directory / WEIGHTS_INDEX_NAME).is_file():  # sharded: {"weight_map": {key: file}}
        try:
            shards = set(json.loads((directory / WEIGHTS_INDEX_NAME).read_text())["weight_map"]
                         .values())
        except (OSError, ValueError, KeyError, AttributeError) as err:
            raise ValueError(f"{directory / WEIGHTS_INDEX_NAME} is not a valid index") from err
        weights: dict[str, torch.Tensor] = {}
        for shard in sorted(shards):
            weights.update(load_safetensors(directory / shard))
        return weights
    if (directory / LEGACY_WEIGHTS_NAME).is_file():
        file = directory / LEGACY_WEIGHTS_NAME
        try:
            weights = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{file} cannot be read as plain tensors (truncated, corrupt, or "
                             f"it holds pickled objects, which are never loaded): {err}") from err
        if not isinstance(weights, dict) or not all(
                isinstance(v, torch.Tensor) for v in weights.values()):
            raise ValueError(f"{file} does not hold a state dict of tensors")
        return weights
    raise ValueError(f"no weights in {directory}: expected {WEIGHTS_NAME} or "
                     f"{LEGACY_WEIGHTS_NAME}")


def _align_prefix(weights: dict[str, torch.Tensor], expected: dict) -> dict[str, torch.Tensor]:
    """Let a bare encoder checkpoint load into a task model and a task checkpoint into the bare
    encoder: transformers puts the encoder under `roberta.` in task models only."""
    model_has_prefix = any(k.startswith("roberta.") for k in expected)
    weights_have_prefix = any(k.startswith("roberta.") for k in weights)
    if model_has_prefix and not weights_have_prefix:
        return {f"roberta.{k}": v for k, v in weights.items()}
    if weights_have_prefix and not model_has_prefix:
        return {k.removeprefix("roberta."): v for k, v in weights.items()
                if k.startswith("roberta.")}
    return weights


def _summarise(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def match_state_dict(model: torch.nn.Module, weights: dict[str, torch.Tensor],
                     checkpoint_is_same_task: bool) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Check a checkpoint's tensors against the model before anything is copied, so a bad
    checkpoint never leaves a half-loaded model. Returns the state dict to load strictly and the
    keys of a task head the checkpoint lacks (left at their fresh initialisation)."""
    expected = model.state_dict()  # transformers' names (query/key/value split by a hook)
    weights = {k: v for k, v in _align_prefix(weights, expected).items()
               if not IGNORED_KEYS.search(k)}
    for copy, source in TIED_KEYS.items():
        if copy in expected and copy not in weights and source in weights:
            weights[copy] = weights[source]

    missing = [k for k in expected if k not in weights]
    fresh = [k for k in missing if k.startswith(HEAD_PREFIXES)]
    if missing != fresh or (fresh and checkpoint_is_same_task):
        raise ValueError(f"checkpoint is missing {len(missing)} weight(s): {_summarise(missing)}")
    unexpected = [k for k in weights if k not in expected]
    foreign = [k for k in unexpected if not k.startswith(HEAD_PREFIXES)]
    if foreign:
        raise ValueError(f"checkpoint has {len(foreign)} weight(s) this model does not: "
                         f"{_summarise(foreign)} (does config.json match the weights?)")
    wrong_shape = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
                   for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    if wrong_shape:
        raise ValueError(f"checkpoint shapes do not match the config: {_summarise(wrong_shape)}")
    not_float = [k for k in expected if k in weights and not weights[k].is_floating_point()]
    if not_float:
        raise ValueError(f"checkpoint tensors are not floating point: {_summarise(not_float)}")
    state = {k: weights.get(k, v) for k, v in expected.items()}
    return state, fresh


def check_parameter_cap(model_class, config: RobertaConfig, max_parameters: int) -> None:
    """ValueError when `model_class(config)` would have more than `max_parameters`, computed
    from the config alone (nothing is built)."""
    count = model_class.parameter_count(config)
    if count > max_parameters:
        raise ValueError(
            f"config.json describes a model of {count:,} parameters ({config.num_hidden_layers} "
            f"layers, hidden size {config.hidden_size}, vocabulary {config.vocab_size:,}, "
            f"{config.max_position_embeddings:,} positions), more than the "
            f"{max_parameters:,} allowed here")


# safetensors' dtype names; any other (integers, bool) is not a weight.
_SAFETENSORS_FLOATS = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                       "BF16": torch.bfloat16}


def _weight_files(directory: Path) -> list[Path] | None:
    """The safetensors files holding the weights, or None for a legacy pickle checkpoint (which
    has no header to read; read_weights loads it with weights_only)."""
    if (directory / WEIGHTS_NAME).is_file():
        return [directory / WEIGHTS_NAME]
    if (directory / WEIGHTS_INDEX_NAME).is_file():
        try:
            shards = set(json.loads((directory / WEIGHTS_INDEX_NAME).read_text())["weight_map"]
                         .values())
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
            raise ValueError(f"{directory / WEIGHTS_INDEX_NAME} is not a valid index") from err
        return [directory / shard for shard in sorted(shards)]
    return None


def header_tensors(files: list[Path]) -> dict[str, torch.Tensor]:
    """Each stored tensor as an empty tensor on the meta device with its stored shape and dtype:
    the safetensors headers are read, not the data."""
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            with safe_open(file, framework="pt") as handle:
                keys = handle.keys()  # the handle itself is not iterable
                for key in keys:
                    stored = handle.get_slice(key)
                    dtype = _SAFETENSORS_FLOATS.get(stored.get_dtype(), torch.int64)
                    tensors[key] = torch.empty(stored.get_shape(), dtype=dtype, device="meta")
        except Exception as err:  # safetensors raises its own error types for bad headers
            raise ValueError(f"{file.name} is not a readable safetensors file (truncated or "
                             f"corrupt?): {err}") from err
    return tensors


def check_weight_headers(model_class, config: RobertaConfig, directory: Path,
                         checkpoint_is_same_task: bool) -> None:
    """Check the weights' names, shapes and dtypes against `model_class(config)` from the
    safetensors headers and a model built on the meta device (no memory for either), so a
    checkpoint whose weights do not fit its config is refused before anything is allocated."""
    files = _weight_files(directory)
    if files is None:
        return
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"the weight shard(s) {_summarise(missing)} are missing from "
                         f"{directory}")
    stored = header_tensors(files)
    with torch.device("meta"):
        skeleton = model_class(config)
    match_state_dict(skeleton, stored, checkpoint_is_same_task)


class PretrainedMixin:
    """`from_pretrained` / `save_pretrained` for the model classes in model.py."""

    config: RobertaConfig

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *,
                        max_parameters: int | None = None, trusted: bool = False,
                        **config_overrides):
        """Load a checkpoint directory (ours or transformers') or a hub id.

        `config_overrides` replace config.json fields, e.g. `num_labels=3` when fine-tuning a
        masked-LM checkpoint; a task head the checkpoint lacks starts freshly initialised (with a
        warning), exactly as transformers does.

        `max_parameters` refuses (ValueError) a config describing a bigger model. Both it and the
        weights' names and shapes (read from the safetensors headers) are checked before any
        memory is allocated for the model, so a small file cannot make the process allocate
        gigabytes by declaring a huge config. `trusted=True` (the host's own files, e.g. the
        embedded defaults) skips the header check: its meta-device model costs ~1 s at start-up.
        """
        directory = resolve_pretrained_dir(
            name_or_path, allow_patterns=[CONFIG_NAME, "*.safetensors", WEIGHTS_INDEX_NAME])
        if not (directory / CONFIG_NAME).is_file():
            raise ValueError(f"{directory} has no {CONFIG_NAME}")
        config = RobertaConfig.load(directory / CONFIG_NAME)
        saved_as = config.extra.get("architectures") or []
        if "num_labels" in config_overrides and "id2label" not in config_overrides:
            config_overrides = {**config_overrides, "id2label": None, "label2id": None}
        if config_overrides:
            config = dataclasses.replace(config, **config_overrides)
        same_task = cls.__name__ in saved_as
        if max_parameters is not None:
            check_parameter_cap(cls, config, max_parameters)
        if not trusted:
            check_weight_headers(cls, config, directory, same_task)
        model = cls(config)
        state, fresh = match_state_dict(model, read_weights(directory),
                                        checkpoint_is_same_task=same_task)
        model.load_state_dict(state, strict=True)
        if fresh:
            warnings.warn(f"{cls.__name__} from {name_or_path}: newly initialised "
                          f"{_summarise(fresh)}; train it before use", stacklevel=2)
        model.newly_initialized_keys = fresh
        return model.eval()

    def save_pretrained(self, directory: str | os.PathLike, dtype: torch.dtype | None = None):
        """Write config.json and model.safetensors, each atomically (temporary file, then
        rename). `dtype=torch.float16` halves the file; loading restores float32."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # Tied copies are saved once, as transformers does; clone() because safetensors refuses
        # tensors that share memory (the q/k/v chunks of the fused projection do).
        state = {k: v.detach().to("cpu", dtype or v.dtype).contiguous().clone()
                 for k, v in self.state_dict().items() if k not in TIED_KEYS}
        config = self.config.to_dict()
        config["architectures"] = [type(self).__name__]
        config["torch_dtype"] = str(dtype or torch.float32).removeprefix("torch.")
        _atomic_write(directory / WEIGHTS_NAME,
                      lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
        _atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(
            json.dumps(config, indent=2, sort_keys=True) + "\n"))
        return directory


def _atomic_write(target: Path, write) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
