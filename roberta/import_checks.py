"""What an uploaded checkpoint may cost, checked from its files before anything is built.

A parameter cap alone is not a cost cap: 2.4M layers of width 1 fit under 40M parameters and
take minutes and gigabytes to build; 256 heads over 1,026 positions take a minute per window to
run; 19 MB of `[]` under an unknown config key stays in memory as long as the model does. So an
import is measured on what it would cost to serve:

- `inference_cost(config, task)`: per-token and per-window FLOPs and the peak activation memory
  of the heaviest request the app makes with the model (a fill-mask or attention window; for a
  classifier, a batch of windows and the integrated-gradients pass), from the config alone;
- `check_budget(config, task, budget)`: layers, FLOPs per window and per request, memory and
  vocabulary against the host's `ImportBudget`, and a window long enough to hold a sentence;
- `read_json(path, what, max_bytes)`: a JSON file bounded in size and nesting (deep nesting is a
  plain message, never a RecursionError);
- `clean_config(data)`: the config with only the keys the app reads (and a few small,
  well-known ones) kept;
- `check_tokenizer_files(directory, max_vocab)`: only a RoBERTa tokenizer is accepted: byte-level
  BPE with RoBERTa's pre-tokenizer and post-processor, no custom regex, no normalizer, a bounded
  vocabulary and merges;
- `check_finite(model)`: NaN or infinite weights are refused.

Every problem raises `ImportRefused` (a ValueError) whose message is one plain sentence.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .config import RobertaConfig
from .inference import CLASSIFY_ROWS, MAX_CLASSIFY_WINDOWS

# Files of a checkpoint and the most bytes each may have. roberta-base's: config.json 0.5 KB,
# tokenizer.json 1.4 MB, vocab.json 0.9 MB, merges.txt 0.5 MB.
FILE_LIMITS = {
    "config.json": 64_000,
    "tokenizer_config.json": 256_000,
    "special_tokens_map.json": 64_000,
    "tokenizer.json": 16_000_000,
    "vocab.json": 8_000_000,
    "merges.txt": 8_000_000,
    "model.safetensors.index.json": 4_000_000,
}
MAX_JSON_DEPTH = 16  # tokenizer.json nests 5 deep, config.json 3
MIN_WINDOW_TOKENS = 8  # <s>, a few words, <mask>, </s>
MAX_ADDED_TOKENS = 1_000
MAX_TOKEN_CHARS = 256

# The requests the app makes with an imported model (roberta.inference): a classifier reads up
# to CLASSIFY_ROWS windows per forward pass, and integrated gradients backpropagates through up
# to 16 interpolation steps of one window at once. The Sentiment tab's /classify of a long text
# reads MAX_CLASSIFY_WINDOWS windows and runs attributions through up to ATTRIBUTION_WINDOW_ROWS
# window rows in all (4 steps × 32 windows), each a forward and a backward pass (~3 forwards):
# 416 window passes. Measured (Dec 2026, one thread): the embedded classifier's 32-window
# /classify, 1.39 GFLOP a window by this estimate, took 15.0 s (~38 GFLOP/s).
ATTRIBUTION_ROWS = 16
ATTRIBUTION_WINDOW_ROWS = 128
CLASSIFY_REQUEST_PASSES = MAX_CLASSIFY_WINDOWS + 3 * ATTRIBUTION_WINDOW_ROWS
BYTES = 4  # float32
# A (head, query, key) attention weight takes a few FLOPs (scale, mask, softmax) but many
# passes over memory, and with narrow heads QK^T and AV are slow matmuls: measured on one
# thread (Dec 2026, 8 windows of a classifier), many narrow heads ran at 5-8 GFLOP/s by a
# 5-FLOP count where ordinary shapes ran at ~30 (12 layers × 64 wide × 64 heads at 514
# positions: 3.5 s for 19.5 GFLOP so counted; its /classify took minutes under a 1,000 GFLOP
# budget). Counting each weight at 100 FLOPs brings those shapes to the ordinary rate (47-97
# FLOPs a weight measured) and adds ~5% to ordinary ones (the embedded models).
ATTENTION_WEIGHT_FLOPS = 100

# config.json keys kept besides RobertaConfig's own fields, each when its JSON is short.
KEPT_EXTRA_KEYS = frozenset({
    "architectures", "torch_dtype", "dtype", "transformers_version", "problem_type",
    "position_embedding_type", "use_cache", "tie_word_embeddings", "is_decoder",
    "add_cross_attention", "finetuning_task", "structured_init", "_name_or_path",
})
MAX_EXTRA_CHARS = 2_000


def size_text(n: float) -> str:
    """64 KB, 1.5 MB: a byte count a person reads."""
    return f"{n / 1e6:,.3g} MB" if n >= 1e6 else f"{n / 1e3:,.3g} KB"


class ImportRefused(ValueError):
    """An uploaded checkpoint the app will not load; the message says why in one sentence."""


@dataclass(frozen=True)
class ImportBudget:
    """The host's bounds on one imported model (roberta.ui.limits reads them from settings)."""
    max_layers: int = 48
    max_window_gflops: float = 20.0
    max_request_gflops: float = 800.0
    max_memory_bytes: int = 1024 * 2**20
    max_vocab: int = 131_072


