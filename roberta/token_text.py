"""Byte-level tokens as a person reads them.

A byte-level BPE splits a character it has no token for into its UTF-8 bytes: "🍕" is four bytes,
and with a small English vocabulary often three or four tokens, each of which decodes to no
character at all. Shown one by one they read as "\\xf0 \\x9f \\x8d \\x95". Here a run of tokens
that together hold whole characters shows those characters on each of its pieces, numbered
("🍕 (1/3)", "🍕 (2/3)", "🍕 (3/3)"), so a view with one label per token (an attention map, the
masking grid) keeps one label per position and still reads; `merge_pieces` puts the pieces back
together for a view that shows the sequence (the tokenization). A byte that belongs to no whole
character in reach (a lone guess, a piece whose neighbours were masked) is marked plainly:
"⟨byte e5⟩".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["merge_pieces", "piece_label", "readable_bytes", "readable_pieces", "visible_token"]

# Between a character and its piece number: a narrow no-break space, which the views that make
# spaces visible ("␣the") leave alone, so it never reads as a space of the text.
GAP = "\u202f"
_PIECE = re.compile(rf"(.*){GAP}\((\d+)/(\d+)\)", re.DOTALL)


def _char_length(lead: int) -> int:
    """How many bytes a UTF-8 character starting with `lead` has (0: not a lead byte)."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _characters(data: bytes) -> list[tuple[int, int]]:
    """The (start, end) byte spans of the whole UTF-8 characters in `data`, in order."""
    spans, i = [], 0
    while i < len(data):
        n = _char_length(data[i])
        if n and i + n <= len(data):
            try:
                data[i:i + n].decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                spans.append((i, i + n))
                i += n
                continue
        i += 1
    return spans


def readable_bytes(data: bytes) -> str:
    """`data` as text, each run of bytes that is no whole character marked: b"a\\xe5" ->
    "a⟨byte e5⟩", b"\\xf0\\x9f" -> "⟨bytes f0 9f⟩"."""
    parts, end = [], 0
    for start, stop in _characters(data):
        parts.append(_marked(data[end:start]))
        parts.append(data[start:stop].decode("utf-8"))
        end = stop
    parts.append(_marked(data[end:]))
    return "".join(parts)


def _marked(stray: bytes) -> str:
    if not stray:
        return ""
    return f"⟨byte{'s' if len(stray) > 1 else ''} {' '.join(f'{b:02x}' for b in stray)}⟩"


def readable_pieces(pieces: Sequence[bytes | str]) -> list[str]:
    """One label per token. `pieces` are the tokens' bytes; a str is a token that is not bytes
    (a special such as "<mask>"): shown as it is, and no character joins across it. Tokens that
    share a character are labelled with the text they make together and their place in it."""
    labels: list[str] = []
    run: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, str):
            labels += _run_labels(run)
            labels.append(piece)
            run = []
        else:
            run.append(piece)
    return labels + _run_labels(run)


def _run_labels(run: list[bytes]) -> list[str]:
    if not run:
        return []
    owner = [k for k, piece in enumerate(run) for _ in piece]  # byte -> its token
    joined = [False] * len(run)  # joined[k]: token k shares a character with token k + 1
    for start, stop in _characters(b"".join(run)):
        for k in range(owner[start], owner[stop - 1]):
            joined[k] = True
    labels, k = [], 0
    while k < len(run):
        end = k
        while joined[end]:
            end += 1
        text = readable_bytes(b"".join(run[k:end + 1]))
        count = end - k + 1
        labels += [text] if count == 1 else [piece_label(text, i, count)
                                             for i in range(1, count + 1)]
        k = end + 1
    return labels


def piece_label(text: str, piece: int, pieces: int) -> str:
    """The label of token `piece` of the `pieces` that together make `text`: "🍕 (1/3)"."""
    return f"{text}{GAP}({piece}/{pieces})"


def merge_pieces(labels: Sequence[str]) -> list[tuple[str, int]]:
    """`readable_pieces`' labels with each character's pieces put back together, as (text,
    how many tokens it spans): ["🍕 (1/2)", "🍕 (2/2)", " is"] -> [("🍕", 2), (" is", 1)]."""
    merged, i = [], 0
    while i < len(labels):
        first = _PIECE.fullmatch(labels[i])
        if first and first[2] == "1":
            text, count = first[1], int(first[3])
            if count > 1 and i + count <= len(labels) and all(
                    labels[i + k] == piece_label(text, k + 1, count) for k in range(count)):
                merged.append((text, count))
                i += count
                continue
        merged.append((labels[i], 1))
        i += 1
    return merged


def visible_token(token: str) -> str:
    """' cat' -> '␣cat': a leading space (the token starts a word) made visible."""
    return token.replace(" ", "␣").replace("\n", "↵") or "∅"
