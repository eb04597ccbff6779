"""Checkpoint directories: ours <-> transformers, and every way a checkpoint can be bad."""

import json
import shutil

import pytest
import torch
import transformers

from roberta import RobertaConfig, RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.hub import HubUnreachableError
from roberta.model import RobertaModel


def nano(**overrides):
    return RobertaConfig.preset("nano", **overrides)


def sample_ids():
    ids = torch.randint(5, 1024, (2, 10), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, -1] = 0, 2
    return ids


@pytest.fixture
def mlm_dir(tmp_path):
    torch.manual_seed(0)
    model = RobertaForMaskedLM(nano()).eval()
    model.save_pretrained(tmp_path / "mlm")
    return tmp_path / "mlm", model


def test_our_directory_loads_in_transformers(mlm_dir):
    path, ours = mlm_dir
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "roberta"
    assert config["architectures"] == ["RobertaForMaskedLM"]
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(path).eval()
    ids = sample_ids()
    with torch.no_grad():
        diff = (ours(ids).logits - theirs(input_ids=ids).logits).abs().max()
    assert diff < 1e-5


def test_transformers_directory_loads_in_ours(tmp_path):
    torch.manual_seed(1)
    hf_config = transformers.RobertaConfig(**{k: v for k, v in nano().to_dict().items()
                                              if k != "extra"})
    theirs = transformers.RobertaForSequenceClassification(hf_config).eval()
    theirs.save_pretrained(tmp_path / "hf")
    ours = RobertaForSequenceClassification.from_pretrained(tmp_path / "hf")
    ids = sample_ids()
    with torch.no_grad():
        diff = (ours(ids).logits - theirs(input_ids=ids).logits).abs().max()
    assert diff < 1e-5
    # and back out again, into transformers' Auto class
    ours.save_pretrained(tmp_path / "ours")
    again = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "ours")
    with torch.no_grad():
        assert (again(input_ids=ids).logits - theirs(input_ids=ids).logits).abs().max() < 1e-5


def test_legacy_pytorch_bin_is_read_without_unpickling_objects(tmp_path, mlm_dir):
    path, ours = mlm_dir
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(path / "config.json", legacy)
    torch.save(ours.state_dict(), legacy / "pytorch_model.bin")
    loaded = RobertaForMaskedLM.from_pretrained(legacy)
    ids = sample_ids()
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, ours(ids).logits)
    # A pickle that carries an arbitrary object is refused, not executed.
    torch.save({"evil": object()}, legacy / "pytorch_model.bin")
    with pytest.raises(ValueError, match="plain tensors"):
        RobertaForMaskedLM.from_pretrained(legacy)


def test_fp16_storage_restores_fp32(tmp_path, mlm_dir):
    _, ours = mlm_dir
    ours.save_pretrained(tmp_path / "half", dtype=torch.float16)
    size_full = (mlm_dir[0] / "model.safetensors").stat().st_size
    size_half = (tmp_path / "half" / "model.safetensors").stat().st_size
    assert size_half < 0.6 * size_full
    loaded = RobertaForMaskedLM.from_pretrained(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    ids = sample_ids()
    with torch.no_grad():
        assert (loaded(ids).logits - ours(ids).logits).abs().max() < 1e-2


def test_mlm_checkpoint_initialises_a_new_classifier_head(mlm_dir):
    path, ours = mlm_dir
    with pytest.warns(UserWarning, match="newly initialised classifier"):
        clf = RobertaForSequenceClassification.from_pretrained(path, num_labels=3)
    assert clf.config.num_labels == 3
    assert torch.equal(clf.roberta.embeddings.word_embeddings.weight,
                       ours.roberta.embeddings.word_embeddings.weight)
    encoder = RobertaModel.from_pretrained(path)  # the bare encoder, from a task checkpoint
    assert torch.equal(encoder.encoder.layer[1].output.dense.weight,
                       ours.roberta.encoder.layer[1].output.dense.weight)


def test_truncated_weights(tmp_path, mlm_dir):
    path, _ = mlm_dir
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="safetensors.*(truncated|corrupt)"):
        RobertaForMaskedLM.from_pretrained(path)


def test_missing_keys(mlm_dir):
    from safetensors.torch import load_file, save_file
    path, _ = mlm_dir
    weights = load_file(path / "model.safetensors")
    del weights["roberta.encoder.layer.1.output.dense.weight"]
    save_file(weights, path / "model.safetensors")
    with pytest.raises(ValueError, match="missing 1 weight.*layer.1.output.dense.weight"):
        RobertaForMaskedLM.from_pretrained(path)


def test_same_task_checkpoint_without_its_head_is_an_error(mlm_dir):
    from safetensors.torch import load_file, save_file
    path, _ = mlm_dir
    weights = {k: v for k, v in load_file(path / "model.safetensors").items()
               if not k.startswith("lm_head.dense")}
    save_file(weights, path / "model.safetensors")
    with pytest.raises(ValueError, match="missing 2 weight.*lm_head.dense"):
        RobertaForMaskedLM.from_pretrained(path)


def test_wrong_shapes(mlm_dir):
    path, _ = mlm_dir
    config = json.loads((path / "config.json").read_text())
    config["intermediate_size"] = 128
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="shapes do not match.*intermediate.dense.weight"):
        RobertaForMaskedLM.from_pretrained(path)


def test_wrong_model_type_and_missing_files(tmp_path, mlm_dir):
    path, _ = mlm_dir
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ValueError, match="'bert' model, not 'roberta'"):
        RobertaForMaskedLM.from_pretrained(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        RobertaForMaskedLM.from_pretrained(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no weights"):
        RobertaForMaskedLM.from_pretrained(tmp_path / "empty")
    with pytest.raises(ValueError, match="no checkpoint directory"):
        RobertaForMaskedLM.from_pretrained(tmp_path / "does" / "not" / "exist")


def test_hub_id_offline_names_the_id(monkeypatch):
    import huggingface_hub

    def unreachable(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(HubUnreachableError, match="'FacebookAI/roberta-base'.*cannot be reached"):
        RobertaForMaskedLM.from_pretrained("FacebookAI/roberta-base")


def test_hub_id_with_real_network_call_fails_cleanly(monkeypatch, tmp_path):
    """A real download attempt against a hub that refuses connections (a closed local port, so
    the answer is the same on every machine) ends in our error, quickly. huggingface_hub reads
    its environment once, at import: its constants are patched instead."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hub_constants, "HF_HUB_ETAG_TIMEOUT", 3)
    monkeypatch.setattr(hub_constants, "HF_HUB_DOWNLOAD_TIMEOUT", 3)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(HubUnreachableError, match="FacebookAI/roberta-base"):
        RobertaForMaskedLM.from_pretrained("FacebookAI/roberta-base")
