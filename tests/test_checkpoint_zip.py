"""Importing a Hugging Face checkpoint from an uploaded .zip: hostile archives are refused."""

from __future__ import annotations

import json
import stat
import zipfile

import pytest
import torch

from roberta.checkpoint_zip import CheckpointZipError, extract_checkpoint, load_checkpoint_zip
from roberta.model import RobertaForSequenceClassification

LIMIT = 50_000_000


def make_zip(path, files: dict[str, bytes], symlinks: dict[str, str] | None = None):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def folder_files(folder, prefix="") -> dict[str, bytes]:
    return {prefix + f.name: f.read_bytes() for f in sorted(folder.iterdir())}


def test_loads_a_masked_lm_from_a_nested_folder(tiny_assets, tmp_path):
    upload = make_zip(tmp_path / "a.zip", folder_files(tiny_assets / "mlm", "out/model/"))
    imported = load_checkpoint_zip(upload, tmp_path / "x", LIMIT)
    assert imported.task == "mlm"
    assert imported.tokenizer.vocab_size <= imported.model.config.vocab_size
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == sorted(
        f.name for f in (tiny_assets / "mlm").iterdir())


def test_loads_a_classifier(tiny_assets, tmp_path):
    upload = make_zip(tmp_path / "c.zip", folder_files(tiny_assets / "sentiment"))
    imported = load_checkpoint_zip(upload, tmp_path / "x", LIMIT)
    assert imported.task == "classifier"
    assert isinstance(imported.model, RobertaForSequenceClassification)


@pytest.mark.parametrize("name, message", [
    ("../evil.txt", "climbs out"),
    ("model/../../evil.txt", "climbs out"),
    ("/etc/evil.txt", "absolute path"),
    ("C:\\evil.txt", "absolute path"),
    ("..\\evil.txt", "climbs out"),
])
def test_refuses_paths_outside_the_folder(tiny_assets, tmp_path, name, message):
    files = {**folder_files(tiny_assets / "mlm"), name: b"x"}
    with pytest.raises(CheckpointZipError, match=message):
        extract_checkpoint(make_zip(tmp_path / "bad.zip", files), tmp_path / "x", LIMIT)
    assert not (tmp_path / "x").exists()  # nothing was written


def test_refuses_symlinks(tiny_assets, tmp_path):
    upload = make_zip(tmp_path / "link.zip", folder_files(tiny_assets / "mlm"),
                      symlinks={"secret": "/etc/passwd"})
    with pytest.raises(CheckpointZipError, match="symbolic link"):
        extract_checkpoint(upload, tmp_path / "x", LIMIT)


def test_refuses_pickles(tiny_assets, tmp_path):
    files = folder_files(tiny_assets / "mlm")
    files.pop("model.safetensors")
    files["pytorch_model.bin"] = b"\x80\x04not really"
    with pytest.raises(CheckpointZipError, match="pickle"):
        extract_checkpoint(make_zip(tmp_path / "p.zip", files), tmp_path / "x", LIMIT)


@pytest.mark.parametrize("missing, message", [
    ("config.json", "no config.json"),
    ("model.safetensors", "no weights"),
])
def test_names_what_is_missing(tiny_assets, tmp_path, missing, message):
    files = folder_files(tiny_assets / "mlm")
    files.pop(missing)
    with pytest.raises(CheckpointZipError, match=message):
        extract_checkpoint(make_zip(tmp_path / "m.zip", files), tmp_path / "x", LIMIT)


def test_needs_a_tokenizer(tiny_assets, tmp_path):
    files = {k: v for k, v in folder_files(tiny_assets / "mlm").items()
             if k in ("config.json", "model.safetensors")}
    with pytest.raises(CheckpointZipError, match="no tokenizer"):
        extract_checkpoint(make_zip(tmp_path / "t.zip", files), tmp_path / "x", LIMIT)


