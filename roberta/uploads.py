"""Text a person brings: files, folders of files, pasted text and labelled CSV files.

Every problem a user can cause is a :class:`DataError` with a sentence they can act on. A *file*
is a stream of documents separated by blank lines (one or more empty lines), because that is how
people paste and save prose; a *folder* holds one document per file. Both can be switched with
``split_paragraphs``.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

from .data import ClassificationData, DataError

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