@dataclass(frozen=True)
class InferenceCost:
    window_tokens: int  # the longest window the tabs read: the model's max_sequence_length
    flops_per_token: float  # one forward pass, one row
    window_flops: float  # one forward pass over one full window
    request_flops: float  # the heaviest request: one window, or a classifier's long /classify
    peak_bytes: int  # weights plus the activations of the heaviest request

    @property
    def window_gflops(self) -> float:
        return self.window_flops / 1e9

    @property
    def request_gflops(self) -> float:
        return self.request_flops / 1e9


def _layer_flops_per_token(config: RobertaConfig, tokens: int) -> float:
    H, F, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    projections = 2 * 4 * H * H  # query, key, value, output
    ffn = 2 * 2 * H * F + 8 * F  # two matmuls and the GELU
    # QK^T and AV, then each (head, query, key) weight's scale, mask and softmax, counted at
    # what it costs in time rather than its few FLOPs (ATTENTION_WEIGHT_FLOPS).
    attention = 2 * 2 * tokens * H + ATTENTION_WEIGHT_FLOPS * heads * tokens
    return projections + ffn + attention + 20 * H  # layer norms, residuals, biases


def _layer_working_bytes(config: RobertaConfig, rows: int, tokens: int) -> int:
    """Values alive at once inside one layer's forward pass (inference: nothing is kept)."""
    H, F, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    return BYTES * rows * (tokens * (6 * H + 2 * F) + 2 * heads * tokens * tokens)


def _layer_saved_bytes(config: RobertaConfig, rows: int, tokens: int) -> int:
    """Values one layer keeps for backward (integrated gradients)."""
    H, F, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    return BYTES * rows * (tokens * (8 * H + 2 * F) + 2 * heads * tokens * tokens)


def parameter_count(config: RobertaConfig, task: str) -> int:
    from .model import RobertaForMaskedLM, RobertaForSequenceClassification

    model_class = RobertaForMaskedLM if task == "mlm" else RobertaForSequenceClassification
    return model_class.parameter_count(config)


def inference_cost(config: RobertaConfig, task: str) -> InferenceCost:
    """What serving a model of this config costs, from the config alone (nothing is built).

    `task` "mlm": one window per request, the LM head over every position (the attention tab
    runs it so). "classifier": CLASSIFY_ROWS windows per forward pass, and integrated gradients
    through ATTRIBUTION_ROWS steps of one window with every layer's activations kept."""
    if task not in ("mlm", "classifier"):
        raise ValueError(f"task must be mlm or classifier, got {task!r}")
    T, H, L = config.max_sequence_length, config.hidden_size, config.num_hidden_layers
    V = config.vocab_size
    layer = _layer_flops_per_token(config, T)
    head = 2 * (H * H + H * V) if task == "mlm" else 2 * (H * H + H * config.num_labels)
    per_token = L * layer + head + 10 * H  # embeddings and their layer norm
    weights = BYTES * parameter_count(config, task)
    if task == "mlm":
        activations = _layer_working_bytes(config, 1, T) + BYTES * T * (V + 2 * H)
    else:
        forward = _layer_working_bytes(config, CLASSIFY_ROWS, T)
        backward = (L * _layer_saved_bytes(config, ATTRIBUTION_ROWS, T)
                    + _layer_working_bytes(config, ATTRIBUTION_ROWS, T))
        activations = max(forward, backward)
    window = float(per_token * T)
    passes = 1 if task == "mlm" else CLASSIFY_REQUEST_PASSES
    return InferenceCost(T, float(per_token), window, window * passes,
                         int(weights + activations))


