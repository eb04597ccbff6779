"""RoBERTa in one file: embeddings, attention, post-LN encoder layers, and the two task heads.

Read top to bottom. Module and parameter names follow transformers' `modeling_roberta.py`
(`embeddings.word_embeddings`, `encoder.layer.N.attention.self.query`, `lm_head.dense`, ...), so a
real checkpoint's state_dict loads with no mapping table. Shapes in comments use
B = batch, T = sequence length, C = hidden size, nh = heads, hs = head size, V = vocabulary.

What makes it RoBERTa rather than BERT at this level (the rest is data and training):
- position ids start at padding_idx + 1, so padding has its own position row;
- one token type, no next-sentence head;
- the tokenizer is byte-level BPE (roberta/tokenizer.py).

What makes it faster than transformers on the same weights (measured in docs/benchmarks.md):
- the MLM head and the last layer's queries and feed-forward run only where a prediction is
  scored (~15% of positions in pretraining, the <mask> in fill-mask, <s> for a classifier);
- query, key and value come from one fused matmul; attention is SDPA where it has a fused
  kernel, the explicit four lines where it does not (training on the CPU, with dropout);
- dropout on the CPU draws 16 random bits an element instead of a Bernoulli sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import RobertaConfig
from .hub import PretrainedMixin

IGNORE_INDEX = -100  # label of positions that are not scored (PyTorch's cross_entropy default)


@dataclass
class RobertaOutput:
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None  # (B, T, C)
    pooler_output: torch.Tensor | None = None  # (B, C), RobertaModel with a pooler only
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + each layer: L+1 x (B,T,C)
    attentions: tuple[torch.Tensor, ...] | None = None  # each layer's probabilities: L x (B,nh,T,T)


def create_position_ids(input_ids: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """[0, 5, 6, 2, 1, 1] -> [2, 3, 4, 5, 1, 1]: real tokens count up from padding_idx + 1 and
    padding keeps position padding_idx (fairseq's convention, which RoBERTa inherited)."""
    not_pad = input_ids.ne(padding_idx).int()
    return (torch.cumsum(not_pad, dim=1) * not_pad).long() + padding_idx


def rows_of(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) bool -> the True positions of each sequence, in order, left-aligned and padded to
    the longest count M: (positions (B, M) long, valid (B, M) bool). The padding repeats
    position 0 and is marked invalid."""
    counts = mask.sum(1)
    positions = torch.argsort((~mask).byte(), dim=1, stable=True)[:, :int(counts.max())]
    valid = torch.arange(positions.size(1), device=mask.device) < counts[:, None]
    return positions, valid


def gather_rows(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x (B, T, C) at positions (B, M) -> (B, M, C)."""
    return x.gather(1, positions[..., None].expand(-1, -1, x.size(-1)))


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """F.dropout with cheaper random numbers on the CPU.

    On the CPU, F.dropout draws a 32-bit Bernoulli sample per element, which costs more than
    the matmul beside it (~10 ns an element: 8% of a tiny-preset training step, profiled). Here
    one 64-bit draw gives four 16-bit uniform integers and an element is dropped when its 16
    bits fall below round(p * 2**16): the rate is p to within 2**-17, and kept elements are
    scaled by the exact inverse of the keep rate, so the expectation is unchanged. CUDA has a
    fused dropout kernel, and torch.compile generates its own, so they keep F.dropout.
    """
    if not training or p == 0.0 or x.device.type != "cpu" or torch.compiler.is_compiling():
        return F.dropout(x, p, training)
    threshold = round(p * 2**16)
    bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device)
    bits.random_(-2**63, None)  # 64 uniform bits each, from torch's seeded generator
    keep = bits.view(torch.int16)[:x.numel()].view(x.shape) >= threshold - 2**15
    return x * keep.to(x.dtype).mul_(2**16 / (2**16 - threshold))


def attention(q, k, v, key_mask=None, dropout_p=0.0, need_weights=False):
    """Scaled dot-product attention over the sequence axis.

    q, k, v: (B, nh, T, hs). key_mask: (B, 1, 1, T) bool, True where the key is a real token, so
    padding is never attended to. Returns (output (B, nh, T, hs), probabilities (B, nh, T, T) or
    None). The fused kernel cannot return probabilities, so the Attention tab takes the explicit
    path; the two agree to ~1e-7 in fp32. Training on the CPU takes it too: there SDPA has no
    fused kernel with dropout, and its fallback is slower than these four lines.
    """
    if not need_weights and (dropout_p == 0.0 or q.device.type != "cpu"):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout_p)
        return out, None
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, T)
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1)
    return dropout(probs, dropout_p) @ v, (probs if need_weights else None)


