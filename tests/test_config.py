import json

import pytest
import transformers

from roberta import PRESETS, RobertaConfig


def test_defaults_are_robertas():
    config = RobertaConfig()
    assert (config.layer_norm_eps, config.pad_token_id, config.bos_token_id,
            config.eos_token_id) == (1e-5, 1, 0, 2)
    assert config.max_position_embeddings == 514 and config.max_sequence_length == 512


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid_and_overridable(name):
    config = RobertaConfig.preset(name, vocab_size=777)
    assert config.vocab_size == 777
    assert config.hidden_size % config.num_attention_heads == 0


@pytest.mark.parametrize("field,value,message", [
    ("hidden_size", 66, "divisible by num_attention_heads"),
    ("num_hidden_layers", 0, "num_hidden_layers"),
    ("vocab_size", -5, "vocab_size"),
    ("max_position_embeddings", 2, "max_position_embeddings"),
    ("intermediate_size", 1.5, "intermediate_size"),
    ("hidden_dropout_prob", 1.0, "hidden_dropout_prob"),
    ("layer_norm_eps", 0.0, "layer_norm_eps"),
])
def test_impossible_configs_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        RobertaConfig.preset("nano", **{field: value})


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'huge'.*nano"):
        RobertaConfig.preset("huge")


def test_config_json_round_trips_through_transformers(tmp_path):
    ours = RobertaConfig.preset("tiny", num_labels=3)
    ours.save(tmp_path / "config.json")
    theirs = transformers.AutoConfig.from_pretrained(tmp_path)
    assert isinstance(theirs, transformers.RobertaConfig)
    for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "max_position_embeddings", "layer_norm_eps",
                  "pad_token_id", "num_labels"):
        assert getattr(theirs, field) == getattr(ours, field), field
    theirs.save_pretrained(tmp_path / "hf")
    back = RobertaConfig.load(tmp_path / "hf" / "config.json")
    assert back.hidden_size == 256 and back.num_labels == 3
    assert back.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert "transformers_version" in back.extra  # unknown keys are kept
    assert back.to_dict()["transformers_version"] == back.extra["transformers_version"]


def test_missing_keys_default_and_wrong_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "hidden_size": 64,
                                                      "num_attention_heads": 4}))
    config = RobertaConfig.load(tmp_path / "config.json")
    assert config.hidden_size == 64 and config.num_hidden_layers == 12
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="'bert'"):
        RobertaConfig.load(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read config"):
        RobertaConfig.load(tmp_path / "config.json")
