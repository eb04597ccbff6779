"""Model FLOPs of a training step and of a forward pass, counted from the shapes.

A matmul of an (m, k) by a (k, n) matrix is 2mkn FLOPs forward and twice that backward, so a
weight matrix with P entries costs 6 P FLOPs per token it is applied to in training (2P forward,
4P backward) and 2 P in inference. Per step:

    training  = 6 P_encoder B T + 6 P_head N_head + 12 L B T^2 C
    inference = 2 P_encoder B T + 2 P_head N_head +  4 L B T^2 C

P_encoder = L (4 C^2 + 2 C F) (fused QKV 3C^2, attention output C^2, FFN 2CF);
P_head = C^2 + C V (the head's dense layer and the decoder, tied to the word embeddings);
N_head = the positions the LM head actually runs on: every position for transformers (its head is
dense), only the scored ones (~15%) for ours in training and only the <mask> in fill-mask;
the last term is Q K^T and P V (4 T^2 C per layer and sequence forward, x3 with backward).
Embedding lookups, LayerNorm, GELU, softmax, dropout and the optimizer are not counted: they
are memory-bound work, and MFU is about the matmuls.
"""

from __future__ import annotations

from roberta import RobertaConfig

FORMULA = ("training step = 6 P_encoder B T + 6 P_head N_head + 12 L B T^2 C; "
           "forward (fill-mask) = 2 P_encoder B T + 2 P_head N_head + 4 L B T^2 C; "
           "P_encoder = L (4 C^2 + 2 C F) (fused QKV, attention output, FFN), "
           "P_head = C^2 + C V (dense + decoder), N_head = positions the LM head runs on: "
           "B T for transformers (dense head), the ~15% scored positions for ours in training "
           "and the one <mask> in fill-mask; the T^2 term is Q K^T and P V. "
           "Not counted: embedding lookups, LayerNorm, GELU, softmax, dropout, the optimizer.")


def encoder_params(c: RobertaConfig) -> int:
    C, F = c.hidden_size, c.intermediate_size
    return c.num_hidden_layers * (4 * C * C + 2 * C * F)


def head_params(c: RobertaConfig) -> int:
    return c.hidden_size * c.hidden_size + c.hidden_size * c.vocab_size


def attention_flops(c: RobertaConfig, batch: int, seq_len: int) -> int:
    """Forward only: Q K^T and P V, 2 T^2 C each per layer and sequence."""
    return 4 * c.num_hidden_layers * batch * seq_len * seq_len * c.hidden_size


def training_flops(c: RobertaConfig, batch: int, seq_len: int, head_positions: int) -> int:
    return (6 * encoder_params(c) * batch * seq_len + 6 * head_params(c) * head_positions
            + 3 * attention_flops(c, batch, seq_len))


def inference_flops(c: RobertaConfig, batch: int, seq_len: int, head_positions: int) -> int:
    return (2 * encoder_params(c) * batch * seq_len + 2 * head_params(c) * head_positions
            + attention_flops(c, batch, seq_len))
