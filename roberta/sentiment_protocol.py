"""How a positive/negative classifier is trained and tested across domains, beside TF-IDF.

The rules, in the order the protocol applies them:

1. Splits (`split_domain`). Each training domain's test split is fixed by the seed and the
   domain's name (adding a domain changes no other's split) and made of whole groups, so the
   sentences of one review or article are all on one side. IMDB keeps the test split the
   shipped models already hold out. A test-only domain is all test. Neutral sentences are kept
   only from test groups and are never trained on.
2. One training set from several domains (`balanced_mix`): each domain gives at most `cap`
   of its training texts (a seeded sample keeping its label shares); a smaller one is repeated
   in whole copies, at most `max_copies`, up to about `cap`. So no domain drowns the others
   (IMDB has ~47,000 reviews, drugs ~700). `validation_fraction` of each domain's texts is
   held out before copying, so a model picks its best step on texts no copy of which it trains
   on; TF-IDF does not use them.
3. Leave one domain out (`run_protocol`): for each training domain, one model trained on the
   others' mix and tested on its test split; then one model on every training domain's mix
   (the one that would ship), tested on each test-only domain, on each training domain's test
   split and on all of them pooled ("mixed in domain"). TF-IDF + logistic regression
   (`baselines.fit_tfidf`) is fitted on exactly the rows the model trains on, each time.
4. Scores: accuracy and macro-F1 with the majority class's share beside them (the accuracy of
   always guessing it), and, where the test side has human-rated neutral sentences, the share
   whose P(positive) is inside `NEUTRAL_BAND` — a two-class model "says neutral" by being unsure.

A model is any `Trainer`: a function from a `TrainingMix` to a `Scorer` (texts -> P(positive)),
so the tests use a tiny model and `bench/sentiment_domains.py` the real fine-tuning
(`finetune_trainer`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .baselines import fit_tfidf, scores
from .data import DataError
from .sentiment_domains import LABEL_NAMES, NEUTRAL, Domain, normalise

NEUTRAL_BAND = (0.3, 0.7)  # the band bench/everyday_sentiment.py judges factual sentences by
DEFAULT_TEST_FRACTION = 0.2
DEFAULT_CAP = 4000
DEFAULT_MAX_COPIES = 4
DEFAULT_VALIDATION_FRACTION = 0.1

Scorer = Callable[[Sequence[str]], list[float]]  # P(positive) of each text


@dataclass(frozen=True)
class DomainSplit:
    """One domain's training and test sides; labels 0/1. `neutral_texts`: human-rated neutral
    sentences of the test side (scored for the band, never trained on)."""

    name: str
    title: str
    test_only: bool
    train_texts: tuple[str, ...]
    train_labels: tuple[int, ...]
    test_texts: tuple[str, ...]
    test_labels: tuple[int, ...]
    neutral_texts: tuple[str, ...] = ()


def _domain_rng(seed: int, name: str) -> np.random.Generator:
    """A random stream of its own per domain: adding or dropping a domain moves no other."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _test_groups(domain: Domain, test_fraction: float, seed: int) -> set[str]:
    """Whole groups, drawn in a seeded order until they hold `test_fraction` of the polar
    texts (at least one group, never all)."""
    polar_per_group: dict[str, int] = {}
    for group, label in zip(domain.groups, domain.labels, strict=True):
        polar_per_group[group] = polar_per_group.get(group, 0) + int(label != NEUTRAL)
    groups = sorted(polar_per_group)
    if len(groups) < 2:
        raise DataError(f"{domain.title}: one group cannot be split into training and test")
    wanted = test_fraction * sum(polar_per_group.values())
    chosen: set[str] = set()
    held = 0
    for index in _domain_rng(seed, domain.name).permutation(len(groups)):
        if held >= wanted or len(chosen) == len(groups) - 1:
            break
        chosen.add(groups[index])
        held += polar_per_group[groups[index]]
    return chosen


