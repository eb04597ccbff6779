"""Byte-level BPE tokenizer with RoBERTa's special tokens.

Why this module exists: the model, the data pipeline and the Gradio lab all need the same
tokenizer, and models trained here should be loadable by the wider ecosystem. So the tokenizer
is RoBERTa's (GPT-2 style byte-level BPE, ``<s> ... </s>`` framing, ``<mask>`` that swallows the
space before it), built on the Rust `tokenizers` package for speed, and saved in exactly the
files `transformers.AutoTokenizer.from_pretrained` expects. It also loads roberta-base's own
``vocab.json`` + ``merges.txt``.

Conventions (same as roberta-base):
- no prefix space is added: "Hello" and " Hello" are different tokens ("Hello" vs "ĠHello");
- every byte has a token, so ``<unk>`` never appears for text;
- offsets are character offsets into the original string; special tokens get ``(0, 0)``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from roberta.token_text import readable_bytes, readable_pieces

__all__ = ["Encoding", "RobertaTokenizer", "TokenizerError"]

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
# Order matters: training assigns ids 0..4 in this order.
SPECIAL_TOKENS: tuple[str, ...] = (BOS, PAD, EOS, UNK, MASK)
N_BYTES = 256
DEFAULT_MAX_LENGTH = 512
# transformers writes ~1e30 as model_max_length when a tokenizer has "no limit".
_UNBOUNDED = 10**9

TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_MAP_FILE = "special_tokens_map.json"


class TokenizerError(ValueError):
    """Bad input to the tokenizer, or tokenizer files that are missing or corrupt."""


@dataclass
class Encoding:
    """One encoded text, special tokens included."""

    ids: list[int]
    attention_mask: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]  # character spans into the text; (0, 0) for specials
    truncated: bool  # True when the text did not fit and was cut (``</s>`` is kept)

    def __len__(self) -> int:
        return len(self.ids)


def _added_token(content: str) -> AddedToken:
    # <mask> absorbs the whitespace on its left, so "is <mask>." gives "Ġis", "<mask>", ".".
    return AddedToken(
        content,
        lstrip=content == MASK,
        rstrip=False,
        single_word=False,
        normalized=False,
        special=True,
    )


def _added_token_json(content: str) -> dict[str, Any]:
    return {
        "content": content,
        "lstrip": content == MASK,
        "rstrip": False,
        "normalized": False,
        "single_word": False,
        "special": True,
    }


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Map each character of the byte-level alphabet back to its byte.

    Byte-level BPE shows every byte as one printable character: bytes that are already
    printable (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves and the other 68
    (space, control bytes, ...) are shifted, in order, to code points 256, 257, ...
    That is why a space shows as ``Ġ`` (256 + 32) and a newline as ``Ċ`` (256 + 10).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    kept = set(printable)
    table = {chr(b): b for b in printable}
    shifted = (b for b in range(N_BYTES) if b not in kept)
    for n, b in enumerate(shifted):
        table[chr(N_BYTES + n)] = b
    return table


def _read_json(path: Path, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{what} {path} is not valid JSON ({e})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise TokenizerError(f"cannot read {what} {path}: {e}") from e
    except RecursionError:
        raise TokenizerError(f"{what} {path} is nested too deeply to be a tokenizer "
                             f"file") from None


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenizerError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise TokenizerError(f"{name} must be >= {minimum}, got {value}")
    return value


def _valid_unicode(text: str) -> str:
    """`text` with any lone surrogate (pasted from a broken source; no UTF-8 can hold it, and the
    Rust tokenizer refuses the whole text) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # through UTF-16, where a lone surrogate decodes as U+FFFD
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class RobertaTokenizer:
    """RoBERTa byte-level BPE tokenizer wrapping a `tokenizers.Tokenizer`.

    Build one with :meth:`train` or :meth:`from_pretrained`. The backend always truncates to
    ``model_max_length`` (specials included); :meth:`encode` and :meth:`__call__` accept a
    smaller or larger ``max_length`` per call, and :meth:`encode_batch_ids` never truncates.
    """

    def __init__(self, backend: Tokenizer, model_max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self._tok = backend
        self._max_len = _check_int("model_max_length", model_max_length, 2)
        missing = [t for t in SPECIAL_TOKENS if backend.token_to_id(t) is None]
        if missing:
            raise TokenizerError(f"tokenizer lacks RoBERTa special token(s) {missing}")
        self._ids = {t: int(backend.token_to_id(t)) for t in SPECIAL_TOKENS}
        added = backend.get_added_tokens_decoder()
        self._special_ids = frozenset(
            set(self._ids.values()) | {i for i, t in added.items() if t.special}
        )
        self._word_starts: list[int] | None = None
        # Truncation is state on the Rust tokenizer; per-call limits change it under this lock.
        self._lock = threading.Lock()
        self._tok.no_padding()
        self._tok.enable_truncation(self._max_len)

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _set_pipeline(tok: Tokenizer, bos_id: int, eos_id: int) -> None:
        """Give a bare BPE model roberta-base's normalizer/pre-tokenizer/decoder/framing."""
        tok.normalizer = None
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.RobertaProcessing(
            (EOS, eos_id), (BOS, bos_id), trim_offsets=True, add_prefix_space=False
        )

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int = 8192,
        min_frequency: int = 2,
        model_max_length: int = DEFAULT_MAX_LENGTH,
    ) -> RobertaTokenizer:
        """Train a byte-level BPE on ``texts``; specials get ids 0..4 (<s> <pad> </s> <unk> <mask>).

        ``vocab_size`` counts the 256 byte tokens, the 5 specials and the merges; the result can
        be smaller when the texts run out of pairs seen ``min_frequency`` times.
        """
        floor = N_BYTES + len(SPECIAL_TOKENS)
        _check_int("vocab_size", vocab_size, floor + 1)
        _check_int("min_frequency", min_frequency, 1)
        _check_int("model_max_length", model_max_length, 2)
        if isinstance(texts, (str, bytes)):
            raise TokenizerError("texts must be an iterable of strings, not a single string")
        try:
            iterator = iter(texts)
        except TypeError as e:
            kind = type(texts).__name__
            raise TokenizerError(f"texts must be an iterable of str, got {kind}") from e

        problems: list[str] = []
        seen = [0]

        def checked() -> Iterator[str]:
            # Stop cleanly on bad items: an exception inside the Rust trainer loses its message.
            for i, text in enumerate(iterator):
                if not isinstance(text, str):
                    problems.append(f"texts[{i}] is {type(text).__name__}, expected str")
                    return
                seen[0] += 1
                yield text

        tok = Tokenizer(models.BPE())
        cls._set_pipeline(tok, bos_id=0, eos_id=2)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[_added_token(t) for t in SPECIAL_TOKENS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(checked(), trainer=trainer)
        if problems:
            raise TokenizerError(problems[0])
        if seen[0] == 0:
            raise TokenizerError("texts is empty: nothing to train on")
        return cls(tok, model_max_length=model_max_length)

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike[str], model_max_length: int | None = None
    ) -> RobertaTokenizer:
        """Load a directory with ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``.

        ``model_max_length`` comes from the argument, else ``tokenizer_config.json``, else 512.
        """
        root = Path(path)
        if not root.exists():
            raise TokenizerError(f"tokenizer directory not found: {root}")
        if not root.is_dir():
            raise TokenizerError(f"expected a tokenizer directory, got a file: {root}")

        if model_max_length is None:
            model_max_length = DEFAULT_MAX_LENGTH
            if (root / CONFIG_FILE).is_file():
                config = _read_json(root / CONFIG_FILE, CONFIG_FILE)
                if not isinstance(config, dict):
                    raise TokenizerError(f"{root / CONFIG_FILE} must hold a JSON object")
                value = config.get("model_max_length")
                if isinstance(value, (int, float)) and 2 <= value < _UNBOUNDED:
                    model_max_length = int(value)

        if (root / TOKENIZER_FILE).is_file():
            tok = cls._load_tokenizer_json(root / TOKENIZER_FILE)
        elif (root / VOCAB_FILE).is_file() and (root / MERGES_FILE).is_file():
            tok = cls._load_vocab_merges(root / VOCAB_FILE, root / MERGES_FILE)
        else:
            present = sorted(p.name for p in root.iterdir())
            raise TokenizerError(
                f"no tokenizer files in {root}: need {TOKENIZER_FILE}, or {VOCAB_FILE} and "
                f"{MERGES_FILE} (found: {', '.join(present) or 'nothing'})"
            )
        return cls(tok, model_max_length=model_max_length)

    @staticmethod
    def _load_tokenizer_json(path: Path) -> Tokenizer:
        data = _read_json(path, TOKENIZER_FILE)
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise TokenizerError(f"{path} is not a tokenizers file (no 'model' object)")
        if data["model"].get("type", "BPE") != "BPE":
            raise TokenizerError(f"{path} holds a {data['model'].get('type')} model, expected BPE")
        try:
            return Tokenizer.from_str(json.dumps(data))
        except Exception as e:  # the Rust side raises a plain Exception
            raise TokenizerError(f"{path} is corrupt: {e}") from e

    @classmethod
    def _load_vocab_merges(cls, vocab_path: Path, merges_path: Path) -> Tokenizer:
        vocab = _read_json(vocab_path, VOCAB_FILE)
        if not isinstance(vocab, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()
        ):
            raise TokenizerError(f"{vocab_path} must map token strings to integer ids")
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise TokenizerError(f"{vocab_path} lacks RoBERTa special token(s) {missing}")
        try:
            _, merges = models.BPE.read_file(str(vocab_path), str(merges_path))
            tok = Tokenizer(models.BPE(vocab, merges))
        except Exception as e:
            raise TokenizerError(f"cannot build BPE from {vocab_path} + {merges_path}: {e}") from e
        tok.add_special_tokens([_added_token(t) for t in SPECIAL_TOKENS])
        cls._set_pipeline(tok, bos_id=vocab[BOS], eos_id=vocab[EOS])
        return tok

    # ------------------------------------------------------------------ saving

    def save_pretrained(self, path: str | os.PathLike[str]) -> list[str]:
        """Write tokenizer.json, vocab.json, merges.txt, tokenizer_config.json and
        special_tokens_map.json, which `transformers.AutoTokenizer` loads as-is.
        Returns the written paths."""
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise TokenizerError(f"cannot save into {root}: it is a file")
        root.mkdir(parents=True, exist_ok=True)

        # Like roberta-base's tokenizer.json: no truncation/padding baked in (the limit lives in
        # tokenizer_config.json), so other loaders decide per call.
        data = json.loads(self._tok.to_str())
        data["truncation"] = None
        data["padding"] = None
        (root / TOKENIZER_FILE).write_text(
            json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8"
        )

        self._tok.model.save(str(root))  # vocab.json + merges.txt ("#version: 0.2" header)
        # Rewrite vocab.json from the full vocabulary so added specials are always in it.
        full = self._tok.get_vocab(with_added_tokens=True)
        vocab = dict(sorted(full.items(), key=lambda kv: kv[1]))
        (root / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")

        named = {
            "bos_token": BOS,
            "eos_token": EOS,
            "sep_token": EOS,
            "cls_token": BOS,
            "unk_token": UNK,
            "pad_token": PAD,
        }
        mask = {"__type": "AddedToken", **_added_token_json(MASK)}
        config = {
            "tokenizer_class": "RobertaTokenizer",
            "model_max_length": self._max_len,
            "add_prefix_space": False,
            "trim_offsets": True,
            "errors": "replace",
            "clean_up_tokenization_spaces": False,
            **named,
            "mask_token": mask,
            "added_tokens_decoder": {
                str(self._ids[t]): _added_token_json(t)
                for t in sorted(SPECIAL_TOKENS, key=self._ids.__getitem__)
            },
        }
        special_map = {**named, "mask_token": _added_token_json(MASK)}
        for name, obj in ((CONFIG_FILE, config), (SPECIAL_MAP_FILE, special_map)):
            (root / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
        names = (TOKENIZER_FILE, VOCAB_FILE, MERGES_FILE, CONFIG_FILE, SPECIAL_MAP_FILE)
        return [str(root / n) for n in names]

    # ------------------------------------------------------------------ encoding

    def _limit(self, max_length: int | None) -> int:
        if max_length is None:
            return self._max_len
        return _check_int("max_length", max_length, 2)

    def _encode_texts(self, texts: list[str], max_length: int | None) -> list[Any]:
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TokenizerError(f"texts[{i}] is {type(t).__name__}, expected str")
        texts = [_valid_unicode(t) for t in texts]
        limit = self._limit(max_length)
        with self._lock:
            if limit == self._max_len:
                return self._tok.encode_batch(texts)
            self._tok.enable_truncation(limit)
            try:
                return self._tok.encode_batch(texts)
            finally:
                self._tok.enable_truncation(self._max_len)

    def encode(self, text: str, max_length: int | None = None) -> Encoding:
        """Encode one text as ``<s> ... </s>``, truncated to ``max_length`` (default
        ``model_max_length``) tokens in all."""
        if not isinstance(text, str):
            raise TokenizerError(f"text must be str, got {type(text).__name__}")
        enc = self._encode_texts([text], max_length)[0]
        return Encoding(
            ids=list(enc.ids),
            attention_mask=list(enc.attention_mask),
            # An lstrip'ed <mask> comes back as " <mask>" (the matched text): use the vocab form.
            tokens=[
                self._tok.id_to_token(i) if i in self._special_ids else t
                for i, t in zip(enc.ids, enc.tokens, strict=True)
            ],
            offsets=[tuple(o) for o in enc.offsets],
            truncated=len(enc.overflowing) > 0,
        )

    def __call__(
        self, texts: list[str] | str, max_length: int | None = None, padding: bool = True
    ) -> dict[str, torch.Tensor]:
        """Batch-encode to ``input_ids`` and ``attention_mask`` LongTensors of shape (B, T),
        right-padded with ``<pad>`` to the longest text. With ``padding=False`` all texts must
        encode to the same length."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or len(texts) == 0:
            raise TokenizerError("texts must be a str or a non-empty list of str")
        encs = self._encode_texts(list(texts), max_length)
        width = max(len(e.ids) for e in encs)
        if not padding and any(len(e.ids) != width for e in encs):
            raise TokenizerError("texts encode to different lengths; use padding=True")
        ids = torch.full((len(encs), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(encs), width), dtype=torch.long)
        for row, e in enumerate(encs):
            ids[row, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
            mask[row, : len(e.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def encode_batch_ids(
        self, texts: list[str], add_special_tokens: bool = False
    ) -> list[list[int]]:
        """Token ids for many texts at once (parallel, no offsets), never truncated: meant for
        tokenizing a whole corpus before packing it into fixed-length blocks."""
        if isinstance(texts, str):
            raise TokenizerError("texts must be a list of str, not a single str")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TokenizerError(f"texts[{i}] is {type(t).__name__}, expected str")
        texts = [_valid_unicode(t) for t in texts]
        with self._lock:
            self._tok.no_truncation()
            try:
                encs = self._tok.encode_batch_fast(texts, add_special_tokens=add_special_tokens)
            finally:
                self._tok.enable_truncation(self._max_len)
        return [e.ids for e in encs]

    # ------------------------------------------------------------------ ids <-> text

    def _as_id_list(self, ids: Any) -> list[int]:
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        elif isinstance(ids, int):
            ids = [ids]
        out = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.vocab_size:
                raise TokenizerError(f"invalid token id {i!r} (vocab size {self.vocab_size})")
            out.append(i)
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Turn ids back into text (byte-level, so it is exact for text without specials)."""
        return self._tok.decode(self._as_id_list(ids), skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids: Sequence[int] | torch.Tensor | int) -> list[str]:
        """Raw byte-level token strings ("Ġthe"); see :meth:`token_display` for readable ones."""
        return [self._tok.id_to_token(i) for i in self._as_id_list(ids)]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Token string(s) to id(s); unknown tokens map to ``<unk>``. A str gives an int."""
        if isinstance(tokens, str):
            found = self._tok.token_to_id(tokens)
            return self.unk_token_id if found is None else found
        return [self.convert_tokens_to_ids(t) for t in tokens]  # type: ignore[misc]

    def token_display(self, token: str) -> str:
        """Render one byte-level token for humans by decoding its bytes: "Ġthe" -> " the",
        "Ċ" -> "\\n", "Ã©" -> "é". A byte that is only part of a UTF-8 character shows as
        "⟨byte c3⟩". Specials and non byte-level strings come back unchanged. For a sequence,
        :meth:`readable_tokens` shows characters split over several tokens whole."""
        piece = self._token_bytes(token)
        return token if isinstance(piece, str) else readable_bytes(piece)

    def readable_tokens(self, tokens: Sequence[str]) -> list[str]:
        """One readable label per token of a sequence (see roberta.token_text): tokens that
        share a character show it whole with their place in it ("🍕 (1/3)"), a stray byte is
        marked ("⟨byte e5⟩"), specials stay as they are."""
        return readable_pieces([self._token_bytes(t) for t in tokens])

    def _token_bytes(self, token: str) -> bytes | str:
        """A byte-level token's bytes; a special or non byte-level string as it is."""
        table = _byte_decoder()
        if token in self._ids or any(c not in table for c in token):
            return token
        return bytes(table[c] for c in token)

    def word_start_mask(self) -> torch.BoolTensor:
        """Bool (vocab_size,): True where a token starts a word, for whole-word masking.

        Definition (fairseq's for GPT-2 BPE): a token starts a word iff its string starts with
        "Ġ" (a leading space) or it is a special token. A word is a word-start token followed by
        its continuation tokens (False entries). Consequences worth knowing: the first word of a
        text has no leading space, so it continues the ``<s>`` before it (callers should also start
        a word at the first token after a special), and punctuation without a space ("." in
        "dog.") belongs to the word before it.
        """
        if self._word_starts is None:
            starts = [
                i
                for t, i in self._tok.get_vocab(with_added_tokens=True).items()
                if i < self.vocab_size and (t.startswith("Ġ") or i in self._special_ids)
            ]
            self._word_starts = starts
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        mask[self._word_starts] = True
        return mask  # type: ignore[return-value]

    # ------------------------------------------------------------------ properties

    @property
    def backend(self) -> Tokenizer:
        return self._tok

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials included."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def model_max_length(self) -> int:
        return self._max_len

    @property
    def pad_token_id(self) -> int:
        return self._ids[PAD]

    @property
    def bos_token_id(self) -> int:
        return self._ids[BOS]

    @property
    def eos_token_id(self) -> int:
        return self._ids[EOS]

    @property
    def unk_token_id(self) -> int:
        return self._ids[UNK]

    @property
    def mask_token_id(self) -> int:
        return self._ids[MASK]

    @property
    def mask_token(self) -> str:
        return MASK

    @property
    def special_ids(self) -> frozenset[int]:
        return self._special_ids

    def __repr__(self) -> str:
        return (
            f"RobertaTokenizer(vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length})"
        )
