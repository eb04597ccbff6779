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
    """The part of a text the model read: fill-mask and attention read a long text in a window of
    the model's length around its first <mask> (or from the start); to classify, the windows
    read cover the text from its start (see classify)."""

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


def encode_whole(tokenizer: RobertaTokenizer, text: str) -> Encoding:
    """`text` encoded with nothing cut, offsets included."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The text is empty: type a sentence.")
    # Never more tokens than UTF-8 bytes: this length keeps the whole text.
    return tokenizer.encode(text, max_length=len(text.encode("utf-8", "replace")) + 2)


def encode_window(tokenizer: RobertaTokenizer, text: str,
                  max_length: int) -> tuple[Encoding, Window]:
    """`text` encoded whole when it fits in `max_length` tokens (specials included); otherwise
    the window of that length centred on its first <mask> (or at the start, with none)."""
    full = encode_whole(tokenizer, text)
    total, room = len(full) - 2, max_length - 2
    if total <= room:
        return full, Window(0, total, total, (0, len(text)))
    start = 0
    masks = [i - 1 for i, t in enumerate(full.ids) if t == tokenizer.mask_token_id]
    if masks:
        start = min(max(0, masks[0] - room // 2), total - room)
    keep = slice(1 + start, 1 + start + room)
    offsets = full.offsets[keep]
    encoding = Encoding(ids=[full.ids[0], *full.ids[keep], full.ids[-1]],
                        attention_mask=[1] * (room + 2),
                        tokens=[full.tokens[0], *full.tokens[keep], full.tokens[-1]],
                        offsets=[(0, 0), *offsets, (0, 0)], truncated=True)
    return encoding, Window(start, start + room, total, (offsets[0][0], offsets[-1][1]))


def mask_word(tokenizer: RobertaTokenizer, text: str, token_index: int,
              max_length: int) -> str:
    """`text` with the word holding token `token_index` of what fill-mask reads (the window of
    `max_length` tokens; 0 is <s>) replaced by <mask>: the whole run of letters and digits
    around that token ("un|believ|able" -> "<mask>"), or the token alone where it has none
    (punctuation, an emoji)."""
    import re

    encoding, _ = encode_window(tokenizer, text, max_length)
    if not 0 <= token_index < len(encoding.ids):
        raise ValueError(f"There is no token {token_index}: the text read has "
                         f"{len(encoding.ids)} (<s> and </s> included).")
    start, end = encoding.offsets[token_index]
    if start == end and start < len(text):  # a lone space token ("Ġ") before its word
        end = start + 1
    if encoding.ids[token_index] in tokenizer.special_ids or start == end:
        raise ValueError("That is not a word of the text (<s>, </s> or <mask> itself): click "
                         "a word to hide it.")
    for word in re.finditer(r"\w+", text):
        if word.start() < end and start < word.end():
            start, end = min(start, word.start()), max(end, word.end())
    while start < end and text[start].isspace():  # a token's offsets may hold its space
        start += 1
    return text[:start] + tokenizer.mask_token + text[end:]


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
    return FillMaskResult(text, tokenizer.readable_tokens(encoding.tokens), predictions, window)


# --- classify: a long text is read whole, window by window ------------------------------------
# A classifier reads max_sequence_length tokens at a time. A longer text is cut into windows side
# by side (the last one ending where the text ends) and the windows' logits are averaged, so the
# verdict at the end of a long review counts: on IMDB's held-out reviews, half of them longer
# than one window, the embedded classifier of early December 2026 scored 86.2% reading the first
# window and 88.7% reading every window, same weights. Softmax of the mean logits is also the
# softmax of the mean log-probabilities: averaging either gives the same verdict.

MAX_CLASSIFY_WINDOWS = 32  # per text: ~6,000 words for the embedded model; IG runs per window
CLASSIFY_ROWS = 8  # windows per forward pass


def window_starts(total: int, room: int, max_windows: int = MAX_CLASSIFY_WINDOWS) -> list[int]:
    """Where each window of `room` content tokens starts in a text of `total`: side by side from
    the start, the last ending where the text ends (overlapping the one before); at most
    `max_windows`, from the start."""
    if room < 1 or max_windows < 1:
        raise ValueError(f"room and max_windows must be at least 1, got {room}, {max_windows}")
    if total <= room:
        return [0]
    starts = list(range(0, total - room + 1, room))
    if starts[-1] + room < total:
        starts.append(total - room)
    return starts[:max_windows]


def encode_windows(tokenizer: RobertaTokenizer, texts: list[str], max_length: int,
                   max_windows: int = MAX_CLASSIFY_WINDOWS,
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every window of every text as the rows of one right-padded batch (`input_ids`,
    `attention_mask`: (R, T)), and which text each row reads (R,). A text that fits is one row,
    exactly `tokenizer(texts, max_length=...)`'s."""
    rows, owner = [], []
    for index, ids in enumerate(tokenizer.encode_batch_ids(list(texts))):
        windows = window_rows(ids, max_length - 2, tokenizer.bos_token_id,
                              tokenizer.eos_token_id, max_windows)[1]
        rows += windows
        owner += [index] * len(windows)
    return padded(rows, tokenizer.pad_token_id), torch.tensor(owner)


