"""Hostile checkpoint uploads, round two (issue #31): each crafted on the fly, small and fast.

A parameter cap is not a cost cap, so every upload here stays under it and must still be refused
from its files, before a model is built, with one plain sentence: a layer bomb, long-and-wide
attention, a memory stash in config.json, deep nesting, wrong-typed values, too few positions,
NaN weights and tokenizers that are not RoBERTa's (a custom regex, a normalizer, a huge
vocabulary).
"""

from __future__ import annotations

import json
import time
import zipfile

import pytest
import torch

from roberta.checkpoint_zip import CheckpointZipError, load_checkpoint_zip
from roberta.config import RobertaConfig
from roberta.import_checks import (
    ATTENTION_WEIGHT_FLOPS,
    ImportBudget,
    check_budget,
    inference_cost,
    parameter_count,
)

LIMIT = 50_000_000
CAP = 40_000_000  # the CPU host's parameter cap


def make_zip(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def checkpoint_files(tiny_assets, task: str = "mlm") -> dict[str, bytes]:
    folder = tiny_assets / ("mlm" if task == "mlm" else "sentiment")
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}


def with_config(files: dict[str, bytes], **changes) -> dict[str, bytes]:
    config = json.loads(files["config.json"])
    return {**files, "config.json": json.dumps({**config, **changes}).encode()}


def load(upload, tmp_path, budget: ImportBudget | None = None, max_parameters: int = CAP):
    return load_checkpoint_zip(upload, tmp_path / "out", LIMIT, max_parameters, budget)


@pytest.fixture
def no_model_building(monkeypatch):
    """Fail the test if a model is constructed (on any device, the meta device included)."""
    from roberta import model as model_module

    def refuse(self, config, *args, **kwargs):
        raise AssertionError(f"a {type(self).__name__} was built "
                             f"({config.num_hidden_layers:,} layers)")

    for name in ("RobertaForMaskedLM", "RobertaForSequenceClassification", "RobertaModel"):
        monkeypatch.setattr(getattr(model_module, name), "__init__", refuse)


# --- 1. the layer bomb, and long-and-wide attention -----------------------------------------

def test_a_layer_bomb_under_the_parameter_cap_is_refused_before_anything_is_built(
        tiny_assets, tmp_path, no_model_building):
    bomb = dict(num_hidden_layers=2_400_000, hidden_size=1, num_attention_heads=1,
                intermediate_size=1)
    files = with_config(checkpoint_files(tiny_assets), **bomb)
    files["model.safetensors"] = b"\0" * 8  # never read
    config = RobertaConfig.from_dict(json.loads(files["config.json"]))
    assert parameter_count(config, "mlm") < CAP  # the parameter cap alone would let it in
    upload = make_zip(tmp_path / "bomb.zip", files)
    assert upload.stat().st_size < 50_000
    started = time.perf_counter()
    with pytest.raises(CheckpointZipError, match=r"2,400,000 layers, more than the 48"):
        load(upload, tmp_path)
    assert time.perf_counter() - started < 5


def test_long_and_wide_attention_is_refused_for_its_memory(tiny_assets, tmp_path,
                                                           no_model_building):
    """The issue's 1.75 MB model: 1,026 positions and 256 heads of width 1. As a masked LM
    (one window a request) its attention maps alone are 2 GB, and their 270M weights a window
    are refused for their time first, as a masked LM or a classifier."""
    wide = dict(hidden_size=256, num_attention_heads=256, max_position_embeddings=1026,
                num_hidden_layers=2, intermediate_size=256)
    config = RobertaConfig(vocab_size=100, **wide)
    assert inference_cost(config, "mlm").peak_bytes > 2 * 2**30
    files = with_config(checkpoint_files(tiny_assets), **wide)
    with pytest.raises(CheckpointZipError, match=r"GFLOP to read one window of 1,024 tokens"):
        load(make_zip(tmp_path / "wide.zip", files), tmp_path)
    files = with_config(checkpoint_files(tiny_assets, "classifier"), **wide)
    with pytest.raises(CheckpointZipError, match=r"GFLOP to read one window of 1,024 tokens"):
        load(make_zip(tmp_path / "wide-classifier.zip", files), tmp_path / "c")


def test_a_deep_long_model_is_refused_for_its_compute(tiny_assets, tmp_path, no_model_building):
    files = with_config(checkpoint_files(tiny_assets), num_hidden_layers=40, hidden_size=256,
                        num_attention_heads=4, intermediate_size=1024,
                        max_position_embeddings=1026)
    with pytest.raises(CheckpointZipError, match=r"GFLOP to read one window of 1,024 tokens"):
        load(make_zip(tmp_path / "deep.zip", files), tmp_path)


