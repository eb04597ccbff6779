"""Model FLOPs of a training step and of a forward pass, counted from the shapes.

A matmul of an (m, k) by a (k, n) matrix is 2mkn FLOPs forward and twice that backward, so a
weight matrix with P entries costs 2P FLOPs per row it is applied to forward and 6P with the
backward. Counted: every weight matmul on the rows it actually runs on, and attention's
Q K^T and P V (2 T C per query row each, forward). Not counted: embedding lookups, LayerNorm,
GELU, softmax, dropout and the optimizer (memory-bound work; MFU is about the matmuls).
"""

from __future__ import annotations

from roberta import RobertaConfig

FORMULA = (
    "FLOPs = k x [ (L-1) P_layer B T + 2 C^2 B T + (2 C^2 + 2 C F) R + P_head N "
    "+ 2 C T ((L-1) B T + R) ], k = 6 for a training step and 2 for a forward pass; "
    "P_layer = 4 C^2 + 2 C F (fused QKV, attention output, FFN), P_head = C^2 + C V (the "
    "head's dense layer and the decoder, tied to the word embeddings); the last term is "
    "Q K^T and P V. R = the rows the last layer runs its queries, attention output and FFN "
    "on (its keys and values, 2 C^2, always run on all B T), N = the rows the LM head runs on. "
    "transformers: R = N = B T (dense). Ours: N = the scored positions (~15%) and R = B M, "
    "M the most scored positions in one sequence of the batch (the sparse last layer pads to "
    "it); in fill-mask N = R = 1.")


def matmul_flops(c: RobertaConfig, batch: int, seq_len: int, last_rows: int,
                 head_rows: int) -> int:
    """Forward FLOPs; see FORMULA."""
    C, F, L, BT = c.hidden_size, c.intermediate_size, c.num_hidden_layers, batch * seq_len
    layer = 4 * C * C + 2 * C * F
    weights = ((L - 1) * layer * BT + 2 * C * C * BT + (2 * C * C + 2 * C * F) * last_rows
               + (C * C + C * c.vocab_size) * head_rows)
    attention = 2 * C * seq_len * ((L - 1) * BT + last_rows)
    return 2 * weights + 2 * attention


def training_flops(c: RobertaConfig, batch: int, seq_len: int, last_rows: int,
                   head_rows: int) -> int:
    return 3 * matmul_flops(c, batch, seq_len, last_rows, head_rows)


def inference_flops(c: RobertaConfig, batch: int, seq_len: int, last_rows: int,
                    head_rows: int) -> int:
    return matmul_flops(c, batch, seq_len, last_rows, head_rows)
