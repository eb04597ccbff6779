"""The cross-domain sentiment protocol (roberta.sentiment_domains, roberta.sentiment_protocol):
splits never share a text, TF-IDF and the model train on the same rows, leaving a domain out
leaves it out, and a bad source stops everything before training with one plain message.

The core tests run on small synthetic domains. The last ones read the real VADER sdist (fetched
once, ≈2.5 MB, cached in $ROBERTA_LAB_DATA or ~/.cache/roberta-lab, like tests/test_wheels.py's
wheels); on a machine with no network and no cached copy they fail with the fetch's message."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import random
import re
import tarfile

import pytest

from roberta import sentiment_domains as domains
from roberta import sentiment_protocol as protocol
from roberta import wheels
from roberta.data import DataError
from roberta.sentiment_domains import NEGATIVE, NEUTRAL, POSITIVE, make_domain, normalise

GOOD = ["good", "great", "lovely", "superb", "fine", "pleasant"]
BAD = ["bad", "awful", "poor", "dreadful", "broken", "rude"]
NOUNS = {"films": ["plot", "cast", "ending", "score"], "pills": ["dose", "tablet", "pill"],
         "tweets": ["flight", "phone", "day", "bus"], "news": ["mayor", "budget", "city"],
         "gadgets": ["battery", "screen", "camera"]}


def synthetic_domain(name: str, n_groups: int = 30, per_group: int = 3, test_only: bool = False,
                     seed: int = 0):
    """`n_groups` 'reviews' of `per_group` sentences each; every fifth sentence neutral."""
    rng = random.Random(f"{name}{seed}")
    rows = []
    for group in range(n_groups):
        for sentence in range(per_group):
            label = NEUTRAL if sentence == 0 and group % 5 == 0 else rng.choice([NEGATIVE,
                                                                                 POSITIVE])
            word = {NEGATIVE: rng.choice(BAD), POSITIVE: rng.choice(GOOD),
                    NEUTRAL: "ordinary"}[label]
            text = f"The {rng.choice(NOUNS[name])} of {name} {group}-{sentence} was {word}."
            rows.append((text, label, str(group), None))
    return make_domain(name, name.title(), rows, test_only=test_only, source="synthetic",
                       label_rule="synthetic")


def synthetic_loaders(**test_only):
    return {name: (lambda name=name: synthetic_domain(name, test_only=test_only.get(name, False)))
            for name in NOUNS}


@pytest.fixture
def splits():
    return protocol.split_domains(domains.load_domains(
        loaders=synthetic_loaders(gadgets=True)), test_fraction=0.25, seed=3)


# --- domains -----------------------------------------------------------------------------------

def test_the_label_rule_follows_the_human_mean():
    assert domains.label_from_mean(1.0) == POSITIVE and domains.label_from_mean(3.2) == POSITIVE
    assert domains.label_from_mean(-1.0) == NEGATIVE
    assert domains.label_from_mean(0.25) == NEUTRAL and domains.label_from_mean(-0.1) == NEUTRAL
    assert domains.label_from_mean(0.6) is None and domains.label_from_mean(-0.99) is None


@pytest.mark.parametrize("text", ["That's terribly SAD :(", "  café — 10/10!  ", "İstanbul",
                                  "ﬁne", "\u212a", "x\u0307y", "\U0001F600 ok\tthen", "!!", ""])
def test_the_key_is_lower_case_letters_and_digits_single_spaced(text):
    """normalise works on bytes for speed: the same key as the plain str definition, every
    other character (accents, ligatures, emoji) a separator."""
    assert normalise(text) == re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


def test_copies_up_to_case_and_punctuation_are_one_text_and_disagreeing_ones_go():
    rows = [("Great player.", 1, "1", None), ("great player!!", 1, "2", None),
            ("So-so.", 1, "3", None), ("so so", 0, "4", None), ("!", 0, "5", None),
            ("It broke.", 0, "6", None)]
    domain = make_domain("d", "D", rows, test_only=False, source="", label_rule="")
    assert domain.texts == ("Great player.", "It broke.")
    assert domain.labels == (1, 0) and domain.groups == ("d:1", "d:6")


def test_a_text_two_domains_share_stays_only_in_the_first():
    first = make_domain("a", "A", [("Excellent.", 1, "1", None), ("Fine film.", 1, "2", None)],
                        test_only=True, source="", label_rule="")
    second = make_domain("b", "B", [("excellent", 1, "1", None), ("Awful pill.", 0, "2", None)],
                         test_only=False, source="", label_rule="")
    assert domains.overlap_counts({"a": first.texts, "b": second.texts}) == {("a", "b"): 1}
    kept = domains.without_shared_texts([first, second])
    assert kept[0].texts == first.texts and kept[1].texts == ("Awful pill.",)


def test_test_only_domains_are_read_first_so_they_never_lose_a_text():
    order = list(domains.DOMAIN_ORDER)
    assert order.index("products") < order.index("imdb") and order.index("movies") < \
        order.index("drugs") and order.index("foods") < order.index("nyt")


def test_snippets_cut_from_a_longer_text_are_found():
    documents = ["I bought it last week. It doesn't get any better than this, honestly!"]
    snippets = ["It doesn't get any better than this.", "Never get any better than this one",
                "better than this"]  # the last is too short to count
    assert domains.contained_snippets(snippets, documents, min_words=5) == \
        ["it doesn t get any better than this"]


# --- splits -------------------------------------------------------------------------------------

def test_no_text_is_on_a_training_side_and_a_test_side(splits):
    trained = {normalise(t) for s in splits for t in s.train_texts}
    tested = {normalise(t) for s in splits for t in s.test_texts + s.neutral_texts}
    assert trained and tested and not trained & tested


def test_the_sentences_of_one_review_stay_on_one_side():
    domain = synthetic_domain("news", n_groups=40, per_group=4)
    split = protocol.split_domain(domain, test_fraction=0.3, seed=1)
    group_of = dict(zip(domain.texts, domain.groups, strict=True))
    train_groups = {group_of[t] for t in split.train_texts}
    test_groups = {group_of[t] for t in split.test_texts + split.neutral_texts}
    assert not train_groups & test_groups
    assert 0.25 <= len(split.test_texts) / (len(split.test_texts) + len(split.train_texts)) <= 0.4


def test_splits_are_fixed_by_the_seed_and_each_domain_by_its_own():
    news = synthetic_domain("news")
    assert protocol.split_domain(news, seed=5) == protocol.split_domain(news, seed=5)
    assert protocol.split_domain(news, seed=5) != protocol.split_domain(news, seed=6)
    alone = protocol.split_domains([news], seed=5)[0]
    beside = protocol.split_domains([synthetic_domain("films"), news], seed=5)[1]
    assert alone == beside  # another domain changes nothing of this one's split


def test_neutral_sentences_are_never_on_a_training_side(splits):
    for split in splits:
        assert not any("ordinary" in t for t in split.train_texts)
    assert all("ordinary" in t for s in splits for t in s.neutral_texts)
    assert sum(len(s.neutral_texts) for s in splits) > 0


def test_a_fixed_split_and_a_test_only_domain_are_kept_as_they_are():
    rows = [(f"Review {i} was {'good' if i % 2 else 'bad'}.", i % 2, str(i), i >= 8)
            for i in range(10)]
    fixed = make_domain("imdb", "IMDB", rows, test_only=False, source="", label_rule="")
    split = protocol.split_domain(fixed)
    assert len(split.test_texts) == 2 and len(split.train_texts) == 8
    test_only = protocol.split_domain(synthetic_domain("gadgets", test_only=True))
    assert not test_only.train_texts and test_only.test_texts


def test_a_shared_text_on_both_sides_is_refused():
    leak = protocol.DomainSplit("a", "A", False, ("The plot was good.",), (1,), ("x",), (0,))
    other = protocol.DomainSplit("b", "B", True, (), (), ("the plot was GOOD",), (1,))
    with pytest.raises(DataError, match="both trained and tested"):
        protocol.assert_disjoint([leak, other])


# --- the training mix ---------------------------------------------------------------------------

def test_the_mix_caps_large_domains_and_copies_small_ones():
    big = protocol.DomainSplit("big", "Big", False, tuple(f"big {i}" for i in range(1000)),
                               tuple([0] * 700 + [1] * 300), ("t",), (0,))
    small = protocol.DomainSplit("small", "Small", False, tuple(f"small {i}" for i in range(50)),
                                 tuple([0, 1] * 25), ("u",), (1,))
    mix = protocol.balanced_mix([big, small], cap=200, max_copies=3, validation_fraction=0.1)
    assert mix.plan["big"] == {"texts": 180, "copies": 1, "rows": 180, "validation": 20}
    # 10% of 25 per label rounds to 2 each (round half to even)
    assert mix.plan["small"] == {"texts": 46, "copies": 3, "rows": 138, "validation": 4}
    big_labels = [y for y, d in zip(mix.labels, mix.domains, strict=True) if d == "big"]
    assert abs(sum(big_labels) / len(big_labels) - 0.3) < 0.03  # the label share is kept
    assert not set(mix.validation_texts) & set(mix.texts)  # no copy of a validation text
    assert len(mix.texts) == 318 and mix == protocol.balanced_mix(
        [big, small], cap=200, max_copies=3, validation_fraction=0.1)


def test_the_mix_never_holds_a_test_text(splits):
    mix = protocol.balanced_mix([s for s in splits if not s.test_only], cap=40)
    protocol.assert_unseen(mix, splits)  # raises if any test text is in it
    with pytest.raises(DataError, match="in the training mix"):
        protocol.assert_unseen(mix, [protocol.DomainSplit("z", "Z", True, (), (),
                                                          (mix.texts[0],), (1,))])


# --- the protocol -------------------------------------------------------------------------------

class SpyTrainer:
    """A 'model' that records what it was trained on and guesses from one word."""

    def __init__(self):
        self.mixes = []

    def __call__(self, mix):
        self.mixes.append(mix)
        return lambda texts: [0.9 if any(w in t for w in GOOD) else 0.5 if "ordinary" in t
                              else 0.1 for t in texts]


@pytest.fixture
def tfidf_calls(monkeypatch):
    calls = []
    real = protocol.fit_tfidf

    def spy(texts, labels):
        calls.append((list(texts), list(labels)))
        return real(texts, labels)
    monkeypatch.setattr(protocol, "fit_tfidf", spy)
    return calls


def test_tfidf_and_the_model_train_on_exactly_the_same_rows(splits, tfidf_calls):
    spy = SpyTrainer()
    protocol.run_protocol(splits, spy, cap=60)
    assert len(spy.mixes) == len(tfidf_calls) == 5  # four left out, then all four
    for mix, (texts, labels) in zip(spy.mixes, tfidf_calls, strict=True):
        assert texts == list(mix.texts) and labels == list(mix.labels)


def test_leaving_a_domain_out_never_trains_on_it(splits):
    spy = SpyTrainer()
    rows = protocol.run_protocol(splits, spy, cap=60)
    training = [s for s in splits if not s.test_only]
    test_only_texts = {normalise(t) for s in splits if s.test_only
                       for t in s.test_texts + s.neutral_texts}
    for held_out, mix in zip(training, spy.mixes, strict=False):
        seen = {normalise(t) for t in mix.texts + mix.validation_texts}
        assert held_out.name not in set(mix.domains)
        assert not seen & {normalise(t) for t in held_out.train_texts + held_out.test_texts}
        assert not seen & test_only_texts
    assert set(spy.mixes[-1].domains) == {s.name for s in training}
    assert [r["test"] for r in rows if r["kind"] == "left out"] == [s.name for s in training]
    assert {r["test"] for r in rows if r["kind"] == "test only"} == {"gadgets"}


def test_every_row_reports_both_sides_beside_the_majority_share(splits):
    rows = protocol.run_protocol(splits, SpyTrainer(), cap=60)
    mixed = next(r for r in rows if r["kind"] == "mixed in domain")
    assert mixed["model"]["n"] == sum(len(s.test_texts) for s in splits if not s.test_only)
    for row in rows:
        for side in ("model", "tfidf"):
            assert {"accuracy", "macro_f1", "majority_share", "n"} <= set(row[side])
        assert row["model"]["accuracy"] == 1.0  # the spy reads the label word
    news = next(r for r in rows if r["test"] == "news" and r["kind"] == "left out")
    assert news["model"]["neutral_in_band"] == 1.0 and news["model"]["neutral_n"] > 0
    table = protocol.format_rows(rows)
    assert table.count("\n") == len(rows) + 1 and "left out" in table


def test_tfidf_only_runs_without_a_model(splits):
    rows = protocol.run_protocol(splits, None, cap=60)
    assert all(r["model"] is None and r["tfidf"]["n"] for r in rows)
    assert "—" in protocol.format_rows(rows)
    assert set(protocol.mean_over_domains(rows, "left out")) == {"tfidf"}


def test_the_neutral_band_and_the_majority_share():
    split = protocol.DomainSplit("d", "D", True, (), (), ("a", "b", "c", "d"), (1, 1, 1, 0),
                                 ("n1", "n2"))
    probabilities = {"a": 0.9, "b": 0.6, "c": 0.2, "d": 0.1, "n1": 0.5, "n2": 0.95}
    result = protocol.evaluate(lambda texts: [probabilities[t] for t in texts], split)
    assert result["accuracy"] == 0.75 and result["majority_share"] == 0.75
    assert result["neutral_n"] == 2 and result["neutral_in_band"] == 0.5


def test_the_fine_tuning_trainer_trains_on_the_mix_and_validates_on_its_own_texts(tmp_path):
    from tiny_assets import make_tiny_assets

    from roberta.training.config import FinetuneConfig

    assets = make_tiny_assets(tmp_path)
    texts = [f"The food was {w} on Monday." for w in GOOD * 4 + BAD * 4]
    split = protocol.DomainSplit("food", "Food", False, tuple(texts),
                                 tuple([1] * 24 + [0] * 24), ("x",), (0,))
    mix = protocol.balanced_mix([split], cap=100, max_copies=2, validation_fraction=0.25)
    config = FinetuneConfig(max_steps=2, batch_size=8, eval_every=1, warmup_steps=0,
                            seq_length=32, device="cpu")
    from roberta.model import RobertaForMaskedLM
    from roberta.tokenizer import RobertaTokenizer
    from roberta.training.finetuning import Finetuner, classifier_from
    tuner = Finetuner(
        classifier_from(RobertaForMaskedLM.from_pretrained(assets / "mlm"), ["n", "p"]),
        RobertaTokenizer.from_pretrained(assets / "mlm"), protocol.mix_task(mix), config)
    assert tuner.train_split == list(mix.texts) and tuner.train_labels == list(mix.labels)
    assert tuner.val_split == list(mix.validation_texts) and len(mix.validation_texts) == 12
    assert tuner._val[1] == list(mix.validation_labels)
    scorer = protocol.finetune_trainer(assets / "mlm", config)(mix)
    probabilities = scorer(["The food was lovely.", "The food was awful."])
    assert len(probabilities) == 2 and all(0 <= p <= 1 for p in probabilities)


# --- bad sources stop everything before training ------------------------------------------------

def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def place_fake_vader(tmp_path, monkeypatch, data: bytes, pin_it: bool = True):
    """`data` as the cached VADER sdist; pinned (so it gets past the checksum) when pin_it."""
    monkeypatch.setenv("ROBERTA_LAB_DATA", str(tmp_path))
    wheels._vader.cache_clear()
    entry = wheels.WHEELS["vader"]
    (tmp_path / entry.filename).write_bytes(data)
    if pin_it:
        monkeypatch.setitem(wheels.WHEELS, "vader", type(entry)(
            entry.pip_spec, entry.filename, hashlib.sha256(data).hexdigest(), entry.source,
            entry.licence, sdist=True))
    return tmp_path / entry.filename


@pytest.fixture(autouse=True)
def fresh_vader_cache():
    wheels._vader.cache_clear()  # a fake archive must not leak into another test
    yield
    wheels._vader.cache_clear()


def test_an_archive_with_the_wrong_checksum_is_deleted_and_refused(tmp_path, monkeypatch):
    fake = place_fake_vader(tmp_path, monkeypatch, tar_gz({"x": b"y"}), pin_it=False)
    with pytest.raises(DataError, match="not the pinned"):
        domains.nyt_domain()
    assert not fake.exists()


def test_an_archive_without_the_data_is_refused_by_name(tmp_path, monkeypatch):
    place_fake_vader(tmp_path, monkeypatch, tar_gz({"vaderSentiment-3.3.2/setup.py": b""}))
    with pytest.raises(DataError, match="vaderSentiment-3.3.2.tar.gz has no "
                                        "vaderSentiment-3.3.2/additional_resources"):
        domains.nyt_domain()
    inner = tar_gz({"hutto_ICWSM_2014/_README_.txt": b"readme"})
    place_fake_vader(tmp_path, monkeypatch, tar_gz({wheels.VADER_ARCHIVE: inner}))
    with pytest.raises(DataError, match="has no hutto_ICWSM_2014/nytEditorialSnippets"):
        domains.nyt_domain()


@pytest.mark.parametrize("damage", ["outer", "inner", "rows"])
def test_a_damaged_archive_is_one_plain_data_error(tmp_path, monkeypatch, damage):
    member = "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt"
    archive = {"outer": b"\x1f\x8b not a gzip at all",
               "inner": tar_gz({wheels.VADER_ARCHIVE: b"\x1f\x8b\x08 broken"}),
               "rows": tar_gz({wheels.VADER_ARCHIVE: tar_gz({member: b"1_1\tnot a number\tx"})}),
               }[damage]
    place_fake_vader(tmp_path, monkeypatch, archive)
    with pytest.raises(DataError, match="cannot be read as a .tar.gz|is not 'id<TAB>mean"):
        domains.nyt_domain()


def test_a_bad_source_stops_the_bench_before_anything_trains(tmp_path, monkeypatch, capsys):
    from bench import sentiment_domains as bench

    place_fake_vader(tmp_path, monkeypatch, b"corrupt", pin_it=False)
    trained = []
    monkeypatch.setattr(protocol, "run_protocol", lambda *a, **k: trained.append(a))
    monkeypatch.setattr(bench, "model_trainer", lambda args: trained.append(args))
    with pytest.raises(SystemExit, match=r"^error: vaderSentiment-3.3.2.tar.gz has sha256 .* "
                                         r"not the pinned"):
        bench.main(["--domains", "nyt,products", "--steps", "1"])
    assert trained == []


def test_a_reader_that_trips_is_named_in_one_data_error():
    def broken():
        raise KeyError("rating")
    with pytest.raises(DataError, match="could not read the drugs domain"):
        domains.read_domains(["drugs"], {"drugs": broken})
    with pytest.raises(DataError, match="unknown domain"):
        domains.read_domains(["yelp"])


# --- the real archive ---------------------------------------------------------------------------

def test_vaders_human_ratings_parse():
    assert importlib.util.find_spec("vaderSentiment") is None  # read, never installed
    sizes = {name: len(wheels.vader_ground_truth(name)) for name in wheels.VADER_SETS}
    assert sizes == {"products": 3708, "nyt": 5190, "movies": 10605, "tweets": 4200}
    ident, mean, text = wheels.vader_ground_truth("nyt")[0]
    assert ident == "1_1" and mean == 0.4 and text.startswith("On Dec. 19, around noon")


def test_the_new_domains_are_labelled_by_the_rule_and_grouped_by_review():
    nyt, products = domains.nyt_domain(), domains.products_domain()
    assert (nyt.count(NEGATIVE), nyt.count(POSITIVE), nyt.count(NEUTRAL)) == (982, 553, 1464)
    assert (products.count(NEGATIVE), products.count(POSITIVE), products.count(NEUTRAL)) == \
        (937, 1502, 529)
    assert len(set(nyt.groups)) == 498 and len(set(products.groups)) == 300
    assert products.test_only and not nyt.test_only
    split = protocol.split_domain(nyt)
    assert (len(split.train_texts), len(split.test_texts), len(split.neutral_texts)) == \
        (1228, 307, 261)  # 3 fewer training texts once products and drugs keep theirs


# --- the live multi-domain task ---------------------------------------------------------------

def test_a_live_task_caps_each_domain_and_never_trains_on_its_tests():
    def domain(name, test_only=False, n=100):
        texts = tuple(f"{name} text {i} {'good' if i % 4 else 'bad'}" for i in range(n))
        labels = tuple(int(i % 4 != 0) for i in range(n))  # 75% positive
        return protocol.DomainSplit(name, name.title(), test_only,
                                    () if test_only else texts[:80], () if test_only else
                                    labels[:80], texts[80:], labels[80:],
                                    tuple(f"{name} fact {i}" for i in range(9)))
    splits = [domain("parks", test_only=True), domain("cafes"), domain("shops")]
    live = protocol.live_domains(splits, train_per_domain=20, test_per_domain=8)
    assert {name: plan["texts"] + plan["validation"] for name, plan in live.mix.plan.items()} \
        == {"cafes": 20, "shops": 20}
    assert [(kind, split.name) for kind, split in live.tests] == [
        ("test only", "parks"), ("in domain", "cafes"), ("in domain", "shops"),
        ("mixed in domain", "mixed")]
    for _, split in live.tests[:3]:
        assert split.test_labels.count(1) == 6 and split.test_labels.count(0) == 2  # 75% kept
        assert len(split.neutral_texts) == 8
    task = live.task()
    assert task.train_texts == list(live.mix.texts)
    assert task.validation_texts == list(live.mix.validation_texts)
    assert task.test_texts == [t for _, s in live.tests[:3] for t in s.test_texts]
    assert not set(task.test_texts) & set(task.train_texts + task.validation_texts)
    again = protocol.live_domains(splits, train_per_domain=20, test_per_domain=8)
    assert again.tests[0][1].test_texts == live.tests[0][1].test_texts  # fixed by the seed


def test_the_accuracy_table_puts_the_better_model_in_bold():
    def result(accuracy, majority=0.5):
        return {"accuracy": accuracy, "n": 40, "majority_share": majority}
    rows = [{"title": "Parks", "kind": "test only", "model": result(0.75), "tfidf": result(0.6)},
            {"title": "Cafes", "kind": "in domain", "model": result(0.5), "tfidf": result(0.55)},
            {"title": "Both", "kind": "mixed in domain", "model": result(0.7),
             "tfidf": result(0.7, 0.6)}]
    lines = protocol.format_accuracy_table(rows).splitlines()
    assert lines[2] == "| Parks *(never trained on)* | 40 | **75.0%** | 60.0% | 50.0% |"
    assert lines[3] == "| Cafes | 40 | 50.0% | **55.0%** | 50.0% |"
    assert lines[4] == "| Both | 40 | 70.0% | 70.0% | 60.0% |"