class RobertaEmbeddings(nn.Module):
    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.padding_idx = config.pad_token_id
        self.max_length = config.max_sequence_length
        C = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, C, padding_idx=self.padding_idx)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, C,
                                                padding_idx=self.padding_idx)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, C)
        self.LayerNorm = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.dropout_p = config.hidden_dropout_prob

    def forward(self, input_ids, token_type_ids=None):  # (B, T) -> (B, T, C)
        if input_ids.size(1) > self.max_length:
            raise ValueError(f"sequence of {input_ids.size(1)} tokens is longer than the "
                             f"model's {self.max_length} positions")
        positions = create_position_ids(input_ids, self.padding_idx)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        if token_type_ids is None:  # every token is type 0: add that row, skip the lookup
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return dropout(self.LayerNorm(x), self.dropout_p, self.training)


class RobertaSelfAttention(nn.Module):
    """Multi-head self-attention. Query, key and value come from one fused Linear (one matmul
    instead of three); state_dict hooks save and load them as transformers' separate
    `query`, `key` and `value`, so checkpoints never see the fusion."""

    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob
        self.register_state_dict_post_hook(_split_qkv)
        self.register_load_state_dict_pre_hook(_fuse_qkv)

    def forward(self, x, key_mask=None, head_mask=None, need_weights=False, x_q=None):
        """x (B, T, C) -> (B, T, C). With x_q (B, M, C), rows of x, only those ask queries:
        keys and values still come from all of x, and the output is (B, M, C)."""
        B, T, C = x.shape
        nh, hs = self.num_heads, self.head_size
        if x_q is None:
            qkv = self.qkv(x).view(B, T, 3, nh, hs)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, nh, T, hs)
        else:  # the same weights, split: queries from x_q, keys and values from x
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x_q, weight[:C], bias[:C]).view(B, -1, nh, hs).transpose(1, 2)
            k, v = F.linear(x, weight[C:], bias[C:]).view(B, T, 2, nh, hs).permute(2, 0, 3, 1, 4)
        dropout_p = self.dropout_p if self.training else 0.0
        out, probs = attention(q, k, v, key_mask, dropout_p, need_weights)
        if head_mask is not None:  # (nh,) of 0/1: a switched-off head contributes nothing
            head_mask = head_mask.view(1, -1, 1, 1).to(out.dtype)
            out = out * head_mask
            probs = probs * head_mask if probs is not None else None
        return out.transpose(1, 2).reshape(B, -1, C), probs


_QKV_NAMES = ("query", "key", "value")


def _split_qkv(module, state_dict, prefix, local_metadata):
    """Save the fused qkv under transformers' names: self.query, self.key, self.value."""
    for kind in ("weight", "bias"):
        fused = state_dict.pop(f"{prefix}qkv.{kind}")
        for name, part in zip(_QKV_NAMES, fused.chunk(3, dim=0), strict=True):
            state_dict[f"{prefix}{name}.{kind}"] = part


def _fuse_qkv(module, state_dict, prefix, *args):
    """Load transformers' separate query/key/value into the fused qkv."""
    for kind in ("weight", "bias"):
        names = [f"{prefix}{name}.{kind}" for name in _QKV_NAMES]
        if all(name in state_dict for name in names):
            state_dict[f"{prefix}qkv.{kind}"] = torch.cat([state_dict.pop(n) for n in names])


class RobertaAddNorm(nn.Module):
    """dense -> dropout -> add the residual -> LayerNorm: the post-LN sublayer output of BERT and
    RoBERTa, LN(x + Dropout(Sublayer(x))). transformers names its two uses `attention.output`
    and `output`."""

    def __init__(self, in_features: int, config: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout_p = config.hidden_dropout_prob

    def forward(self, x, residual):
        return self.LayerNorm(residual + dropout(self.dense(x), self.dropout_p, self.training))


class RobertaAttention(nn.Module):
    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.self = RobertaSelfAttention(config)
        self.output = RobertaAddNorm(config.hidden_size, config)

    def forward(self, x, key_mask=None, head_mask=None, need_weights=False, rows=None):
        x_q = None if rows is None else gather_rows(x, rows)  # the positions asking queries
        context, probs = self.self(x, key_mask, head_mask, need_weights, x_q)
        return self.output(context, x if x_q is None else x_q), probs


class RobertaIntermediate(nn.Module):
    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x):  # (B, T, C) -> (B, T, 4C)
        return F.gelu(self.dense(x))  # the exact (erf) GELU, not the tanh approximation


