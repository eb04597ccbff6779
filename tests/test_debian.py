"""WordNet read out of Debian's wordnet-base .deb, downloaded and never installed: the pin holds,
a bad or missing package says what to do, the archive is read correctly, and the entries are
sentences a masked LM can learn from. The real package (6.5 MB) is fetched once into the cache."""

import dataclasses
import io
import tarfile

import pytest

from roberta import debian
from roberta.data import DataError

NOUN_LINE = (
    "03221720 06 n 03 door 0 doorway 0 room_access 0 002 @ 04179913 n 0000 | a swinging or "
    "sliding barrier that will close the entrance to a room; \"he knocked on the door\"; "
    "\"he slammed the door as he left\"  ")


def ar_archive(members: dict[str, bytes]) -> bytes:
    """An `ar` archive as dpkg writes it: 60-byte headers, odd-sized members padded to even."""
    out = b"!<arch>\n"
    for name, body in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n"
        out += header.encode("ascii") + body + (b"\n" if len(body) % 2 else b"")
    return out


def test_an_entry_is_its_words_its_gloss_and_its_examples_as_sentences():
    assert debian._entry(NOUN_LINE) == (
        "door, doorway, room access: a swinging or sliding barrier that will close the entrance "
        "to a room. He knocked on the door. He slammed the door as he left.")
    adjective = "00001740 00 a 01 able(a) 0 000 | (usually followed by `to') having the means"
    assert debian._entry(adjective).startswith("able: (usually followed by")


def test_ar_members_are_found_past_odd_sized_ones():
    archive = ar_archive({"debian-binary": b"2.0\n", "control.tar.xz": b"odd",
                          "data.tar.xz": b"the data"})
    assert debian._ar_member(archive, "data.tar") == b"the data"
    assert debian._ar_member(archive, "control") == b"odd"
    with pytest.raises(DataError, match="no missing"):
        debian._ar_member(archive, "missing")
    with pytest.raises(DataError, match="not a Debian package"):
        debian._ar_member(b"PK\x03\x04 a zip", "data.tar")


def test_a_package_with_the_wrong_checksum_is_deleted_and_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBERTA_LAB_DATA", str(tmp_path))
    fake = tmp_path / debian.WORDNET.filename
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:xz"):
        pass
    fake.write_bytes(ar_archive({"data.tar.xz": tarball.getvalue()}))
    with pytest.raises(DataError, match="not the pinned"):
        debian.fetch_deb(quiet=True)
    assert not fake.exists()


def test_a_failed_fetch_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBERTA_LAB_DATA", str(tmp_path))
    monkeypatch.setattr(debian.shutil, "which", lambda _: None)  # no apt: Debian's pool
    missing = dataclasses.replace(debian.WORDNET, pool_path="pool/main/n/no-such/no-such.deb",
                                  filename="roberta-lab-no-such.deb")
    with pytest.raises(DataError, match="Could not fetch Debian's .*by hand"):
        debian.fetch_deb(missing, quiet=True)
    assert list(tmp_path.iterdir()) == []  # no half-downloaded debris


def test_wordnet_gives_every_sense_with_its_everyday_examples():
    entries = debian.wordnet_entries()
    assert len(entries) == 117_659  # WordNet 3.0's synsets: 82,115 nouns + 13,767 verbs + ...
    assert 1_700_000 < sum(len(e.split()) for e in entries) < 1_800_000
    door = next(e for e in entries if e.startswith("door:"))
    assert "He knocked on the door." in door and '"' not in door
    assert not any(";." in e or ": ." in e for e in entries)
    assert debian.wordnet_entries() == entries and debian.wordnet_entries() is not entries