def window_rows(ids: list[int], room: int, bos_id: int, eos_id: int,
                max_windows: int = MAX_CLASSIFY_WINDOWS) -> tuple[list[int], list[list[int]]]:
    """(window_starts, each window as `<s> … </s>` ids) for a text's content token ids."""
    starts = window_starts(len(ids), room, max_windows)
    return starts, [[bos_id, *ids[s:s + room], eos_id] for s in starts]


def padded(rows: list[list[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Token-id rows as one right-padded batch: `input_ids` and `attention_mask`, (R, T)."""
    input_ids = torch.full((len(rows), max(map(len, rows))), pad_token_id)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(rows):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention_mask[row, :len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def mean_by_text(values: torch.Tensor, owner: torch.Tensor, count: int) -> torch.Tensor:
    """(R, K) rows -> (count, K): the mean of each text's rows."""
    sums = torch.zeros(count, values.size(1), dtype=values.dtype, device=values.device)
    sums.index_add_(0, owner.to(values.device), values)
    return sums / torch.bincount(owner, minlength=count).to(sums).unsqueeze(1)


def classify(model: RobertaForSequenceClassification, tokenizer: RobertaTokenizer,
             texts: list[str]) -> list[dict[str, float]]:
    """Class probabilities for each text, keyed by the config's label names: the softmax of the
    mean logits of the text's windows (`classification_reading` says which were read)."""
    if isinstance(texts, str):
        texts = [texts]
    for text in texts:
        encode_checked(tokenizer, text, model.config.max_sequence_length)
    batch, owner = encode_windows(tokenizer, texts, model.config.max_sequence_length)
    logits = window_logits(model, batch)
    names = model.config.id2label
    return [{names[i]: p for i, p in enumerate(row)}
            for row in mean_by_text(logits, owner, len(texts)).softmax(-1).tolist()]


def window_logits(model: RobertaForSequenceClassification,
                  batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(R, K) float32 logits of a padded batch of windows (`padded`'s), as classify() reads
    them: CLASSIFY_ROWS rows per forward pass, so a long text on a large model fits."""
    device = _device(model)
    with torch.inference_mode():
        return torch.cat([model(ids.to(device), attention_mask=mask.to(device)).logits.float()
                          for ids, mask in zip(batch["input_ids"].split(CLASSIFY_ROWS),
                                               batch["attention_mask"].split(CLASSIFY_ROWS),
                                               strict=True)])


@dataclass
class ClassificationReading:
    """How classify() and token_attributions() read one text."""

    windows: int  # windows of `width` content tokens, averaged
    width: int
    read: Window  # the tokens they cover: all of them unless the text passed the window cap

    def notice(self) -> str | None:
        """One line on how a long text was read, or None when it fit in one window."""
        if self.windows == 1:
            return None
        what = f"the first {self.read.end:,} tokens" if self.read.cut else "all of it"
        rest = ", and the rest was left out." if self.read.cut else "."
        return (f"The text is {self.read.total:,} tokens long and the model reads {self.width:,} "
                f"at a time: it read {what} in {self.windows} windows and averaged their "
                f"verdicts{rest}")


def classification_reading(model, tokenizer: RobertaTokenizer, text: str) -> ClassificationReading:
    """Which windows of `text` classify() and token_attributions() read."""
    encoding = encode_whole(tokenizer, text)
    room, total = model.config.max_sequence_length - 2, len(encoding.ids) - 2
    starts = window_starts(total, room)
    end = min(total, starts[-1] + room)
    chars = (0, encoding.offsets[end][1] if end < total else len(text))
    return ClassificationReading(len(starts), min(room, total), Window(0, end, total, chars))


@dataclass
class AttentionResult:
    tokens: list[str]
    attentions: torch.Tensor  # (L, nh, T, T) probabilities, float32 on the CPU
    window: Window  # which part of a long text was read

    @property
    def truncated(self) -> bool:
        return self.window.cut


def window_length(config, max_length: int | None) -> int:
    """The model's length (specials included), narrowed to `max_length` where given."""
    if max_length is None:
        return config.max_sequence_length
    if max_length < 3:
        raise ValueError(f"max_length must leave room for one token, got {max_length}")
    return min(config.max_sequence_length, max_length)


def attention_maps(model, tokenizer: RobertaTokenizer, text: str,
                   head_mask: torch.Tensor | None = None,
                   max_length: int | None = None) -> AttentionResult:
    """Every layer's attention probabilities for one text (any of our model classes); a long
    text is read in the window around its first <mask>, as fill-mask reads it. `max_length`
    (specials included) narrows that window below the model's length: the maps grow with
    layers × heads × tokens², so a caller can bound them."""
    encoding, window = encode_window(tokenizer, text, window_length(model.config, max_length))
    ids = torch.tensor([encoding.ids], device=_device(model))
    with torch.inference_mode():
        out = model(ids, head_mask=head_mask, output_attentions=True)
    attentions = torch.stack([a[0] for a in out.attentions]).float().cpu()
    return AttentionResult(tokenizer.readable_tokens(encoding.tokens), attentions, window)


def token_attributions(model: RobertaForSequenceClassification, tokenizer: RobertaTokenizer,
                       text: str, target: int | None = None,
                       steps: int = 16) -> tuple[list[str], list[float], int]:
    """Integrated gradients of the target class's logit (the mean over the text's windows, as
    classify() reads it) with respect to each token's word embedding, from a baseline of <pad>
    embeddings. Returns (tokens read, scores, target); a positive score pushed the prediction
    towards `target` (default: the predicted class). The scores add up to the change of that
    logit from the baseline: each window's share is divided by the number of windows, and <s>
    and </s> gather every window's."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    encoding = encode_whole(tokenizer, text)
    room, total = model.config.max_sequence_length - 2, len(encoding.ids) - 2
    starts, rows = window_rows(encoding.ids[1:-1], room, encoding.ids[0], encoding.ids[-1])
    device = _device(model)
    windows = torch.tensor(rows, device=device)  # (W, T): no padding, all full but a lone one
    if target is None:
        with torch.no_grad():
            target = int(model(windows).logits.mean(0).argmax())
    read = min(total, starts[-1] + room)
    scores = torch.zeros(read + 2, device=device)
    for start, ids in zip(starts, windows, strict=True):
        share = _integrated_gradients(model, ids, tokenizer.pad_token_id, target, steps)
        scores[0] += share[0]
        scores[-1] += share[-1]
        scores[1 + start:1 + start + len(ids) - 2] += share[1:-1]
    tokens = [*encoding.tokens[:read + 1], encoding.tokens[-1]]
    return tokenizer.readable_tokens(tokens), (scores / len(starts)).tolist(), target


def _integrated_gradients(model: RobertaForSequenceClassification, ids: torch.Tensor,
                          pad_token_id: int, target: int, steps: int) -> torch.Tensor:
    """(T,) attributions of one window's `target` logit to its tokens (Sundararajan et al.
    2017, midpoint rule). The embedding output is swapped for the interpolated path through a
    forward hook, so the model needs no special input path."""
    embedding = model.roberta.embeddings.word_embeddings
    with torch.no_grad():
        actual = embedding(ids[None])  # (1, T, C)
        reference = embedding(torch.full_like(ids[None], pad_token_id))
    alphas = (torch.arange(steps, device=ids.device, dtype=actual.dtype) + 0.5) / steps
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
    return ((actual - reference)[0] * grads.mean(0)).sum(-1)