def split_domain(domain: Domain, test_fraction: float = DEFAULT_TEST_FRACTION,
                 seed: int = 0) -> DomainSplit:
    """The domain's training and test sides (rules in the module docstring, point 1)."""
    if domain.test_only:
        is_test = [True] * len(domain.texts)
    elif domain.fixed_test is not None:
        is_test = list(domain.fixed_test)
    else:
        chosen = _test_groups(domain, test_fraction, seed)
        is_test = [g in chosen for g in domain.groups]
    train = [(t, y) for t, y, s in zip(domain.texts, domain.labels, is_test, strict=True)
             if not s and y != NEUTRAL]
    test = [(t, y) for t, y, s in zip(domain.texts, domain.labels, is_test, strict=True)
            if s and y != NEUTRAL]
    neutral = tuple(t for t, y, s in zip(domain.texts, domain.labels, is_test, strict=True)
                    if s and y == NEUTRAL)
    if not test:
        raise DataError(f"{domain.title}: no positive or negative text to test on")
    return DomainSplit(domain.name, domain.title, domain.test_only,
                       tuple(t for t, _ in train), tuple(y for _, y in train),
                       tuple(t for t, _ in test), tuple(y for _, y in test), neutral)


def split_domains(domains: Sequence[Domain], test_fraction: float = DEFAULT_TEST_FRACTION,
                  seed: int = 0) -> list[DomainSplit]:
    """Every domain split, then checked: no text (normalised) on a training side is on any
    domain's test side."""
    splits = [split_domain(d, test_fraction, seed) for d in domains]
    assert_disjoint(splits)
    return splits


def assert_disjoint(splits: Sequence[DomainSplit]) -> None:
    """DataError when any normalised text is on a training side and on a test side."""
    trained = {normalise(t) for s in splits for t in s.train_texts}
    tested = {normalise(t) for s in splits for t in s.test_texts + s.neutral_texts}
    shared = trained & tested
    if shared:
        example = next(iter(shared))
        raise DataError(f"{len(shared)} texts are both trained and tested on, e.g. '{example}'")


def split_counts(splits: Sequence[DomainSplit]) -> list[dict]:
    """Per domain: training and test texts by label, and the test side's neutral sentences."""
    return [{"domain": s.name, "title": s.title, "test_only": s.test_only,
             "train_negative": s.train_labels.count(0), "train_positive": s.train_labels.count(1),
             "test_negative": s.test_labels.count(0), "test_positive": s.test_labels.count(1),
             "test_neutral": len(s.neutral_texts)} for s in splits]


# --- one training set from several domains -----------------------------------------------------

@dataclass(frozen=True)
class TrainingMix:
    """What a model and TF-IDF train on: `texts`/`labels` are the rows (copies included,
    shuffled); `domains` names each row's domain. `validation_*`: unique texts held out of every
    row, for a model to pick its best step. `plan`: per domain, its unique texts and copies."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    domains: tuple[str, ...]
    validation_texts: tuple[str, ...]
    validation_labels: tuple[int, ...]
    plan: dict[str, dict[str, int]] = field(default_factory=dict)


def _stratified_sample(labels: Sequence[int], size: int, rng: np.random.Generator) -> list[int]:
    """Indices of `size` items (all of them if fewer), each label's share kept (rounded)."""
    labels = np.asarray(labels)
    if size >= len(labels):
        return list(rng.permutation(len(labels)))
    picked = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        picked += list(rng.permutation(rows)[:max(1, round(size * len(rows) / len(labels)))])
    return [int(i) for i in rng.permutation(picked)]


