"""How a masked LM starts: RoBERTa's random initialisation, or a structured start past the plateau.

A tiny transformer trained from RoBERTa's N(0, 0.02) start sits for thousands of steps on the
early masked-LM plateau: attention is near uniform over positions, so at a `<mask>` the best it
can do is one frequent token ("the"), and the overall accuracy it shows comes from copying the
10% of chosen tokens left unchanged. It leaves the plateau only when some heads have learned to
look at their neighbours *by position* (Chen et al. 2023, "Sudden drops in the loss"; Gopalani &
Hu 2025) — BERT-base needs thousands of steps at batch 256 for that.

The structured start builds that neighbour circuit at step 0, with every tensor at its standard
shape, so the checkpoint stays a plain RoBERTa that transformers loads:

1. The first D hidden dimensions carry position: row t of `position_embeddings` holds
   A·(cos ω_k t, sin ω_k t) for D/2 frequencies ω_k in (0.3, π); `word_embeddings` are 0 there.
2. In layer 0, head h gets an offset δ (−1, +1, ...): its query rows rotate each (cos, sin) pair
   by ω_k δ and its key rows read the pairs unchanged, so the score between positions i and j is
   ∝ Σ_k cos(ω_k (j − i − δ)), largest at j = i + δ. The scale puts that peak logit (after the
   1/√head_size) at `peak_logit`, measured through the embedding LayerNorm.
3. The value rows of those heads copy the neighbour's token dimensions through a random
   orthonormal map, and the output projection writes them back into the token dimensions: after
   layer 0, each position holds its own token and its neighbours'. What remains to learn — which
   words go between which — is what the feed-forward layers and the LM head learn fast.
4. Position must not be erased before the rest has learned to use it. Adam moves every weight by
   ~lr per step whatever its gradient, so at lr 2e-3 trainable position rows lose the sinusoid
   (amplitude 0.057) within ~100 steps, and the word embeddings' position dims — which the tied
   decoder's gradient reaches for every token at every step — grow a token-dependent offset as
   large within ~50. `PretrainConfig.hold_positions_steps` holds both fixed: for the whole run
   (-1, the default), for a number of steps, or not at all (0).

Measured with bench/plateau.py on the micro preset (figures in README.md): with a 40-step warmup,
positions trainable from step 0 left the model on the plateau; holding the position rows alone
left 1 seed in 3 there; holding the word embeddings' position dims as well got all 3 off it. With
the 150-step warmup the Train tab now uses, trainable positions and positions released at step 500
did as well as holding them for the run (2 seeds each, within noise); the default keeps the hold,
the safest. Wider models need a lower learning rate
(`roberta.training.config.default_learning_rate`).

The structured parts come from their own generator (`StructuredInit.seed`), so the circuit is the
same whatever the training seed; everything else keeps RoBERTa's random init from torch's RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import RobertaConfig
from .model import RobertaForMaskedLM
from .tokenizer import RobertaTokenizer

STRUCTURED_START, RANDOM_START = "structured", "roberta"
INIT_CHOICES = (STRUCTURED_START, RANDOM_START)
STRUCTURED_INIT_KEY = "structured_init"  # in config.json: how a structured start was built


def position_dims(config) -> int:
    """The hidden dims a structured start reserved for position (0 for RoBERTa's init)."""
    return int(config.extra.get(STRUCTURED_INIT_KEY, {}).get("position_dims", 0))


@dataclass(frozen=True)
class StructuredInit:
    """The neighbour circuit's shape. The defaults are the measured ones (bench/plateau.py)."""

    position_dims: int = 32  # D, at most the head size and half the hidden size
    amplitude: float = 0.057  # of the sinusoid rows: about a word embedding's norm at 0.02
    peak_logit: float = 12.0  # the score of the attended neighbour, after 1/sqrt(head_size)
    offsets: tuple[tuple[int, ...], ...] = ((-1, 1),)  # per layer: head h attends to i + δ_h
    copy_scale: float = 1.0  # how strongly a head writes its neighbour's token into the residual
    seed: int = 1234  # the circuit's own generator: the same circuit for every training seed

    def validate(self, hidden_size: int, num_heads: int, num_layers: int) -> int:
        """The position dims this model can take (even, at most the head size); ValueError when
        the model cannot hold the circuit."""
        head_size = hidden_size // num_heads
        dims = min(self.position_dims, head_size, hidden_size // 2) // 2 * 2
        if dims < 2:
            raise ValueError(f"a structured start needs heads of at least 2 dimensions and "
                             f"hidden_size >= 4; this model has {head_size} and {hidden_size}")
        if len(self.offsets) > num_layers:
            raise ValueError(f"the circuit names {len(self.offsets)} layers; the model has "
                             f"{num_layers}")
        for layer, offsets in enumerate(self.offsets):
            if len(offsets) > num_heads:
                raise ValueError(f"layer {layer} of the circuit names {len(offsets)} heads; "
                                 f"the model has {num_heads}")
            if any(d == 0 for d in offsets):
                raise ValueError("an offset of 0 attends to the token itself: use ±1, ±2, ...")
        if hidden_size - dims < head_size:
            raise ValueError(f"the token dimensions ({hidden_size - dims}) must hold a head "
                             f"({head_size}); lower position_dims")
        return dims


def _orthonormal(rows: int, cols: int, g: torch.Generator) -> torch.Tensor:
    """A (rows, cols) matrix with orthonormal rows (rows <= cols) or columns (rows > cols)."""
    q, _ = torch.linalg.qr(torch.randn(max(rows, cols), min(rows, cols), generator=g))
    return q if rows > cols else q.T


@torch.no_grad()
def _position_power(model: RobertaForMaskedLM, dims: int, upto_layer: int,
                    g: torch.Generator) -> float:
    """Mean squared norm of the position dims at the input of layer `upto_layer`, on random
    tokens (the random word embeddings look alike to this measure, so no text is needed)."""
    config = model.config
    low = config.pad_token_id + 1
    ids = torch.randint(low, config.vocab_size, (4, config.max_sequence_length), generator=g)
    was_training = model.training
    model.eval()
    x = model.roberta.embeddings(ids)
    for layer in model.roberta.encoder.layer[:upto_layer]:
        x, _ = layer(x)
    model.train(was_training)
    return float((x[..., :dims] ** 2).sum(-1).mean())


@torch.no_grad()
def structured_init_(model: RobertaForMaskedLM, spec: StructuredInit | None = None) -> None:
    """Build the neighbour circuit into a freshly initialised model, in place (see the module
    docstring). The model keeps RoBERTa's shapes and names; only values change."""
    spec = spec or StructuredInit()
    config = model.config
    C, nh, L = config.hidden_size, config.num_attention_heads, config.num_hidden_layers
    hs = C // nh
    D = spec.validate(C, nh, L)
    P = D // 2
    g = torch.Generator().manual_seed(spec.seed)

    embeddings = model.roberta.embeddings
    embeddings.word_embeddings.weight[:, :D] = 0  # the position dims hold no token identity
    omegas = torch.rand(P, generator=g) * (math.pi - 0.3) + 0.3  # (P,)
    positions = embeddings.position_embeddings.weight  # (max_positions, C)
    t = torch.arange(positions.size(0), dtype=torch.float32)[:, None]  # (max_positions, 1)
    positions[:, :D] = 0
    positions[:, 0:D:2] = spec.amplitude * torch.cos(t * omegas)
    positions[:, 1:D:2] = spec.amplitude * torch.sin(t * omegas)
    positions[config.pad_token_id] = 0

    # Recorded in config.json (transformers keeps unknown keys), so a reader knows how the
    # model started and the trainer knows which word-embedding dims to hold with the positions.
    config.extra[STRUCTURED_INIT_KEY] = {"position_dims": D, "offsets": spec.offsets,
                                         "peak_logit": spec.peak_logit, "seed": spec.seed}

    for layer_index, offsets in enumerate(spec.offsets):
        attention = model.roberta.encoder.layer[layer_index].attention
        qkv, out = attention.self.qkv.weight, attention.output.dense.weight  # (3C, C), (C, C)
        # Query scale: the peak score c·S/sqrt(hs) equals peak_logit, S the position power here.
        power = _position_power(model, D, layer_index, g)
        c = spec.peak_logit * math.sqrt(hs) / power
        for head, delta in enumerate(offsets):
            q0, k0, v0 = head * hs, C + head * hs, 2 * C + head * hs
            qkv[q0:q0 + D] = 0
            qkv[k0:k0 + D] = 0
            for k in range(P):  # query: rotate pair k by ω_k·δ; key: the pair as it is
                cos, sin = math.cos(omegas[k] * delta), math.sin(omegas[k] * delta)
                i = 2 * k
                qkv[q0 + i, i], qkv[q0 + i, i + 1] = c * cos, -c * sin
                qkv[q0 + i + 1, i], qkv[q0 + i + 1, i + 1] = c * sin, c * cos
                qkv[k0 + i, i] = qkv[k0 + i + 1, i + 1] = 1.0
            # Value: the neighbour's token dims, projected orthonormally into the head.
            qkv[v0:v0 + hs] = 0
            qkv[v0:v0 + hs, D:] = _orthonormal(hs, C - D, g)  # (hs, C-D)
            # Output: the head written back into the token dims only, position dims untouched.
            out[:, head * hs:(head + 1) * hs] = 0
            out[D:, head * hs:(head + 1) * hs] = spec.copy_scale * _orthonormal(C - D, hs, g)


def initialise_(model: RobertaForMaskedLM, scheme: str,
                spec: StructuredInit | None = None) -> None:
    """Apply an initialisation scheme to a model just built with RoBERTa's init: "roberta"
    leaves it as it is, "structured" builds the neighbour circuit."""
    if scheme == "structured":
        structured_init_(model, spec)
    elif scheme != "roberta":
        raise ValueError(f"unknown initialisation {scheme!r}: choose one of "
                         f"{', '.join(INIT_CHOICES)}")


@torch.no_grad()
def transfer_vocabulary(model: RobertaForMaskedLM, old: RobertaTokenizer,
                        new: RobertaTokenizer) -> RobertaForMaskedLM:
    """A copy of a pretrained masked LM that reads `new`'s vocabulary, to continue pretraining
    without starting over. Every layer is copied; a token both vocabularies hold keeps its row; a
    new token starts as the mean of the rows of the pieces the old vocabulary splits it into
    (its byte-level string through the old BPE, so " umbrella" = mean(" umb", "rella")), and its
    decoder bias as the mean of theirs. The structured start's position dims stay 0, as they were
    (the mean of zeros). Continued pretraining then refines what the mean only approximates."""
    vocab_old, vocab_new = old.backend.get_vocab(), new.backend.get_vocab()
    config = RobertaConfig.from_dict({**model.config.to_dict(), "vocab_size": len(vocab_new)})
    copy = RobertaForMaskedLM(config)
    state = {k: v for k, v in model.state_dict().items()
             if k not in ("roberta.embeddings.word_embeddings.weight", "lm_head.bias",
                          "lm_head.decoder.weight", "lm_head.decoder.bias")}
    copy.load_state_dict(state, strict=False)  # everything but the vocabulary's rows
    rows_old, bias_old = model.roberta.embeddings.word_embeddings.weight, model.lm_head.bias
    rows, bias = copy.roberta.embeddings.word_embeddings.weight, copy.lm_head.bias
    bpe_old = old.backend.model
    for token, index in vocab_new.items():
        if token in vocab_old:
            pieces = [vocab_old[token]]
        else:  # a new merge: split its byte-level string with the old merges
            pieces = [t.id for t in bpe_old.tokenize(token)]
        rows[index] = rows_old[pieces].mean(0)
        bias[index] = bias_old[pieces].mean()
    return copy
