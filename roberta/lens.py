"""Inside one prediction: what each layer would predict at a <mask> (the logit lens), and one
attention head's weights computed step by step (the neuron view).

Both read hidden states this codebase computes itself, so they work on any model it holds: one
trained here, an imported `transformers` checkpoint, or a classifier's encoder.

The logit lens at <mask>. RoBERTa is post-LN: every layer's output has just passed a LayerNorm,
the same kind of vector the MLM head reads after the last layer, so the head is applied to each
layer's output unchanged (dense -> GELU -> LayerNorm -> decoder). Pre-LN causal models need the
final LayerNorm applied first; nothing is added here. Layer 0 is the embeddings. The last row is
the model's own prediction. An intermediate layer was never trained to feed the head, so its row
says what the head reads into that layer's vector, not what the layer "believes".

The neuron view (bertviz's name): for a query token, q and k per dimension, q ⊙ k, the sum, the
scaling by 1/√head_size and the softmax over the keys (padding excluded), exactly as
roberta.model.attention computes the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .inference import _device, encode_window, window_length
from .model import RobertaLMHead
from .tokenizer import RobertaTokenizer

LENS_TOP_K = 5


def _encoder(model) -> torch.nn.Module:
    """The RobertaModel inside any of our model classes (or the model itself)."""
    encoder = getattr(model, "roberta", model)
    if not hasattr(encoder, "embeddings") or not hasattr(encoder, "encoder"):
        raise ValueError("This model has no RoBERTa encoder to look inside.")
    return encoder


# --- the logit lens --------------------------------------------------------------------------

@dataclass
class LayerGuess:
    layer: int  # 0 = the embeddings, 1..L = each layer's output
    tokens: list[str]  # the top-k, readable (" coffee")
    probabilities: list[float]
    answer_rank: int  # where the model's final answer stands at this layer (1 = first)
    answer_probability: float


@dataclass
class LensResult:
    tokens: list[str]  # what the model read, readable
    mask_position: int  # index in `tokens` of the <mask> looked at
    answer: str  # the model's own first guess there (the last layer's)
    layers: list[LayerGuess]

    def first_layer_with_answer_in_top(self, k: int = LENS_TOP_K) -> int | None:
        """The first layer at which the final answer is among the top k (None: never)."""
        return next((g.layer for g in self.layers if g.answer_rank <= k), None)


def logit_lens(model, tokenizer: RobertaTokenizer, text: str, head: RobertaLMHead | None = None,
               mask_index: int = 0, top_k: int = LENS_TOP_K) -> LensResult:
    """What the MLM head would predict at the `mask_index`-th <mask> (0 = the first) after each
    layer. `head`: the MLM head to apply, default the model's own (`model.lm_head`); for a
    classifier, pass the head of the masked LM its encoder came from (same vocabulary)."""
    head = head if head is not None else getattr(model, "lm_head", None)
    if head is None:
        raise ValueError("This model has no masked-LM head: give the lens one (e.g. the head "
                         "of the masked LM its encoder was fine-tuned from).")
    if head.decoder.out_features != tokenizer.vocab_size:
        raise ValueError(f"The head predicts {head.decoder.out_features:,} tokens but the "
                         f"tokenizer has {tokenizer.vocab_size:,}: they do not belong together.")
    if not 1 <= top_k <= tokenizer.vocab_size:
        raise ValueError(f"top_k must be between 1 and {tokenizer.vocab_size}, got {top_k}")
    if tokenizer.mask_token not in (text or ""):
        raise ValueError(f"The text has no {tokenizer.mask_token}: the lens looks at what each "
                         f"layer would put in place of one.")
    encoder = _encoder(model)
    encoding, _ = encode_window(tokenizer, text, encoder.config.max_sequence_length)
    masks = [i for i, t in enumerate(encoding.ids) if t == tokenizer.mask_token_id]
    if not masks:
        raise ValueError(f"The tokenizer did not read {tokenizer.mask_token} as one token: put "
                         f"it between spaces, where a word should be guessed.")
    if not 0 <= mask_index < len(masks):
        raise ValueError(f"There {'is' if len(masks) == 1 else 'are'} {len(masks)} "
                         f"{tokenizer.mask_token} in the text read: mask_index must be 0 to "
                         f"{len(masks) - 1}, got {mask_index}.")
    position = masks[mask_index]
    ids = torch.tensor([encoding.ids], device=_device(model))
    with torch.inference_mode():
        hidden = encoder(ids, output_hidden_states=True).hidden_states  # L+1 x (1, T, C)
        at_mask = torch.stack([h[0, position] for h in hidden])  # (L+1, C)
        probs = head(at_mask).float().softmax(-1)  # (L+1, V)
    answer = int(probs[-1].argmax())
    ranks = (probs > probs[:, answer:answer + 1]).sum(-1) + 1  # (L+1,)
    top = probs.topk(top_k, dim=-1)
    layers = [LayerGuess(layer, [tokenizer.token_display(t)
                                 for t in tokenizer.convert_ids_to_tokens(indices)],
                         values, int(ranks[layer]), float(probs[layer, answer]))
              for layer, (values, indices) in enumerate(zip(top.values.tolist(),
                                                            top.indices.tolist(), strict=True))]
    return LensResult(tokenizer.readable_tokens(encoding.tokens), position,
                      tokenizer.token_display(tokenizer.convert_ids_to_tokens([answer])[0]),
                      layers)


# --- the neuron view -------------------------------------------------------------------------

@dataclass
class NeuronView:
    """One head's weights for one query token, step by step. T keys, hs = head size."""

    tokens: list[str]
    layer: int  # 1-based, as every view here counts layers
    head: int  # 1-based
    query_index: int
    query: torch.Tensor  # (hs,)
    keys: torch.Tensor  # (T, hs)
    products: torch.Tensor  # (T, hs): q ⊙ k
    scores: torch.Tensor  # (T,): the sum over dimensions, q · k
    scale: float  # 1 / sqrt(hs)
    weights: torch.Tensor  # (T,): softmax(scores * scale) over the real keys