class RobertaLayer(nn.Module):
    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.attention = RobertaAttention(config)
        self.intermediate = RobertaIntermediate(config)
        self.output = RobertaAddNorm(config.intermediate_size, config)

    def forward(self, x, key_mask=None, head_mask=None, need_weights=False, rows=None):
        """rows (B, M) positions: compute the output there only, (B, M, C)."""
        x, probs = self.attention(x, key_mask, head_mask, need_weights, rows)
        return self.output(self.intermediate(x), x), probs


class RobertaEncoder(nn.Module):
    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.layer = nn.ModuleList(RobertaLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x, key_mask=None, head_mask=None, output_attentions=False,
                output_hidden_states=False, last_rows=None):
        hidden_states, attentions = [x], []
        for i, layer in enumerate(self.layer):
            rows = last_rows if i == len(self.layer) - 1 else None
            x, probs = layer(x, key_mask, None if head_mask is None else head_mask[i],
                             output_attentions, rows)
            hidden_states.append(x)
            attentions.append(probs)
        return (x, tuple(hidden_states) if output_hidden_states else None,
                tuple(attentions) if output_attentions else None)


class RobertaPooler(nn.Module):
    """dense -> tanh on <s>. Only the bare RobertaModel has it (roberta-base ships its weights);
    the task heads below do not use it."""

    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x):  # (B, T, C) -> (B, C)
        return torch.tanh(self.dense(x[:, 0]))


def init_weights(module: nn.Module, std: float) -> None:
    """RoBERTa's initialisation: normal(0, std) weights, zero biases, LayerNorm at identity, and
    the padding rows of embeddings zero."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def encoder_parameter_count(config: RobertaConfig) -> int:
    """Parameters of the embeddings and encoder layers of `config`, counted without building
    anything, so a size can be refused before memory is allocated for it."""
    C, F, V = config.hidden_size, config.intermediate_size, config.vocab_size
    embeddings = (V + config.max_position_embeddings + config.type_vocab_size) * C + 2 * C
    layer = 4 * (C * C + C) + (C * F + F) + (F * C + C) + 4 * C  # q, k, v, out; FFN; 2 LNs
    return embeddings + config.num_hidden_layers * layer


def _as_head_mask(head_mask, config: RobertaConfig, dtype) -> torch.Tensor | None:
    """Accept (nh,) for every layer or (L, nh); 1 keeps a head, 0 switches it off."""
    if head_mask is None:
        return None
    head_mask = torch.as_tensor(head_mask, dtype=dtype)
    L, nh = config.num_hidden_layers, config.num_attention_heads
    if head_mask.shape == (nh,):
        head_mask = head_mask.expand(L, nh)
    if head_mask.shape != (L, nh):
        raise ValueError(f"head_mask must have shape ({L}, {nh}) or ({nh},), "
                         f"got {tuple(head_mask.shape)}")
    return head_mask


class RobertaModel(PretrainedMixin, nn.Module):
    """The encoder: token ids -> contextual vectors, one per token.

    `last_rows` (B, M) positions, for a head that reads only some positions (the MLM loss): the
    last layer computes keys and values for every token but queries, attention output and
    feed-forward only there, so `last_hidden_state` is (B, M, C). The other layers must run
    in full, since every position is a key in the layer above.
    """

    def __init__(self, config: RobertaConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = RobertaEmbeddings(config)
        self.encoder = RobertaEncoder(config)
        self.pooler = RobertaPooler(config) if add_pooling_layer else None
        self.apply(lambda m: init_weights(m, config.initializer_range))

    @classmethod
    def parameter_count(cls, config: RobertaConfig) -> int:
        """Parameters `cls(config)` would have (with its pooler), without building it."""
        C = config.hidden_size
        return encoder_parameter_count(config) + C * C + C

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, head_mask=None,
                output_attentions=False, output_hidden_states=False,
                last_rows=None) -> RobertaOutput:
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        # Padding is excluded as a *key*; padded queries still compute (and are ignored later).
        key_mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        head_mask = _as_head_mask(head_mask, self.config, x.dtype)
        if head_mask is not None:
            head_mask = head_mask.to(x.device)
        x, hidden_states, attentions = self.encoder(x, key_mask, head_mask, output_attentions,
                                                    output_hidden_states, last_rows)
        pooled = self.pooler(x) if self.pooler is not None and last_rows is None else None
        return RobertaOutput(last_hidden_state=x, pooler_output=pooled,
                             hidden_states=hidden_states, attentions=attentions)


class RobertaLMHead(nn.Module):
    """dense -> GELU -> LayerNorm -> decoder. The decoder's weight is the word-embedding matrix
    (tied); its bias is this head's own `bias` (transformers saves it under both names)."""

    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = self.decoder.bias

    def forward(self, x):  # (..., C) -> (..., V)
        return self.decoder(self.layer_norm(F.gelu(self.dense(x))))


