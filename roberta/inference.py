"""What a trained model is asked: fill masks, classify, attend, explain.

Every function takes a model and a tokenizer, validates the text with a plain-sentence
ValueError, and runs in inference mode on the model's device. The UI and the command line call
these; they never call the model directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import RobertaForMaskedLM, RobertaForSequenceClassification
from .tokenizer import Encoding, RobertaTokenizer


@dataclass
class Candidate:
    token: str  # as a person reads it ("Ġcat" -> " cat")
    token_id: int
    probability: float


@dataclass
class MaskPrediction:
    position: int  # index in `tokens`
    candidates: list[Candidate]


@dataclass
class FillMaskResult:
    text: str
    tokens: list[str]  # the tokenization, readable
    predictions: list[MaskPrediction]  # one per <mask>, left to right
    truncated: bool  # the text was longer than the model takes and was cut


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def encode_checked(tokenizer: RobertaTokenizer, text: str, max_length: int) -> Encoding:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The text is empty: type a sentence.")
    return tokenizer.encode(text, max_length=max_length)


def fill_mask(model: RobertaForMaskedLM, tokenizer: RobertaTokenizer, text: str, top_k: int = 5,
              head_mask: torch.Tensor | None = None) -> FillMaskResult:
    """Top-k guesses for every <mask> in `text`."""
    if not 1 <= top_k <= tokenizer.vocab_size:
        raise ValueError(f"top_k must be between 1 and {tokenizer.vocab_size}, got {top_k}")
    if tokenizer.mask_token not in (text or ""):
        raise ValueError(f"The text has no {tokenizer.mask_token}: put {tokenizer.mask_token} "
                         f"where a word should be guessed.")
    encoding = encode_checked(tokenizer, text, model.config.max_sequence_length)
    positions = [i for i, t in enumerate(encoding.ids) if t == tokenizer.mask_token_id]
    if not positions:
        raise ValueError(f"The text is longer than the model's {model.config.max_sequence_length}"
                         f" tokens and every {tokenizer.mask_token} fell in the part cut off.")
    ids = torch.tensor([encoding.ids], device=_device(model))
    with torch.inference_mode():  # the LM head runs at the <mask> positions only
        logits = model(ids, head_mask=head_mask, predict=ids == tokenizer.mask_token_id)
        logits = logits.logits.float()  # (M, V), in the order of `positions`
    probs = logits.softmax(-1)
    top = probs.topk(top_k, dim=-1)
    predictions = []
    for position, values, indices in zip(positions, top.values.tolist(), top.indices.tolist(),
                                         strict=True):
        tokens = tokenizer.convert_ids_to_tokens(indices)
        predictions.append(MaskPrediction(position, [
            Candidate(tokenizer.token_display(t), i, p)
            for t, i, p in zip(tokens, indices, values, strict=True)]))
    return FillMaskResult(text, [tokenizer.token_display(t) for t in encoding.tokens],
                          predictions, encoding.truncated)


def classify(model: RobertaForSequenceClassification, tokenizer: RobertaTokenizer,
             texts: list[str]) -> list[dict[str, float]]:
    """Class probabilities for each text, keyed by the config's label names."""
    if isinstance(texts, str):
        texts = [texts]
    for text in texts:
        encode_checked(tokenizer, text, model.config.max_sequence_length)
    batch = tokenizer(texts, max_length=model.config.max_sequence_length)
    device = _device(model)
    with torch.inference_mode():
        logits = model(batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits.float()
    names = model.config.id2label
    return [{names[i]: p for i, p in enumerate(row)} for row in logits.softmax(-1).tolist()]


@dataclass
class AttentionResult:
    tokens: list[str]
    attentions: torch.Tensor  # (L, nh, T, T) probabilities, float32 on the CPU
    truncated: bool


def attention_maps(model, tokenizer: RobertaTokenizer, text: str,
                   head_mask: torch.Tensor | None = None) -> AttentionResult:
    """Every layer's attention probabilities for one text (any of our model classes)."""
    encoding = encode_checked(tokenizer, text, model.config.max_sequence_length)
    ids = torch.tensor([encoding.ids], device=_device(model))
    with torch.inference_mode():
        out = model(ids, head_mask=head_mask, output_attentions=True)
    attentions = torch.stack([a[0] for a in out.attentions]).float().cpu()
    return AttentionResult([tokenizer.token_display(t) for t in encoding.tokens], attentions,
                           encoding.truncated)


def token_attributions(model: RobertaForSequenceClassification, tokenizer: RobertaTokenizer,
                       text: str, target: int | None = None,
                       steps: int = 16) -> tuple[list[str], list[float], int]:
    """Integrated gradients of the target class's logit with respect to each token's word
    embedding, from a baseline of <pad> embeddings. Returns (tokens, scores, target); a positive
    score pushed the prediction towards `target` (default: the predicted class).

    The embedding output is swapped for the interpolated path through a forward hook, so the
    model needs no special input path."""
    encoding = encode_checked(tokenizer, text, model.config.max_sequence_length)
    if steps < 1:
        raise ValueError("steps must be at least 1")
    device = _device(model)
    ids = torch.tensor([encoding.ids], device=device)
    embedding = model.roberta.embeddings.word_embeddings
    with torch.no_grad():
        actual = embedding(ids)  # (1, T, C)
        reference = embedding(torch.full_like(ids, tokenizer.pad_token_id))
        if target is None:
            target = int(model(ids).logits.argmax(-1))
    alphas = (torch.arange(steps, device=device, dtype=actual.dtype) + 0.5) / steps  # midpoints
    path = (reference + alphas.view(-1, 1, 1) * (actual - reference)).requires_grad_(True)
    handle = embedding.register_forward_hook(lambda module, inputs, output: path)
    try:
        with torch.enable_grad():
            logits = model(ids.expand(steps, -1)).logits  # (steps, num_labels)
            (grads,) = torch.autograd.grad(logits[:, target].sum(), path)
    finally:
        handle.remove()
    scores = ((actual - reference)[0] * grads.mean(0)).sum(-1)  # (T,)
    return ([tokenizer.token_display(t) for t in encoding.tokens], scores.tolist(), target)