def head_steps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               layer: int, head: int, query_index: int | None = None) -> dict[str, torch.Tensor]:
    """Queries and keys of one head (1-based layer and head) for a batch: q, k (B, T, hs),
    products (B, Tq, Tk, hs), scores and weights (B, Tq, Tk), where the queries are every
    token, or only the one at `query_index` (Tq = 1: the products of every query would be
    T² × hs numbers). Padding is never a key."""
    encoder = _encoder(model)
    config = encoder.config
    L, nh = config.num_hidden_layers, config.num_attention_heads
    if not 1 <= layer <= L:
        raise ValueError(f"layer must be between 1 and {L}, got {layer}")
    if not 1 <= head <= nh:
        raise ValueError(f"head must be between 1 and {nh}, got {head}")
    with torch.inference_mode():
        hidden = encoder(input_ids, attention_mask, output_hidden_states=True).hidden_states
        attention = encoder.encoder.layer[layer - 1].attention.self
        x = hidden[layer - 1].float()  # the layer's input: (B, T, C)
        C, hs = x.size(-1), attention.head_size
        weight, bias = attention.qkv.weight.float(), attention.qkv.bias.float()
        rows = slice((head - 1) * hs, head * hs)
        q = x @ weight[:C][rows].T + bias[:C][rows]  # (B, T, hs)
        k = x @ weight[C:2 * C][rows].T + bias[C:2 * C][rows]
        asking = q if query_index is None else q[:, query_index:query_index + 1]
        products = asking[:, :, None, :] * k[:, None, :, :]  # (B, Tq, Tk, hs)
        scores = products.sum(-1)
        scaled = scores / math.sqrt(hs)
        if attention_mask is not None:
            scaled = scaled.masked_fill(~attention_mask[:, None, :].bool(),
                                        torch.finfo(scaled.dtype).min)
        weights = scaled.softmax(-1)
    return {"q": q, "k": k, "products": products, "scores": scores, "weights": weights}


def neuron_view(model, tokenizer: RobertaTokenizer, text: str, layer: int, head: int,
                query_index: int, max_length: int | None = None) -> NeuronView:
    """The neuron view of one text (read in the window fill-mask reads, narrowed to
    `max_length` tokens with specials where given): `query_index` counts tokens from 0 (<s>)."""
    encoder = _encoder(model)
    encoding, _ = encode_window(tokenizer, text, window_length(encoder.config, max_length))
    if not 0 <= query_index < len(encoding.ids):
        raise ValueError(f"The text read is {len(encoding.ids)} tokens (<s> and </s> "
                         f"included): the query token must be 0 to {len(encoding.ids) - 1}, got "
                         f"{query_index}.")
    ids = torch.tensor([encoding.ids], device=_device(model))
    steps = head_steps(model, ids, None, layer, head, query_index)
    hs = steps["q"].size(-1)
    return NeuronView(tokenizer.readable_tokens(encoding.tokens), layer, head, query_index,
                      steps["q"][0, query_index].cpu(), steps["k"][0].cpu(),
                      steps["products"][0, 0].cpu(), steps["scores"][0, 0].cpu(),
                      1 / math.sqrt(hs), steps["weights"][0, 0].cpu())