def check_budget(config: RobertaConfig, task: str, budget: ImportBudget) -> InferenceCost:
    """ImportRefused when a model of this config would cost more to serve than `budget`
    allows, or could not read a sentence; the cost otherwise."""
    layers, T = config.num_hidden_layers, config.max_sequence_length
    if T < MIN_WINDOW_TOKENS:
        raise ImportRefused(
            f"config.json gives the model {config.max_position_embeddings} positions, a window "
            f"of {max(T, 0)} tokens: too short to read a sentence (at least "
            f"{MIN_WINDOW_TOKENS + config.pad_token_id + 1} positions are needed).")
    if layers > budget.max_layers:
        raise ImportRefused(
            f"config.json describes {layers:,} layers, more than the {budget.max_layers} this app "
            f"runs for an imported model.")
    if config.vocab_size > budget.max_vocab:
        raise ImportRefused(
            f"config.json describes a vocabulary of {config.vocab_size:,} tokens, more than the "
            f"{budget.max_vocab:,} this app accepts.")
    cost = inference_cost(config, task)
    if cost.window_gflops > budget.max_window_gflops:
        raise ImportRefused(
            f"This model would need about {cost.window_gflops:,.0f} GFLOP to read one window of "
            f"{T:,} tokens ({layers} layers, {config.num_attention_heads} heads, hidden size "
            f"{config.hidden_size}), more than the {budget.max_window_gflops:g} GFLOP this app "
            f"allows an imported model.")
    if cost.request_gflops > budget.max_request_gflops:
        raise ImportRefused(
            f"This classifier would need about {cost.request_gflops:,.0f} GFLOP to classify a "
            f"long text ({MAX_CLASSIFY_WINDOWS} windows of {T:,} tokens, with attributions), "
            f"more than the {budget.max_request_gflops:,g} GFLOP this app allows one request.")
    if cost.peak_bytes > budget.max_memory_bytes:
        raise ImportRefused(
            f"This model would need about {cost.peak_bytes / 2**20:,.0f} MB of memory to answer "
            f"one request ({T:,}-token windows, {config.num_attention_heads} heads, "
            f"{layers} layers), more than the {budget.max_memory_bytes / 2**20:,.0f} MB this app "
            f"gives one request.")
    return cost


# --- JSON files -----------------------------------------------------------------------------

