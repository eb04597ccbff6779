"""The two models under test, with the same config and weights, and the batches they share."""

from __future__ import annotations

import torch

from roberta import RobertaConfig, RobertaForMaskedLM

IGNORE_INDEX = -100


def transformers_config(config: RobertaConfig, attn_implementation: str):
    import transformers

    return transformers.RobertaConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size, layer_norm_eps=config.layer_norm_eps,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id, attn_implementation=attn_implementation)


def build(preset: str, device: torch.device, seed: int = 0):
    """(config, ours, {attn_implementation: theirs}), all holding transformers' initial weights."""
    import transformers

    torch.manual_seed(seed)
    config = RobertaConfig.preset(preset)
    reference = transformers.RobertaForMaskedLM(transformers_config(config, "sdpa"))
    weights = reference.state_dict()
    ours = RobertaForMaskedLM(config)
    ours.load_state_dict(weights, strict=True)
    theirs = {"sdpa": reference}
    eager = transformers.RobertaForMaskedLM(transformers_config(config, "eager"))
    eager.load_state_dict(weights, strict=True)
    theirs["eager"] = eager
    return config, ours.to(device), {k: m.to(device) for k, m in theirs.items()}


def copy_of(model: torch.nn.Module) -> torch.nn.Module:
    """A second, independent copy with the same weights (for a compiled variant)."""
    import copy

    return copy.deepcopy(model)


def pretraining_batches(config: RobertaConfig, batch_size: int, seq_len: int, count: int,
                        device: torch.device, mask_rate: float = 0.15, seed: int = 1):
    """`count` full (unpadded, like packed pretraining sequences) batches with 15% of the
    positions labelled, as the trainer makes them. No attention mask: the trainer skips it
    when there is no padding, for both libraries alike."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids = torch.randint(5, config.vocab_size, (batch_size, seq_len), generator=g)
        ids[:, 0], ids[:, -1] = config.bos_token_id, config.eos_token_id
        chosen = torch.rand(batch_size, seq_len, generator=g) < mask_rate
        chosen[:, 0] = chosen[:, -1] = False
        labels = torch.where(chosen, ids, IGNORE_INDEX)
        batches.append((ids.to(device), labels.to(device)))
    return batches
