"""How much memory one training step needs, estimated from the model's config alone."""

from __future__ import annotations

import math

from ..model import RobertaForMaskedLM, RobertaForSequenceClassification

# Bytes a training step holds, conservatively (every activation counted at fp32 even under
# bf16 autocast, which halves most of them). Calibrated against measured peaks by
# `python -m bench.request_memory` (its train-* and finetune-* cases; the figures are in the
# README's settings table): every measured peak was below the estimate, by 1.4-2.2x.
BYTES_PER_PARAMETER = 20  # fp32 weights, grads, AdamW's two moments, + its foreach temporaries
# Per layer and token, in hidden-width units kept for backward: the layer input, q/k/v, the
# attention output, two dense outputs with their dropout masks, two residual sums and two
# LayerNorms' inputs/outputs; and in FFN-width units: the FFN matmul's output and its GELU.
HIDDEN_SAVES_PER_LAYER = 16
FFN_SAVES_PER_LAYER = 3
# Per layer and attention weight (batch × heads × T²): scores, softmax output, dropout mask,
# dropped probabilities (the CPU's explicit attention path; CUDA's fused kernel keeps fewer).
ATTENTION_SAVES_PER_LAYER = 4
# Per scored row and vocabulary entry: the logits, their fp32 copy, softmax and its gradient.
LOGIT_SAVES = 4
# Whatever the sizes: the allocator's arenas, oneDNN's bf16 kernels and their weight caches.
FIXED_OVERHEAD_BYTES = 64 * 2**20


def training_memory_bytes(config, batch_size: int, seq_length: int, *,
                          task: str = "mlm", mask_rate: float = 0.15) -> int:
    """A conservative estimate of one training step's peak memory in bytes: the parameters'
    state (weights, gradients, AdamW moments) plus the activations kept for backward.

    `task` "mlm" (the LM head scores only the masked rows: `mask_rate` of the tokens) or
    "classify" (a small head on <s>). Counted from the config alone, so a run can be refused
    before anything is allocated.
    """
    if task not in ("mlm", "classify"):
        raise ValueError(f"task must be mlm or classify, got {task!r}")
    C, F, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = batch_size * seq_length
    if task == "mlm":
        parameters = RobertaForMaskedLM.parameter_count(config)
        scored = math.ceil(tokens * mask_rate)
        head = scored * (config.vocab_size * LOGIT_SAVES + 4 * C) + tokens * C
    else:
        parameters = RobertaForSequenceClassification.parameter_count(config)
        head = batch_size * 4 * C
    per_layer = (tokens * (HIDDEN_SAVES_PER_LAYER * C + FFN_SAVES_PER_LAYER * F)
                 + ATTENTION_SAVES_PER_LAYER * batch_size * config.num_attention_heads
                 * seq_length * seq_length)
    embeddings = 4 * tokens * C
    activations = 4 * (L * per_layer + embeddings + head)  # 4 bytes a value (fp32)
    return FIXED_OVERHEAD_BYTES + BYTES_PER_PARAMETER * parameters + activations