def test_a_classifier_is_bounded_by_its_long_text_request(tiny_assets, tmp_path,
                                                        no_model_building):
    """A classifier's /classify of a long text reads 32 windows and runs attributions: a window
    within the per-window cap can still be refused for the whole request."""
    files = with_config(checkpoint_files(tiny_assets, "classifier"), num_hidden_layers=6,
                        hidden_size=384, num_attention_heads=6, intermediate_size=1536,
                        max_position_embeddings=514)
    config = RobertaConfig.from_dict(json.loads(files["config.json"]))
    cost = inference_cost(config, "classifier")
    assert cost.window_gflops < ImportBudget().max_window_gflops < cost.request_gflops
    with pytest.raises(CheckpointZipError, match=r"GFLOP to classify a long text"):
        load(make_zip(tmp_path / "cls.zip", files), tmp_path)


def test_the_tiny_model_fits_the_default_budget_and_the_budget_is_the_hosts(tiny_assets,
                                                                           tmp_path):
    upload = make_zip(tmp_path / "ok.zip", checkpoint_files(tiny_assets))
    imported = load(upload, tmp_path)
    assert imported.task == "mlm"
    layers = imported.model.config.num_hidden_layers
    with pytest.raises(CheckpointZipError, match=f"{layers} layers, more than the 1 "):
        load_checkpoint_zip(upload, tmp_path / "again", LIMIT, CAP, ImportBudget(max_layers=1))


def test_the_ui_passes_the_hosts_budget(tiny_assets, tmp_path, monkeypatch):
    import gradio as gr

    from roberta.ui.limits import ENV_MAX_IMPORT_GFLOPS
    from roberta.ui.model_import import import_checkpoint

    monkeypatch.setenv(ENV_MAX_IMPORT_GFLOPS, "0.000001")
    upload = make_zip(tmp_path / "ok.zip", checkpoint_files(tiny_assets))
    with pytest.raises(gr.Error, match="GFLOP this app allows an imported model"):
        import_checkpoint({}, str(upload), None)


@pytest.mark.parametrize("task", ["mlm", "classifier"])
def test_the_flop_estimate_bounds_what_torch_counts(task):
    """The estimate counts every matmul (as torch's flop counter does), a little for the
    element-wise work and each attention weight at what it costs in time: at least the counted
    FLOPs, and not far above once the attention weights' share is set aside. Counted on the
    heaviest path, every position through every layer (the attention tab's,
    output_attentions=True)."""
    from torch.utils.flop_counter import FlopCounterMode

    from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification

    config = RobertaConfig.preset("nano", max_position_embeddings=66, num_labels=3)
    model = (RobertaForMaskedLM if task == "mlm" else RobertaForSequenceClassification)(config)
    tokens = config.max_sequence_length
    ids = torch.randint(4, config.vocab_size, (1, tokens))
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.eval()(ids, output_attentions=True)
    counted = counter.get_total_flops()
    estimate = inference_cost(config, task).window_flops
    weights = config.num_hidden_layers * config.num_attention_heads * tokens * tokens
    assert counted <= estimate - ATTENTION_WEIGHT_FLOPS * weights <= 1.25 * counted


