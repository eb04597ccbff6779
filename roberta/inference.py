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
class Window:
    """The part of a text the model read: every tab reads a long text the same way, a window of
    the model's length around the first <mask> (or, to classify, from the start)."""

    start: int  # first content token read (0-based, <s> and </s> not counted)
    end: int  # one past the last
    total: int  # content tokens in the whole text
    chars: tuple[int, int]  # the characters of the text those tokens cover

    @property
    def cut(self) -> bool:
        return self.end - self.start < self.total

    def notice(self) -> str | None:
        """One line saying what was left out, or None when the whole text was read."""
        if not self.cut:
            return None
        where = (f"tokens {self.start + 1:,}–{self.end:,}, around the first <mask>"
                 if self.start else f"the first {self.end:,}")
        return (f"The text is {self.total:,} tokens long and the model reads "
                f"{self.end - self.start:,} at a time: it read {where}, and the rest was left "
                f"out.")


def encode_window(tokenizer: RobertaTokenizer, text: str, max_length: int,
                  around_mask: bool = True) -> tuple[Encoding, Window]:
    """`text` encoded whole when it fits in `max_length` tokens (specials included); otherwise
    the window of that length centred on the first <mask> (`around_mask`) or at the start."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The text is empty: type a sentence.")
    # Never more tokens than UTF-8 bytes: this length keeps the whole text.
    full = tokenizer.encode(text, max_length=len(text.encode("utf-8", "replace")) + 2)
    total, room = len(full) - 2, max_length - 2
    if total <= room:
        return full, Window(0, total, total, (0, len(text)))
    start = 0
    masks = [i - 1 for i, t in enumerate(full.ids) if t == tokenizer.mask_token_id]
    if around_mask and masks:
        start = min(max(0, masks[0] - room // 2), total - room)
    keep = slice(1 + start, 1 + start + room)
    offsets = full.offsets[keep]
    encoding = Encoding(ids=[full.ids[0], *full.ids[keep], full.ids[-1]],
                        attention_mask=[1] * (room + 2),
                        tokens=[full.tokens[0], *full.tokens[keep], full.tokens[-1]],
                        offsets=[(0, 0), *offsets, (0, 0)], truncated=True)
    return encoding, Window(start, start + room, total, (offsets[0][0], offsets[-1][1]))


@dataclass
class FillMaskResult:
    text: str
    tokens: list[str]  # the tokenization of what the model read, readable
    predictions: list[MaskPrediction]  # one per <mask> the model read, left to right
    window: Window  # which part of a long text that was

    @property
    def truncated(self) -> bool:
        return self.window.cut


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
    encoding, window = encode_window(tokenizer, text, model.config.max_sequence_length)
    positions = [i for i, t in enumerate(encoding.ids) if t == tokenizer.mask_token_id]
    if not positions:  # e.g. "<mask>" written inside a word, where BPE does not keep it whole
        raise ValueError(f"The tokenizer did not read {tokenizer.mask_token} as one token: put "
                         f"it between spaces, where a word should be guessed.")
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
                          predictions, window)


def classify(model: RobertaForSequenceClassification, tokenizer: RobertaTokenizer,
             texts: list[str]) -> list[dict[str, float]]:
    """Class probabilities for each text, keyed by the config's label names. A long text is
    classified on its first window (`classification_window` says what was read)."""
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


def classification_window(model, tokenizer: RobertaTokenizer, text: str) -> Window:
    """Which part of `text` classify() and token_attributions() read: the first window."""
    return encode_window(tokenizer, text, model.config.max_sequence_length, around_mask=False)[1]


@dataclass
class AttentionResult:
    tokens: list[str]
    attentions: torch.Tensor  # (L, nh, T, T) probabilities, float32 on the CPU
    window: Window  # which part of a long text was read

    @property
    def truncated(self) -> bool:
        return self.window.cut


def attention_maps(model, tokenizer: RobertaTokenizer, text: str,
                   head_mask: torch.Tensor | None = None,
                   max_length: int | None = None) -> AttentionResult:
    """Every layer's attention probabilities for one text (any of our model classes); a long
    text is read in the window around its first <mask>, as fill-mask reads it. `max_length`
    (specials included) narrows that window below the model's length: the maps grow with
    layers × heads × tokens², so a caller can bound them."""
    length = model.config.max_sequence_length
    if max_length is not None:
        if max_length < 3:
            raise ValueError(f"max_length must leave room for one token, got {max_length}")
        length = min(length, max_length)
    encoding, window = encode_window(tokenizer, text, length)
    ids = torch.tensor([encoding.ids], device=_device(model))
    with torch.inference_mode():
        out = model(ids, head_mask=head_mask, output_attentions=True)
    attentions = torch.stack([a[0] for a in out.attentions]).float().cpu()
    return AttentionResult([tokenizer.token_display(t) for t in encoding.tokens], attentions,
                           window)


def token_attributions(model: RobertaForSequenceClassification, tokenizer: RobertaTokenizer,
                       text: str, target: int | None = None,
                       steps: int = 16) -> tuple[list[str], list[float], int]:
    """Integrated gradients of the target class's logit with respect to each token's word
    embedding, from a baseline of <pad> embeddings. Returns (tokens, scores, target); a positive
    score pushed the prediction towards `target` (default: the predicted class).

    The embedding output is swapped for the interpolated path through a forward hook (for this
    call's input tensor only), so the model needs no special input path."""
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
    batch = ids.expand(steps, -1)
    # Only this call's lookup is swapped: another request on the same model (the app serves
    # several at once) must see its own embeddings, so the hook checks which tensor it looks up.
    handle = embedding.register_forward_hook(
        lambda module, inputs, output: path if inputs[0] is batch else output)
    try:
        with torch.enable_grad():
            logits = model(batch).logits  # (steps, num_labels)
            (grads,) = torch.autograd.grad(logits[:, target].sum(), path)
    finally:
        handle.remove()
    scores = ((actual - reference)[0] * grads.mean(0)).sum(-1)  # (T,)
    return ([tokenizer.token_display(t) for t in encoding.tokens], scores.tolist(), target)
