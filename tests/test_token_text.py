"""Byte-level tokens shown as whole characters (roberta.token_text, RobertaTokenizer's
readable_tokens): Chinese and emoji read as characters in every tab, a stray byte is marked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roberta.token_text import merge_pieces, piece_label, readable_bytes, readable_pieces
from roberta.tokenizer import RobertaTokenizer

PIZZA = "🍕".encode()  # f0 9f 8d 95


def test_pieces_of_one_character_show_it_whole_and_numbered():
    assert readable_pieces([PIZZA[:1], PIZZA[1:3], PIZZA[3:]]) == [
        "🍕\u202f(1/3)", "🍕\u202f(2/3)", "🍕\u202f(3/3)"]
    assert readable_pieces([b" ", PIZZA[:2], PIZZA[2:], b" and"]) == [
        " ", piece_label("🍕", 1, 2), piece_label("🍕", 2, 2), " and"]


def test_characters_that_straddle_a_token_pull_their_tokens_together():
    wo, men = "我".encode(), "们".encode()  # 3 bytes each
    pieces = [b" " + wo + men[:1], men[1:]]  # " 我" and half of 们, then the rest of 们
    assert readable_pieces(pieces) == [piece_label(" 我们", 1, 2), piece_label(" 我们", 2, 2)]


def test_a_stray_byte_is_marked_plainly():
    assert readable_bytes(b"\xe5") == "⟨byte e5⟩"
    assert readable_bytes(PIZZA[:2]) == "⟨bytes f0 9f⟩"
    assert readable_bytes(b"a\xe5b") == "a⟨byte e5⟩b"
    # its neighbours masked out: what is left of the character cannot be shown whole
    assert readable_pieces([PIZZA[:1], "<mask>", PIZZA[2:]]) == [
        "⟨byte f0⟩", "<mask>", "⟨bytes 8d 95⟩"]
    assert readable_bytes(b"\xc0\xaf") == "⟨bytes c0 af⟩"  # an overlong "/" is no character


def test_merge_pieces_undoes_the_numbering_only():
    labels = readable_pieces([b"The", b" ", PIZZA[:1], PIZZA[1:], "</s>"])
    assert merge_pieces(labels) == [("The", 1), (" ", 1), ("🍕", 2), ("</s>", 1)]
    # a text that only looks numbered is left alone
    assert merge_pieces([piece_label("a", 1, 2), "b"]) == [(piece_label("a", 1, 2), 1),
                                                            ("b", 1)]
    assert merge_pieces(["a (1/2)", "a (2/2)"]) == [("a (1/2)", 1), ("a (2/2)", 1)]  # text


@given(st.text(max_size=30), st.lists(st.integers(1, 4), max_size=40))
def test_any_text_cut_anywhere_reads_back_whole(text, cuts):
    data, pieces = text.encode(), []
    for n in cuts:
        if data:
            pieces.append(data[:n])
            data = data[n:]
    pieces += [data] if data else []
    labels = readable_pieces(pieces)
    assert len(labels) == len(pieces)
    assert "".join(t for t, _ in merge_pieces(labels)) == text.encode()[:sum(map(len, pieces))
                                                                       ].decode()
    assert "⟨byte" not in "".join(labels)


@pytest.fixture(scope="module")
def tok() -> RobertaTokenizer:
    """A small English BPE: it has no token for a Chinese character or an emoji."""
    return RobertaTokenizer.train(["The cat sat on the mat. The film was great."] * 50,
                                  vocab_size=300)


def test_the_tokenizer_shows_chinese_and_emoji_as_characters(tok):
    encoding = tok.encode("我喜欢 🍕!")
    labels = tok.readable_tokens(encoding.tokens)
    assert len(labels) == len(encoding.tokens)
    assert labels[0] == "<s>" and labels[-1] == "</s>"
    assert not any("\\x" in label or "⟨byte" in label for label in labels)
    shown = "".join(text for text, _ in merge_pieces(labels))
    assert shown == "<s>我喜欢 🍕!</s>"
