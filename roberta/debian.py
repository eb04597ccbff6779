"""Text read out of a Debian package that is downloaded, checked and never installed.

WordNet's glosses and usage examples ("he drove his car to work", "she opened the door") are the
everyday English that reviews, news and speeches rarely spell out. Debian ships them in
`wordnet-base`; the recipe fetches the .deb with `apt-get download` (or, without apt, straight
from Debian's pool), checks its sha256 against the pin below, and reads the dictionary out of the
archive in memory: a .deb is an `ar` archive holding `data.tar.xz`. Nothing is installed and
nothing runs at app start. The cache is the wheels' (`$ROBERTA_LAB_DATA` or
`~/.cache/roberta-lab`); a .deb copied there by hand is used once its checksum matches.
"""

from __future__ import annotations

import functools
import io
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .data import DataError
from .wheels import cache_dir, pinned

__all__ = ["WORDNET", "DebianPackage", "fetch_deb", "wordnet_entries"]


@dataclass(frozen=True)
class DebianPackage:
    apt_spec: str
    pool_path: str  # under https://deb.debian.org/debian/
    filename: str
    sha256: str
    source: str
    licence: str


WORDNET = DebianPackage(
    "wordnet-base=1:3.0-37", "pool/main/w/wordnet/wordnet-base_3.0-37_all.deb",
    "wordnet-base_3.0-37_all.deb",
    "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752",
    "WordNet 3.0 (Princeton University): glosses and usage examples of ~117,000 word senses",
    "WordNet 3.0 licence (permissive, BSD-like; Debian main)")


def _download(package: DebianPackage, folder: Path) -> Path | None:
    """The .deb downloaded into `folder` by apt (its mirrors and proxy) or from Debian's pool."""
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "download", "-qq", package.apt_spec], cwd=folder,
                       capture_output=True, text=True)
        found = sorted(folder.glob("*.deb"))
        if found:
            return found[0]
    url = f"https://deb.debian.org/debian/{package.pool_path}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            (folder / package.filename).write_bytes(response.read())
    except OSError:
        return None
    return folder / package.filename


def fetch_deb(package: DebianPackage = WORDNET, quiet: bool = False) -> Path:
    """The cached, checked .deb; downloaded when missing."""
    path = cache_dir() / package.filename
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not quiet:
            print(f"fetching Debian's {package.apt_spec} (read, never installed) into "
                  f"{path.parent}", flush=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            downloaded = _download(package, Path(tmp))
            if downloaded is None:
                raise DataError(
                    f"Could not fetch Debian's {package.apt_spec}. Connect to the network, or "
                    f"copy {package.filename} (https://deb.debian.org/debian/"
                    f"{package.pool_path}) into {path.parent} by hand.")
            shutil.move(str(downloaded), path)
    return pinned(path, package.sha256)


def _ar_member(archive: bytes, prefix: str) -> bytes:
    """The first member of an `ar` archive whose name starts with `prefix`."""
    if not archive.startswith(b"!<arch>\n"):
        raise DataError("not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(archive):
        header = archive[offset:offset + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        if name.startswith(prefix):
            return archive[offset + 60:offset + 60 + size]
        offset += 60 + size + (size % 2)  # members are 2-byte aligned
    raise DataError(f"the Debian package holds no {prefix}*")


_EXAMPLE = re.compile(r'"([^"]+)"')


def _sentence(text: str) -> str:
    text = text.strip().rstrip(";").strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _entry(line: str) -> str:
    """One synset of a WordNet data.* line as a short document:
    'door, doorway: a swinging or sliding barrier ... He knocked on the door.'"""
    fields, _, gloss = line.partition(" | ")
    parts = fields.split()
    lemma_count = int(parts[3], 16)
    lemmas = [re.sub(r"\(.*\)$", "", w).replace("_", " ")
              for w in parts[4:4 + 2 * lemma_count:2]]
    examples = [_sentence(e) for e in _EXAMPLE.findall(gloss)]
    definition = "; ".join(p.strip() for p in _EXAMPLE.sub("", gloss).split(";") if p.strip())
    text = f"{', '.join(dict.fromkeys(lemmas))}: {definition}."
    return " ".join([text, *[e for e in examples if e]])


@functools.lru_cache(maxsize=1)
def _wordnet() -> tuple[str, ...]:
    data = _ar_member(fetch_deb(WORDNET).read_bytes(), "data.tar")
    entries = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for part in ("noun", "verb", "adj", "adv"):
            member = tar.extractfile(f"./usr/share/wordnet/data.{part}")
            if member is None:
                raise DataError(f"wordnet-base holds no data.{part}")
            for line in member.read().decode("utf-8", "replace").splitlines():
                if line and not line.startswith(" "):  # the licence header is indented
                    entries.append(_entry(line))
    return tuple(entries)


def wordnet_entries() -> list[str]:
    """Every WordNet 3.0 word sense: its words, its gloss, its usage examples as sentences."""
    return list(_wordnet())