def test_cost_grows_with_the_square_of_the_window():
    short = RobertaConfig.preset("tiny", max_position_embeddings=514 // 2 + 1)
    long = RobertaConfig.preset("tiny", max_position_embeddings=1026 * 2)
    ratio = (inference_cost(long, "classifier").peak_bytes
             / inference_cost(short, "classifier").peak_bytes)
    assert ratio > 16  # 8x the tokens: more than 8x the memory (attention grows 64x)
    flops = (inference_cost(long, "mlm").flops_per_token
             / inference_cost(short, "mlm").flops_per_token)
    assert flops > 1.5  # and each token costs more: it attends to 8x as many


# --- 2. the memory stash, nesting and wrong-typed values ------------------------------------

def test_a_memory_stash_in_config_json_is_refused_from_its_size(tiny_assets, tmp_path):
    files = with_config(checkpoint_files(tiny_assets), stash=[[] for _ in range(4_000_000)])
    files["model.safetensors"] = b"\0" * 8  # never read
    upload = make_zip(tmp_path / "stash.zip", files)
    assert upload.stat().st_size < 200_000 and len(files["config.json"]) > 10_000_000
    with pytest.raises(CheckpointZipError, match="config.json is more than the 64 KB"):
        load(upload, tmp_path)
    assert not (tmp_path / "out" / "config.json").exists()  # refused before it was written


def test_unknown_config_keys_are_dropped(tiny_assets, tmp_path):
    files = with_config(checkpoint_files(tiny_assets), stash=[[] for _ in range(5_000)],
                        problem_type="x" * 5_000, transformers_version="4.44.0")
    imported = load(make_zip(tmp_path / "keys.zip", files), tmp_path)
    extra = imported.model.config.extra
    assert "stash" not in extra and "problem_type" not in extra
    assert extra["transformers_version"] == "4.44.0"
    assert extra["architectures"] == ["RobertaForMaskedLM"]


def nested(depth: int) -> str:
    return '{"x": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json", "tokenizer.json"])
@pytest.mark.parametrize("depth", [20, 5_000])
def test_deeply_nested_json_is_a_plain_message(tiny_assets, tmp_path, file, depth):
    files = checkpoint_files(tiny_assets)
    if file == "config.json":
        config = json.loads(files[file])
        files[file] = (json.dumps(config)[:-1] + ', "deep": ' + nested(depth) + "}").encode()
    elif file == "tokenizer.json":
        data = json.loads(files[file])
        files[file] = (json.dumps(data)[:-1] + ', "deep": ' + nested(depth) + "}").encode()
    else:
        files[file] = nested(depth).encode()
    with pytest.raises(CheckpointZipError, match=f"{file} is nested more than 16 levels deep"):
        load(make_zip(tmp_path / "nested.zip", files), tmp_path)


def test_deep_nesting_is_a_plain_error_outside_imports_too(tiny_assets, tmp_path):
    """The command line and from_pretrained read config.json and tokenizer files directly."""
    from roberta.tokenizer import RobertaTokenizer

    (tmp_path / "config.json").write_text(nested(5_000))
    with pytest.raises(ValueError, match="nested too deeply"):
        RobertaConfig.load(tmp_path / "config.json")
    folder = tmp_path / "tok"
    folder.mkdir()
    for name, data in checkpoint_files(tiny_assets).items():
        (folder / name).write_bytes(data)
    (folder / "tokenizer_config.json").write_text(nested(5_000))
    with pytest.raises(ValueError, match="nested too deeply"):
        RobertaTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("key, value", [
    ("classifier_dropout", "abc"),
    ("hidden_dropout_prob", None),
    ("layer_norm_eps", "1e-5"),
    ("initializer_range", [0.02]),
    ("pad_token_id", [1]),
    ("num_labels", 10**9),
    ("id2label", ["a", "b"]),
    ("num_hidden_layers", 2.5),
    ("hidden_act", {"x": 1}),
])
def test_wrong_typed_config_values_are_plain_messages(tiny_assets, tmp_path, key, value):
    files = with_config(checkpoint_files(tiny_assets), **{key: value})
    with pytest.raises(CheckpointZipError, match=f"config.json is not a RoBERTa config: "
                                                 f"{key} must") as refused:
        load(make_zip(tmp_path / "typed.zip", files), tmp_path)
    assert "Traceback" not in str(refused.value) and len(str(refused.value)) < 200


# --- 3. too few positions, NaN weights ------------------------------------------------------

@pytest.mark.parametrize("positions", [3, 4, 9])
def test_a_model_with_too_few_positions_is_refused(tiny_assets, tmp_path, positions,
                                                   no_model_building):
    files = with_config(checkpoint_files(tiny_assets), max_position_embeddings=positions)
    with pytest.raises(CheckpointZipError, match="too short to read a sentence"):
        load(make_zip(tmp_path / "short.zip", files), tmp_path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_infinite_weights_are_refused(tiny_assets, tmp_path, bad):
    from safetensors.torch import load_file, save_file

    files = checkpoint_files(tiny_assets)
    weights = load_file(tiny_assets / "mlm" / "model.safetensors")
    key = next(k for k in sorted(weights) if "layer.1" in k and k.endswith("weight"))
    weights[key] = weights[key].clone()
    weights[key].view(-1)[3] = bad
    save_file(weights, tmp_path / "bad.safetensors")
    files["model.safetensors"] = (tmp_path / "bad.safetensors").read_bytes()
    with pytest.raises(CheckpointZipError, match=r"holds NaN or infinite values"):
        load(make_zip(tmp_path / "nan.zip", files), tmp_path)


# --- 4. tokenizers that are not RoBERTa's ---------------------------------------------------

REGEX_SPLIT = {"type": "Split", "pattern": {"Regex": "(a|aa)+$"}, "behavior": "Isolated",
               "invert": False}


def with_tokenizer(files: dict[str, bytes], **changes) -> dict[str, bytes]:
    data = json.loads(files["tokenizer.json"])
    data.update(changes)
    return {**files, "tokenizer.json": json.dumps(data).encode()}


@pytest.mark.parametrize("change, message", [
    (dict(pre_tokenizer=REGEX_SPLIT), "pre-tokenizer is not RoBERTa's"),
    (dict(pre_tokenizer={"type": "Sequence", "pretokenizers": [
        REGEX_SPLIT, {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]}),
     "pre-tokenizer is not RoBERTa's"),
    (dict(pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False,
                         "use_regex": False}), "pre-tokenizer is not RoBERTa's"),
    (dict(normalizer={"type": "Replace", "pattern": {"Regex": "(a|aa)+$"}, "content": ""}),
     "has a normalizer"),
    (dict(post_processor={"type": "TemplateProcessing", "single": [], "pair": [],
                          "special_tokens": {}}), "post-processor is not RoBERTa's"),
    (dict(model={"type": "WordPiece", "vocab": {"a": 0}}), "only RoBERTa's byte-level BPE"),
    (dict(added_tokens=[{"id": 5, "content": "x" * 10_000}]), "added tokens"),
])
def test_a_tokenizer_that_is_not_robertas_is_refused(tiny_assets, tmp_path, change, message):
    files = with_tokenizer(checkpoint_files(tiny_assets), **change)
    with pytest.raises(CheckpointZipError, match=message):
        load(make_zip(tmp_path / "tok.zip", files), tmp_path)


def test_a_regex_tokenizer_never_runs(tiny_assets, tmp_path, monkeypatch):
    """Refused before the tokenizers library parses it."""
    from tokenizers import Tokenizer

    def refuse(*args, **kwargs):
        raise AssertionError("a foreign tokenizer.json was handed to tokenizers")

    monkeypatch.setattr(Tokenizer, "from_str", refuse)
    files = with_tokenizer(checkpoint_files(tiny_assets), pre_tokenizer=REGEX_SPLIT)
    with pytest.raises(CheckpointZipError, match="pre-tokenizer"):
        load(make_zip(tmp_path / "tok.zip", files), tmp_path)


def test_vocabulary_and_merges_are_bounded(tiny_assets, tmp_path):
    files = checkpoint_files(tiny_assets)
    vocab_size = len(json.loads(files["tokenizer.json"])["model"]["vocab"])
    small = ImportBudget(max_vocab=vocab_size - 1)
    config_vocab = json.loads(files["config.json"])["vocab_size"]
    assert config_vocab == vocab_size
    with pytest.raises(CheckpointZipError, match=f"vocabulary of {vocab_size:,} tokens"):
        load(make_zip(tmp_path / "v.zip", files), tmp_path, budget=small)
    # The tokenizer's own count is checked too, and vocab.json + merges.txt are bounded alike.
    roomy = ImportBudget(max_vocab=vocab_size)
    big = with_tokenizer(files, model={**json.loads(files["tokenizer.json"])["model"],
                                       "merges": [["a", "b"]] * (vocab_size + 1)})
    with pytest.raises(CheckpointZipError, match="more merges than"):
        load(make_zip(tmp_path / "m.zip", big), tmp_path, budget=roomy)
    legacy = {k: v for k, v in files.items() if k != "tokenizer.json"}
    legacy["merges.txt"] = b"#version: 0.2\n" + b"a b\n" * (vocab_size + 5)
    with pytest.raises(CheckpointZipError, match="merges.txt has"):
        load(make_zip(tmp_path / "l.zip", legacy), tmp_path / "l", budget=roomy)


@pytest.mark.parametrize("name", ["merges.txt", "vocab.json", "tokenizer_config.json"])
def test_tokenizer_files_that_are_not_utf8_are_a_plain_message(tiny_assets, tmp_path, name):
    files = {k: v for k, v in checkpoint_files(tiny_assets).items() if k != "tokenizer.json"}
    files[name] = files[name][:20] + b"\xff\xfe\x80" + files[name][20:]
    with pytest.raises(CheckpointZipError, match=f"^{name} is not UTF-8 text.$"):
        load(make_zip(tmp_path / "bytes.zip", files), tmp_path)


def test_an_imports_tokenizer_counts_against_the_models_cap(tiny_assets, tmp_path):
    from roberta.ui import registry

    imported = load(make_zip(tmp_path / "ok.zip", checkpoint_files(tiny_assets)), tmp_path)
    loaded = registry.LoadedModel("Imported: ok", "mlm", imported.model, imported.tokenizer, "")
    tokenizer = registry.TOKENIZER_BYTES_PER_TOKEN * imported.tokenizer.vocab_size
    assert registry.footprint([loaded]) == registry.model_bytes(imported.model) + tokenizer
    twin = registry.LoadedModel("Twin", "mlm", imported.model, imported.tokenizer, "")
    assert registry.footprint([loaded, twin]) == registry.footprint([loaded])  # each once


def test_budget_messages_are_one_plain_sentence():
    config = RobertaConfig.preset("base")
    with pytest.raises(ValueError) as refused:
        check_budget(config, "mlm", ImportBudget())
    message = str(refused.value)
    assert message.endswith(".") and "\n" not in message and "GFLOP" in message