def test_not_a_zip_and_too_big(tiny_assets, tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK but not really")
    with pytest.raises(CheckpointZipError, match="not a readable .zip"):
        extract_checkpoint(fake, tmp_path / "x", LIMIT)
    upload = make_zip(tmp_path / "big.zip", folder_files(tiny_assets / "mlm"))
    with pytest.raises(CheckpointZipError, match="limit"):
        extract_checkpoint(upload, tmp_path / "y", 1000)


def test_zip_bomb_is_stopped_by_bytes_read(tiny_assets, tmp_path):
    files = folder_files(tiny_assets / "mlm")
    files["model.safetensors"] = b"\0" * 3_000_000  # compresses to almost nothing
    upload = tmp_path / "bomb.zip"
    with zipfile.ZipFile(upload, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    assert upload.stat().st_size < 1_000_000
    with pytest.raises(CheckpointZipError, match="limit"):
        extract_checkpoint(upload, tmp_path / "x", 1_000_000)


def test_several_checkpoints_at_the_same_depth(tiny_assets, tmp_path):
    files = {**folder_files(tiny_assets / "mlm", "a/"), **folder_files(tiny_assets / "mlm", "b/")}
    with pytest.raises(CheckpointZipError, match="several checkpoints"):
        extract_checkpoint(make_zip(tmp_path / "two.zip", files), tmp_path / "x", LIMIT)


def test_refuses_other_architectures_and_bad_configs(tiny_assets, tmp_path):
    files = folder_files(tiny_assets / "mlm")
    config = json.loads(files["config.json"])
    files["config.json"] = json.dumps({**config, "architectures": ["RobertaModel"]}).encode()
    with pytest.raises(CheckpointZipError, match="only"):
        load_checkpoint_zip(make_zip(tmp_path / "enc.zip", files), tmp_path / "x", LIMIT)
    files["config.json"] = json.dumps({**config, "model_type": "bert"}).encode()
    with pytest.raises(CheckpointZipError, match="not a RoBERTa config"):
        load_checkpoint_zip(make_zip(tmp_path / "bert.zip", files), tmp_path / "y", LIMIT)
    files["config.json"] = json.dumps({**config, "hidden_size": 32}).encode()
    with pytest.raises(CheckpointZipError, match="does not load"):
        load_checkpoint_zip(make_zip(tmp_path / "shape.zip", files), tmp_path / "z", LIMIT)


def test_sharded_weights(tiny_assets, tmp_path):
    from safetensors.torch import load_file, save_file

    files = folder_files(tiny_assets / "mlm")
    # Random values everywhere (an untrained lm_head.bias is all zeros and would prove nothing).
    generator = torch.Generator().manual_seed(0)
    weights = {k: torch.randn(v.shape, generator=generator).to(v.dtype)
               for k, v in load_file(tiny_assets / "mlm" / "model.safetensors").items()}
    names = sorted(weights)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half],
              "model-00002-of-00002.safetensors": names[half:]}
    for shard, keys in shards.items():
        save_file({k: weights[k].contiguous() for k in keys}, tmp_path / shard)
        files[shard] = (tmp_path / shard).read_bytes()
    files.pop("model.safetensors")
    index = {"weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    imported = load_checkpoint_zip(make_zip(tmp_path / "s.zip", files), tmp_path / "x", LIMIT)
    state = imported.model.state_dict()
    for key, value in weights.items():  # every tensor of both shards, where it belongs
        assert torch.equal(state[key].to(value.dtype), value), key
    files["model.safetensors.index.json"] = json.dumps(
        {"weight_map": {"a": "../escape.safetensors"}}).encode()
    with pytest.raises(CheckpointZipError, match="odd shard"):
        extract_checkpoint(make_zip(tmp_path / "s2.zip", files), tmp_path / "y", LIMIT)


# --- a config that asks for more memory than its file is worth --------------------------------

HUGE = {"vocab_size": 750_000, "hidden_size": 1024, "num_attention_heads": 16}


def huge_config_zip(tiny_assets, tmp_path, weights: bytes = b"\x00" * 8):
    """The issue's 175 KB upload: a real tokenizer, a config asking for ~800M parameters, and
    junk where the weights should be."""
    files = folder_files(tiny_assets / "mlm")
    config = json.loads(files["config.json"])
    files["config.json"] = json.dumps({**config, **HUGE}).encode()
    files["model.safetensors"] = weights
    return make_zip(tmp_path / "huge.zip", files)


@pytest.fixture
def no_model_building(monkeypatch):
    """Fail the test if a model is constructed (on any device)."""
    from roberta import model as model_module

    def refuse(self, config, *args, **kwargs):
        raise AssertionError(f"a {type(self).__name__} was built for {config.vocab_size:,} "
                             f"tokens × {config.hidden_size}")

    for name in ("RobertaForMaskedLM", "RobertaForSequenceClassification", "RobertaModel"):
        monkeypatch.setattr(getattr(model_module, name), "__init__", refuse)


def test_a_config_over_the_parameter_cap_is_refused_before_anything_is_built(
        tiny_assets, tmp_path, no_model_building):
    upload = huge_config_zip(tiny_assets, tmp_path)
    with pytest.raises(CheckpointZipError, match=r"parameters.*more than the 40,000,000 "
                                                 r"allowed here") as refused:
        load_checkpoint_zip(upload, tmp_path / "x", LIMIT, max_parameters=40_000_000)
    assert "750,000" in str(refused.value) and "hidden size 1024" in str(refused.value)


def test_junk_weights_are_refused_from_their_header_without_a_cap(tiny_assets, tmp_path,
                                                                  no_model_building):
    from roberta.import_checks import ImportBudget

    upload = huge_config_zip(tiny_assets, tmp_path)
    unbounded = ImportBudget(max_layers=10**6, max_window_gflops=1e12, max_memory_bytes=2**60,
                             max_vocab=10**7)
    with pytest.raises(CheckpointZipError, match="not a readable safetensors file"):
        load_checkpoint_zip(upload, tmp_path / "x", LIMIT, budget=unbounded)


def test_weights_that_do_not_fit_the_config_are_refused_before_they_are_read(
        tiny_assets, tmp_path, monkeypatch):
    """Within the cap but shaped for another config: the headers say so, and the tensors are
    never loaded (nor a real model allocated for them)."""
    from roberta import hub

    def refuse(directory):
        raise AssertionError("the weights were read before their shapes were checked")

    monkeypatch.setattr(hub, "read_weights", refuse)
    files = folder_files(tiny_assets / "mlm")
    config = json.loads(files["config.json"])
    files["config.json"] = json.dumps({**config, "vocab_size": config["vocab_size"] * 4}).encode()
    with pytest.raises(CheckpointZipError, match="shapes do not match the config"):
        load_checkpoint_zip(make_zip(tmp_path / "wide.zip", files), tmp_path / "x", LIMIT,
                            max_parameters=40_000_000)


def test_a_model_within_the_cap_still_loads(tiny_assets, tmp_path):
    from roberta.model import RobertaForMaskedLM

    upload = make_zip(tmp_path / "a.zip", folder_files(tiny_assets / "mlm"))
    count = RobertaForMaskedLM.parameter_count(
        RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").config)
    assert load_checkpoint_zip(upload, tmp_path / "x", LIMIT, max_parameters=count).task == "mlm"
    with pytest.raises(CheckpointZipError, match="allowed here"):
        load_checkpoint_zip(upload, tmp_path / "y", LIMIT, max_parameters=count - 1)


@pytest.mark.parametrize("class_name", ["RobertaForMaskedLM", "RobertaForSequenceClassification",
                                        "RobertaModel"])
def test_parameter_count_from_the_config_matches_the_built_model(class_name):
    from roberta import model as model_module
    from roberta.config import RobertaConfig

    model_class = getattr(model_module, class_name)
    config = RobertaConfig.preset("nano", num_labels=3)
    built = model_class(config)
    assert model_class.parameter_count(config) == sum(p.numel() for p in built.parameters())


def test_a_model_with_more_token_ids_than_its_tokenizer_is_refused(tiny_assets, tmp_path):
    """Its guesses could name ids the tokenizer cannot write back ("invalid token id" later)."""
    from roberta.config import RobertaConfig
    from roberta.model import RobertaForMaskedLM
    from roberta.tokenizer import RobertaTokenizer

    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    wider = RobertaForMaskedLM(RobertaConfig.preset(
        "nano", vocab_size=tokenizer.vocab_size + 8, max_position_embeddings=66))
    folder = tmp_path / "wider"
    wider.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    upload = make_zip(tmp_path / "wider.zip", folder_files(folder))
    with pytest.raises(CheckpointZipError, match="do not belong together") as refused:
        load_checkpoint_zip(upload, tmp_path / "x", LIMIT)
    assert f"{tokenizer.vocab_size + 8:,} token ids" in str(refused.value)
    assert f"only {tokenizer.vocab_size:,}" in str(refused.value)