class RobertaForMaskedLM(PretrainedMixin, nn.Module):
    """The encoder plus the masked-language-model head.

    Sparse prediction: with `labels`, the LM head runs only where a label is set (not -100),
    because in pretraining ~85% of positions are never scored and in a tiny model the
    vocabulary projection is ~40% of the FLOPs. Then `.logits` is (N, V) for the N scored
    positions in row-major order, i.e. `logits[i]` predicts `labels[labels != -100][i]`.
    `predict`, a (B, T) bool mask, asks for the same without a loss (fill-mask wants the
    <mask> positions only). With neither, `.logits` is (B, T, V) for every position.
    The last encoder layer is sparse too (see RobertaModel): nothing reads its other outputs,
    so `.last_hidden_state` is None then, unless hidden states or attentions were asked for.
    """

    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.config = config
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.lm_head = RobertaLMHead(config)
        self.lm_head.apply(lambda m: init_weights(m, config.initializer_range))
        self.lm_head.decoder.weight = self.roberta.embeddings.word_embeddings.weight

    @classmethod
    def parameter_count(cls, config: RobertaConfig) -> int:
        """Parameters `cls(config)` would have, without building it (the decoder's weight is
        the word embeddings, counted once)."""
        C = config.hidden_size
        return encoder_parameter_count(config) + (C * C + C) + 2 * C + config.vocab_size

    def forward(self, input_ids, attention_mask=None, labels=None, head_mask=None,
                output_attentions=False, output_hidden_states=False,
                token_type_ids=None, predict=None) -> RobertaOutput:
        scored = predict if labels is None else labels != IGNORE_INDEX  # (B, T) bool or None
        sparse = (scored is not None and bool(scored.any()) and not output_attentions
                  and not output_hidden_states)
        rows, valid = rows_of(scored) if sparse else (None, None)  # (B, M) each
        out = self.roberta(input_ids, attention_mask, token_type_ids, head_mask,
                           output_attentions, output_hidden_states, last_rows=rows)
        x = out.last_hidden_state  # (B, T, C), or (B, M, C) at `rows` when sparse
        if scored is None:
            logits = self.lm_head(x)  # (B, T, V)
        else:
            logits = self.lm_head(x[valid] if sparse else x[scored])  # (N, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), labels[scored])
        return RobertaOutput(loss=loss, logits=logits, last_hidden_state=None if sparse else x,
                             hidden_states=out.hidden_states, attentions=out.attentions)


class RobertaClassificationHead(nn.Module):
    """dropout -> dense -> tanh -> dropout -> out_proj, on the <s> token."""

    def __init__(self, config: RobertaConfig):
        super().__init__()
        p = config.classifier_dropout
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if p is None else p)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, x):  # (B, T, C) -> (B, num_labels)
        x = self.dropout(x[:, 0])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


class RobertaForSequenceClassification(PretrainedMixin, nn.Module):
    """The encoder plus a classification head on <s>. num_labels == 1 means regression (MSE).

    The head reads <s> alone, so the last encoder layer asks its query there only (see
    RobertaModel): for the 4-layer embedded model a fifth less work, in training and inference.
    `.last_hidden_state` is then None, unless hidden states or attentions were asked for.
    """

    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.config = config
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        self.classifier.apply(lambda m: init_weights(m, config.initializer_range))

    @classmethod
    def parameter_count(cls, config: RobertaConfig) -> int:
        """Parameters `cls(config)` would have, without building it."""
        C = config.hidden_size
        return encoder_parameter_count(config) + (C * C + C) + (C + 1) * config.num_labels

    def forward(self, input_ids, attention_mask=None, labels=None, head_mask=None,
                output_attentions=False, output_hidden_states=False,
                token_type_ids=None) -> RobertaOutput:
        sparse = not output_attentions and not output_hidden_states
        rows = input_ids.new_zeros(input_ids.size(0), 1) if sparse else None  # (B, 1): <s>
        out = self.roberta(input_ids, attention_mask, token_type_ids, head_mask,
                           output_attentions, output_hidden_states, last_rows=rows)
        logits = self.classifier(out.last_hidden_state)  # (B, T or 1, C) -> (B, num_labels)
        loss = None
        if labels is not None:
            if self.config.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels)
        return RobertaOutput(loss=loss, logits=logits,
                             last_hidden_state=None if sparse else out.last_hidden_state,
                             hidden_states=out.hidden_states, attentions=out.attentions)