def balanced_mix(splits: Sequence[DomainSplit], cap: int = DEFAULT_CAP,
                 max_copies: int = DEFAULT_MAX_COPIES,
                 validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
                 seed: int = 0) -> TrainingMix:
    """The training sides of `splits` as one set (rules in the module docstring, point 2)."""
    if cap < 1 or max_copies < 1 or not 0 <= validation_fraction < 1:
        raise DataError("cap and max_copies must be at least 1, validation_fraction in [0, 1)")
    rows: list[tuple[str, int, str]] = []
    validation: list[tuple[str, int]] = []
    plan = {}
    for split in splits:
        if not split.train_texts:
            continue
        rng = _domain_rng(seed, split.name)
        chosen = _stratified_sample(split.train_labels, cap, rng)
        n_validation = round(validation_fraction * len(chosen))
        held = set(_stratified_sample([split.train_labels[i] for i in chosen], n_validation, rng)
                   ) if n_validation else set()
        fit = [chosen[j] for j in range(len(chosen)) if j not in held]
        validation += [(split.train_texts[chosen[j]], split.train_labels[chosen[j]])
                       for j in sorted(held)]
        copies = min(max_copies, max(1, cap // len(chosen)))
        rows += [(split.train_texts[i], split.train_labels[i], split.name)
                 for _ in range(copies) for i in fit]
        plan[split.name] = {"texts": len(fit), "copies": copies, "rows": copies * len(fit),
                            "validation": len(held)}
    if not rows:
        raise DataError("no training text: every domain in the mix is test-only or empty")
    order = np.random.default_rng(seed).permutation(len(rows))
    return TrainingMix(tuple(rows[i][0] for i in order), tuple(rows[i][1] for i in order),
                       tuple(rows[i][2] for i in order), tuple(t for t, _ in validation),
                       tuple(y for _, y in validation), plan)


def capped_test(split: DomainSplit, size: int, seed: int = 0) -> DomainSplit:
    """`split` with at most `size` test texts (a seeded sample keeping the label shares) and
    at most `size` neutral ones: a test a live run can afford. The training side is kept (a
    mix caps it)."""
    rng = _domain_rng(seed, split.name)
    chosen = sorted(_stratified_sample(split.test_labels, size, rng))
    return DomainSplit(split.name, split.title, split.test_only, split.train_texts,
                       split.train_labels, tuple(split.test_texts[i] for i in chosen),
                       tuple(split.test_labels[i] for i in chosen), split.neutral_texts[:size])


@dataclass(frozen=True)
class LiveDomains:
    """A small multi-domain task for a live fine-tuning run: `mix` to train on (and pick the
    best step with), `tests` the (kind, split) rows it is scored on afterwards."""

    mix: TrainingMix
    tests: list[tuple[str, DomainSplit]]

    def task(self):
        """The mix as a data.ClassificationData, every test text pooled as its test set."""
        from .data import ClassificationData
        task = mix_task(self.mix)
        pooled_tests = [split for kind, split in self.tests if kind != "mixed in domain"]
        return ClassificationData(task.train_texts, task.train_labels,
                                  [t for s in pooled_tests for t in s.test_texts],
                                  [y for s in pooled_tests for y in s.test_labels],
                                  task.label_names, task.validation_texts,
                                  task.validation_labels)


def live_domains(splits: Sequence[DomainSplit], train_per_domain: int, test_per_domain: int,
                 seed: int = 0) -> LiveDomains:
    """Every training domain's mix capped at `train_per_domain` texts, and every domain's test
    side at `test_per_domain` (all_domains_tests' rows, the pooled one included)."""
    capped = [capped_test(s, test_per_domain, seed) for s in splits]
    mix = balanced_mix([s for s in capped if not s.test_only], cap=train_per_domain, seed=seed)
    # The tests keep no training side: the mix has what it needs (IMDB's is ~47,000 reviews).
    tests = all_domains_tests([replace(s, train_texts=(), train_labels=()) for s in capped])
    assert_unseen(mix, [split for _, split in tests])
    return LiveDomains(mix, tests)


# --- models and scores ------------------------------------------------------------------------

Trainer = Callable[[TrainingMix], Scorer]


def tfidf_trainer(mix: TrainingMix) -> Scorer:
    """TF-IDF (1-2 grams) + logistic regression fitted on the mix's rows, as a Scorer."""
    model = fit_tfidf(list(mix.texts), list(mix.labels))
    positive = list(model.classes_).index(1)

    def probability_positive(texts: Sequence[str]) -> list[float]:
        return model.predict_proba(list(texts))[:, positive].tolist() if texts else []
    return probability_positive


def evaluate(scorer: Scorer, split: DomainSplit, band: tuple[float, float] = NEUTRAL_BAND
             ) -> dict:
    """Accuracy, macro-F1 and the majority class's share on the test side (P >= 0.5 is
    "positive"); with neutral sentences, how many are inside `band`."""
    probabilities = scorer(list(split.test_texts) + list(split.neutral_texts))
    polar = probabilities[:len(split.test_texts)]
    predictions = [int(p >= 0.5) for p in polar]
    labels = list(split.test_labels)
    result = {"n": len(labels), **scores(predictions, labels, len(LABEL_NAMES)),
              "majority_share": max(labels.count(0), labels.count(1)) / len(labels)}
    if split.neutral_texts:
        neutral = probabilities[len(split.test_texts):]
        result["neutral_n"] = len(neutral)
        result["neutral_in_band"] = sum(band[0] <= p <= band[1] for p in neutral) / len(neutral)
    return result


def pooled(splits: Sequence[DomainSplit], name: str = "mixed",
           title: str = "All training domains' test splits") -> DomainSplit:
    """The test sides of `splits` as one test set (nothing to train on)."""
    return DomainSplit(name, title, True, (), (),
                       tuple(t for s in splits for t in s.test_texts),
                       tuple(y for s in splits for y in s.test_labels),
                       tuple(t for s in splits for t in s.neutral_texts))


def assert_unseen(mix: TrainingMix, tests: Sequence[DomainSplit]) -> None:
    """DataError if any test text (normalised) is among the mix's rows or validation texts: the
    guard that makes "left out" mean left out."""
    trained = {normalise(t) for t in mix.texts + mix.validation_texts}
    for split in tests:
        seen = sum(normalise(t) in trained for t in split.test_texts + split.neutral_texts)
        if seen:
            raise DataError(f"{seen} test texts of {split.title} are in the training mix")


def _train_and_test(train_splits: Sequence[DomainSplit], tests: Sequence[tuple[str, DomainSplit]],
                    train_model: Trainer | None, mix_options: dict) -> list[dict]:
    """One model (none: TF-IDF only) and one TF-IDF on the same mix, each scored on every
    (kind, split) in tests."""
    mix = balanced_mix(train_splits, **mix_options)
    assert_unseen(mix, [split for _, split in tests])
    return score_rows(mix, train_model(mix) if train_model else None, tests)


def score_rows(mix: TrainingMix, model: Scorer | None,
               tests: Sequence[tuple[str, DomainSplit]]) -> list[dict]:
    """`model` (trained on `mix`) beside TF-IDF fitted on exactly the mix's rows, on every
    (kind, split) in tests: one row each."""
    model = _memoised(model) if model else None
    tfidf = tfidf_trainer(mix)
    trained_on = sorted(mix.plan)
    return [{"test": split.name, "title": split.title, "kind": kind, "trained_on": trained_on,
             "train_rows": len(mix.texts), "plan": mix.plan,
             "model": evaluate(model, split) if model else None,
             "tfidf": evaluate(tfidf, split)}
            for kind, split in tests]


def all_domains_tests(splits: Sequence[DomainSplit], extra_tests: Sequence[DomainSplit] = ()
                      ) -> list[tuple[str, DomainSplit]]:
    """What the model trained on every training domain is scored on: each test-only domain,
    each training domain's test split, all of those pooled, then `extra_tests`."""
    training = [s for s in splits if not s.test_only]
    return ([("test only", s) for s in splits if s.test_only]
            + [("in domain", s) for s in training]
            + [("mixed in domain", pooled(training))]
            + [("extra", s) for s in extra_tests])


def _memoised(scorer: Scorer) -> Scorer:
    """`scorer` reading each distinct text once: the pooled test set is the domains' test sets
    again, and a model reads thousands of them."""
    known: dict[str, float] = {}

    def probability_positive(texts: Sequence[str]) -> list[float]:
        new = list(dict.fromkeys(t for t in texts if t not in known))
        known.update(zip(new, scorer(new), strict=True))
        return [known[t] for t in texts]
    return probability_positive


def run_protocol(splits: Sequence[DomainSplit], train_model: Trainer | None, *,
                 extra_tests: Sequence[DomainSplit] = (), cap: int = DEFAULT_CAP,
                 max_copies: int = DEFAULT_MAX_COPIES,
                 validation_fraction: float = DEFAULT_VALIDATION_FRACTION, seed: int = 0,
                 on_rows: Callable[[list[dict]], None] | None = None,
                 parts: Sequence[str] = ("left out", "all"),
                 all_domains_model: Trainer | None = None) -> list[dict]:
    """Leave each training domain out, then train on all of them (module docstring, point 3).
    `train_model` None: TF-IDF alone (the cheap half of the protocol). `parts`: which of the
    two halves to run (a long run can be split). `all_domains_model`: the Trainer of the
    all-domains model where it differs (e.g. one that loads the recipe's shipped classifier).

    Returns one row per (model, test set): kind "left out", "test only", "in domain", "mixed in
    domain" or "extra" (`extra_tests`, e.g. hand-written sentences, scored by the all-domains
    model). `on_rows` gets each model's rows as soon as they are scored (a long run can save
    them as it goes)."""
    training = [s for s in splits if not s.test_only]
    if len(training) < 2:
        raise DataError("leaving one domain out needs at least two training domains")
    options = dict(cap=cap, max_copies=max_copies, validation_fraction=validation_fraction,
                   seed=seed)
    rows: list[dict] = []

    def record(new_rows: list[dict]) -> None:
        rows.extend(new_rows)
        if on_rows:
            on_rows(new_rows)

    for held_out in training if "left out" in parts else ():
        others = [s for s in training if s is not held_out]
        record(_train_and_test(others, [("left out", held_out)], train_model, options))
    if "all" in parts:
        record(_train_and_test(training, all_domains_tests(splits, extra_tests),
                               all_domains_model or train_model, options))
    return rows


def mean_over_domains(rows: Sequence[dict], kind: str = "in domain") -> dict[str, dict]:
    """The unweighted mean accuracy and macro-F1 over the rows of `kind`, per side: every
    domain counts once, however many test texts it has (pooled, tweets would dominate)."""
    chosen = [r for r in rows if r["kind"] == kind]
    means = {}
    for side in ("model", "tfidf"):
        results = [r[side] for r in chosen if r[side]]
        if results:
            means[side] = {key: sum(r[key] for r in results) / len(results)
                           for key in ("accuracy", "macro_f1", "majority_share")}
    return means


def _percent(result: dict | None, key: str) -> str:
    return f"{result[key]:.1%}" if result else "—"


def _f1(result: dict | None) -> str:
    return f"{result['macro_f1']:.3f}" if result else "—"


def format_rows(rows: Sequence[dict]) -> str:
    """A Markdown table of `run_protocol`'s rows: model beside TF-IDF ("—": no model run)."""
    lines = ["| test set | kind | n | majority | model acc | model F1 | TF-IDF acc | TF-IDF F1 "
             "| neutral in band (model / TF-IDF) |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        model, tfidf = row["model"], row["tfidf"]
        band = (f"{_percent(model, 'neutral_in_band')} / {_percent(tfidf, 'neutral_in_band')} "
                f"of {tfidf['neutral_n']}" if "neutral_n" in tfidf else "")
        lines.append(f"| {row['title']} | {row['kind']} | {tfidf['n']:,} | "
                     f"{tfidf['majority_share']:.1%} | {_percent(model, 'accuracy')} | "
                     f"{_f1(model)} | {_percent(tfidf, 'accuracy')} | {_f1(tfidf)} | {band} |")
    return "\n".join(lines)


def format_accuracy_table(rows: Sequence[dict], model_name: str = "fine-tuned") -> str:
    """A short Markdown table of `score_rows`' rows: per test set, the model's accuracy beside
    TF-IDF's and always guessing the commoner class, the better of the two models in bold."""
    lines = [f"| test set | texts | {model_name} | TF-IDF + LR | commoner class |",
             "|---|---|---|---|---|"]
    for row in rows:
        model, tfidf = row["model"]["accuracy"], row["tfidf"]["accuracy"]
        ours, theirs = f"{model:.1%}", f"{tfidf:.1%}"
        if model != tfidf:
            ours, theirs = (f"**{ours}**", theirs) if model > tfidf else (ours, f"**{theirs}**")
        where = {"test only": " *(never trained on)*", "mixed in domain": ""}.get(row["kind"], "")
        lines.append(f"| {row['title']}{where} | {row['tfidf']['n']:,} | {ours} | {theirs} | "
                     f"{row['tfidf']['majority_share']:.1%} |")
    return "\n".join(lines)


# --- the real model: fine-tuning a masked LM ----------------------------------------------------

def finetune_trainer(mlm_dir: str | Path, config, dropout: float | None = 0.1,
                     on_event=None) -> Trainer:
    """A Trainer that fine-tunes a positive/negative classifier from the masked LM in `mlm_dir`
    with `config` (a train.FinetuneConfig; its validation_fraction is ignored: the mix's own
    validation texts pick the best step) and scores texts as the app reads them."""
    import torch

    from .model import RobertaForMaskedLM
    from .tokenizer import RobertaTokenizer
    from .training.engine import run_to_end
    from .training.finetuning import Finetuner, classifier_from

    def train(mix: TrainingMix) -> Scorer:
        tokenizer = RobertaTokenizer.from_pretrained(mlm_dir)
        torch.manual_seed(config.seed)  # the new head's start, whatever ran before
        model = classifier_from(RobertaForMaskedLM.from_pretrained(mlm_dir), LABEL_NAMES, dropout)
        tuner = Finetuner(model, tokenizer, mix_task(mix), config)
        run_to_end(tuner, on_event)
        if tuner.best is not None:  # the best validation step's weights
            tuner.model.load_state_dict(tuner.best[2])
        return classifier_scorer(tuner.model, tokenizer, tuner.max_length, tuner.device,
                                 tuner.precision)
    return train


def classifier_scorer(model, tokenizer, max_length: int | None = None, device=None,
                      precision: str = "fp32") -> Scorer:
    """A positive/negative classifier as a Scorer: texts read as classify() reads them (windows
    of `max_length`, default the model's), in length-sorted batches (thousands of test texts
    take seconds, not minutes)."""
    import torch

    from .inference import encode_windows
    from .training.finetuning import text_logits

    max_length = max_length or model.config.max_sequence_length
    device = device or torch.device("cpu")
    positive = LABEL_NAMES.index("positive")

    def probability_positive(texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        windows = encode_windows(tokenizer, list(texts), max_length)
        logits = text_logits(model, windows, len(texts), max_length, device, precision)
        return logits.softmax(-1)[:, positive].tolist()
    return probability_positive


def mix_task(mix: TrainingMix):
    """The mix as a data.ClassificationData a train.Finetuner trains on: exactly the mix's rows,
    its best step picked on the mix's validation texts."""
    from .data import ClassificationData

    if not mix.validation_texts:
        raise DataError("fine-tuning needs validation texts: use validation_fraction > 0")
    return ClassificationData(list(mix.texts), list(mix.labels), label_names=LABEL_NAMES,
                              validation_texts=list(mix.validation_texts),
                              validation_labels=list(mix.validation_labels))