def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def read_json(path: Path, what: str, max_bytes: int | None = None,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The parsed JSON of `path`, or ImportRefused (too big, too deeply nested, not JSON)."""
    max_bytes = max_bytes or FILE_LIMITS.get(what, 1_000_000)
    size = path.stat().st_size
    if size > max_bytes:
        raise ImportRefused(f"{what} is {size_text(size)}, more than the "
                            f"{size_text(max_bytes)} a checkpoint's {what} may have.")
    nested = ImportRefused(f"{what} is nested more than {max_depth} levels deep; a "
                           f"checkpoint's {what} is not.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ImportRefused(f"{what} is not UTF-8 text.") from err
    try:
        data = json.loads(text)
    except RecursionError:
        raise nested from None
    except ValueError as err:
        raise ImportRefused(f"{what} is not valid JSON (line {getattr(err, 'lineno', '?')}).") \
            from None
    if _depth(data) > max_depth:
        raise nested
    return data


def clean_config(data: dict) -> dict:
    """config.json with only what the app reads: RobertaConfig's fields, and the well-known
    extra keys whose values are short. Anything else is dropped, so it holds no memory."""
    known = {f.name for f in fields(RobertaConfig)} - {"extra"}
    kept = {}
    for key, value in data.items():
        small = key in KEPT_EXTRA_KEYS and len(json.dumps(value)) <= MAX_EXTRA_CHARS
        if key == "architectures" and not (isinstance(value, list)
                                           and all(isinstance(v, str) for v in value)):
            small = False  # a list of class names, or nothing
        if key in known or key == "model_type" or small:
            kept[key] = value
    return kept


# --- tokenizers -----------------------------------------------------------------------------

_BYTE_LEVEL_KEYS = {"type", "add_prefix_space", "trim_offsets", "use_regex"}


def _check_byte_level(part: Any, what: str) -> None:
    if not isinstance(part, dict) or part.get("type") != "ByteLevel" \
            or not set(part) <= _BYTE_LEVEL_KEYS or part.get("use_regex", True) is not True:
        raise ImportRefused(f"tokenizer.json's {what} is not RoBERTa's (byte-level, with its "
                            f"own word pattern); only RoBERTa tokenizers are accepted.")


def _check_post_processor(part: Any) -> None:
    if isinstance(part, dict) and part.get("type") == "Sequence":
        steps = part.get("processors")
        if not isinstance(steps, list) or len(steps) > 2:
            raise ImportRefused("tokenizer.json's post-processor is not RoBERTa's; only "
                                "RoBERTa tokenizers are accepted.")
        for step in steps:
            if isinstance(step, dict) and step.get("type") == "ByteLevel":
                _check_byte_level(step, "post-processor")
            else:
                _check_post_processor(step)
        return
    if not isinstance(part, dict) or part.get("type") != "RobertaProcessing":
        raise ImportRefused("tokenizer.json's post-processor is not RoBERTa's (<s> … </s>); "
                            "only RoBERTa tokenizers are accepted.")


def _check_vocab(vocab: Any, max_vocab: int, what: str) -> None:
    if not isinstance(vocab, dict) or not vocab:
        raise ImportRefused(f"{what} has no vocabulary.")
    if len(vocab) > max_vocab:
        raise ImportRefused(f"{what} has {len(vocab):,} tokens, more than the {max_vocab:,} "
                            f"this app accepts.")
    for token, index in vocab.items():
        if len(token) > MAX_TOKEN_CHARS or isinstance(index, bool) \
                or not isinstance(index, int) or not 0 <= index < max_vocab:
            raise ImportRefused(f"{what} holds an odd vocabulary entry; only RoBERTa "
                                f"tokenizers are accepted.")


def check_tokenizer_json(data: Any, max_vocab: int) -> None:
    """ImportRefused unless `data` (tokenizer.json, parsed) has a RoBERTa tokenizer's
    structure: byte-level BPE, no normalizer, RoBERTa's pre-tokenizer and post-processor."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ImportRefused("tokenizer.json is not a tokenizers file (no model in it).")
    model = data["model"]
    if model.get("type", "BPE") != "BPE":
        raise ImportRefused(f"tokenizer.json holds a {str(model.get('type'))[:40]} model; only "
                            f"RoBERTa's byte-level BPE is accepted.")
    if data.get("normalizer") is not None:
        raise ImportRefused("tokenizer.json has a normalizer; RoBERTa's tokenizer has none, "
                            "and only RoBERTa tokenizers are accepted.")
    _check_byte_level(data.get("pre_tokenizer"), "pre-tokenizer")
    _check_post_processor(data.get("post_processor"))
    if data.get("decoder") is not None:
        _check_byte_level(data["decoder"], "decoder")
    if model.get("dropout") not in (None, 0, 0.0) or model.get("continuing_subword_prefix") \
            or model.get("end_of_word_suffix"):
        raise ImportRefused("tokenizer.json's BPE has options RoBERTa's does not (dropout or "
                            "sub-word markers); only RoBERTa tokenizers are accepted.")
    _check_vocab(model.get("vocab"), max_vocab, "tokenizer.json")
    merges = model.get("merges", [])
    if not isinstance(merges, list) or len(merges) > max_vocab:
        raise ImportRefused(f"tokenizer.json has more merges than the {max_vocab:,} this app "
                            f"accepts.")
    added = data.get("added_tokens") or []
    if not isinstance(added, list) or len(added) > MAX_ADDED_TOKENS or any(
            not isinstance(t, dict) or not isinstance(t.get("content"), str)
            or len(t["content"]) > MAX_TOKEN_CHARS for t in added):
        raise ImportRefused("tokenizer.json's added tokens are not a short list of short "
                            "tokens; only RoBERTa tokenizers are accepted.")


def check_tokenizer_files(directory: Path, max_vocab: int) -> None:
    """Check the extracted tokenizer files: sizes, nesting and a RoBERTa tokenizer's structure
    (tokenizer.json) or a bounded vocabulary and merges (vocab.json + merges.txt)."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (directory / name).is_file():
            read_json(directory / name, name)
    if (directory / "tokenizer.json").is_file():
        check_tokenizer_json(read_json(directory / "tokenizer.json", "tokenizer.json"),
                             max_vocab)
        return
    _check_vocab(read_json(directory / "vocab.json", "vocab.json"), max_vocab, "vocab.json")
    merges = directory / "merges.txt"
    if merges.stat().st_size > FILE_LIMITS["merges.txt"]:
        raise ImportRefused(f"merges.txt is more than the {size_text(FILE_LIMITS['merges.txt'])} "
                            f"a checkpoint's merges.txt may have.")
    try:
        count = merges.read_bytes().decode("utf-8").count("\n")
    except UnicodeDecodeError:
        raise ImportRefused("merges.txt is not UTF-8 text.") from None
    if count > max_vocab + 1:
        raise ImportRefused(f"merges.txt has {count:,} merges, more than the {max_vocab:,} "
                            f"this app accepts.")


# --- weights --------------------------------------------------------------------------------

def check_finite(model: torch.nn.Module) -> None:
    """ImportRefused when a weight holds NaN or infinity (the model would answer with blank
    probabilities)."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ImportRefused(f"The weight {name} holds NaN or infinite values; the model "
                                f"cannot give probabilities.")


def describe_cost(cost: InferenceCost) -> str:
    return (f"{cost.window_gflops:,.2f} GFLOP per {cost.window_tokens}-token window, "
            f"~{math.ceil(cost.peak_bytes / 2**20):,} MB at peak")
