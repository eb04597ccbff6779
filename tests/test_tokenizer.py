"""Tests for roberta.tokenizer; `transformers` is the reference implementation (test-only)."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import threading
from pathlib import Path

import pytest
import torch
from tokenizers import pre_tokenizers

from roberta.tokenizer import Encoding, RobertaTokenizer, TokenizerError

transformers = pytest.importorskip("transformers")

VOCAB_SIZE = 1000


def _corpus(n: int = 400) -> list[str]:
    """A few hundred varied sentences: English templates plus accents, emoji, CJK, numbers."""
    rng = random.Random(1234)
    subjects = [
        "the cat",
        "a dog",
        "my neighbour",
        "the old teacher",
        "Paris",
        "the committee",
        "our small company",
        "the river",
        "every student",
        "the quick brown fox",
        "Dr. Smith",
        "the café owner",
        "a naïve tourist",
        "the computer",
        "nobody",
    ]
    verbs = [
        "sat on",
        "jumped over",
        "walked to",
        "talked about",
        "looked at",
        "bought",
        "painted",
        "visited",
        "ignored",
        "remembered",
        "is running towards",
        "was reading",
    ]
    objects = [
        "the mat",
        "a red house",
        "the mountain",
        "three apples",
        "the garden",
        "an interesting book",
        "the station",
        "the museum",
        "London",
        "Berlin",
        "the blue ocean",
        "the language model",
        "the training data",
        "the window",
    ]
    tails = [
        "yesterday",
        "today",
        "in 1999",
        "at 3.14 pm",
        "on Monday",
        "quickly",
        "slowly",
        "again",
        "with great care",
        "for the first time",
        "because it rained",
        "",
    ]
    extras = [
        "東京は大きい都市です。",
        "我喜欢学习语言。",
        "Ça va très bien, merci !",
        "Über den Wolken 🌤️",
        "I love pizza 🍕🍕 and sushi 🍣",
        "naïve café déjà vu",
        "Привет, как дела?",
        "¿Dónde está la biblioteca?",
        "e-mail: test@example.com",
        "Prices rose 12.5% in 2024 — wow!",
        "it's fine, don't worry; we'll see.",
    ]
    topics = [
        "weather",
        "politics",
        "football",
        "music",
        "history",
        "chemistry",
        "biology",
        "economics",
        "poetry",
        "gardening",
        "photography",
        "astronomy",
        "philosophy",
        "cooking",
        "architecture",
        "medicine",
        "engineering",
        "literature",
        "mathematics",
        "geography",
        "television",
        "journalism",
    ]
    out = []
    for _ in range(n):
        s = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} {rng.choice(tails)}"
        if rng.random() < 0.5:
            s += f", thinking about {rng.choice(topics)} and {rng.choice(topics)}"
        s = s.strip() + rng.choice([".", "!", "?", "...", ""])
        if rng.random() < 0.5:
            s = s[0].upper() + s[1:]
        if rng.random() < 0.25:
            s += " " + rng.choice(extras)
        if rng.random() < 0.1:
            s += "\n" + rng.choice(extras)
        out.append(s)
    return out + extras


CORPUS = _corpus()

# Texts compared against transformers, token by token.
TEXTS = [
    "Hello world",
    "The cat sat on the mat.",
    "The <mask> sat on the <mask>.",
    "<mask> at the start",
    "at the end <mask>",
    "<mask>",
    "<mask><mask> twice  <mask>",
    "",
    " ",
    "   leading spaces",
    "trailing spaces   ",
    "multiple   inner    spaces",
    "line one\nline two\n\nline four\n",
    "tabs\tand\r\nwindows newlines",
    "café, naïve, déjà vu, Über, Ça",
    "emoji 😀🎉👍🏽 and 🍕",
    "東京は大きい都市です。我喜欢学习语言。",
    "mixed: 東京 café 😀 <mask> end",
    "numbers 3.14159 and 1,000,000 and 2024-11-05",
    "symbols <s> </s> <pad> <unk> look special",
    "unseen words: xylophone zeugma quixotic",
]


@pytest.fixture(scope="module")
def tok() -> RobertaTokenizer:
    return RobertaTokenizer.train(CORPUS, vocab_size=VOCAB_SIZE, model_max_length=64)


@pytest.fixture(scope="module")
def saved(tok: RobertaTokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "nested" / "dir"  # save_pretrained creates it
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vocab_merges_only(saved: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """roberta-base's layout: just vocab.json + merges.txt (no tokenizer.json, no config)."""
    path = tmp_path_factory.mktemp("vm")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(saved / name, path / name)
    return path


@pytest.fixture(scope="module", params=["RobertaTokenizerFast", "AutoTokenizer"])
def hf(request: pytest.FixtureRequest, saved: Path):
    return getattr(transformers, request.param).from_pretrained(str(saved))


# ------------------------------------------------------------------ basics


def test_special_ids_and_properties(tok: RobertaTokenizer) -> None:
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id) == (0, 1, 2)
    assert (tok.unk_token_id, tok.mask_token_id) == (3, 4)
    assert tok.mask_token == "<mask>"
    assert tok.special_ids == frozenset({0, 1, 2, 3, 4})
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert tok.convert_tokens_to_ids("<mask>") == 4
    assert tok.convert_tokens_to_ids(["<s>", "no-such-token"]) == [0, 3]
    assert tok.model_max_length == 64
    assert 300 < tok.vocab_size <= VOCAB_SIZE
    assert tok.backend.get_vocab_size() == tok.vocab_size


def test_every_byte_is_in_the_vocab(tok: RobertaTokenizer) -> None:
    vocab = tok.backend.get_vocab()
    assert all(ch in vocab for ch in pre_tokenizers.ByteLevel.alphabet())
    # So no text ever needs <unk>.
    assert tok.unk_token_id not in tok.encode("\x00\x07 ﷽ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010ffff").ids


def test_encode_fields(tok: RobertaTokenizer) -> None:
    enc = tok.encode("The cat sat.")
    assert isinstance(enc, Encoding)
    assert enc.ids[0] == tok.bos_token_id and enc.ids[-1] == tok.eos_token_id
    assert enc.attention_mask == [1] * len(enc.ids) and len(enc) == len(enc.ids)
    assert enc.tokens == tok.convert_ids_to_tokens(enc.ids)
    assert enc.offsets[0] == (0, 0) and enc.offsets[-1] == (0, 0)
    assert not enc.truncated
    empty = tok.encode("")
    assert empty.ids == [0, 2] and empty.tokens == ["<s>", "</s>"] and not empty.truncated


def test_mask_absorbs_preceding_space(tok: RobertaTokenizer, hf) -> None:
    enc = tok.encode("This is <mask>.")
    i = enc.ids.index(tok.mask_token_id)
    assert enc.tokens[i - 1] == "Ġis"
    assert "Ġ" not in enc.tokens
    assert enc.tokens[i:] == ["<mask>", ".", "</s>"]
    assert enc.tokens == hf.convert_ids_to_tokens(hf("This is <mask>.")["input_ids"])
    # Only the space before <mask> is absorbed, not the one after it.
    assert tok.encode("a <mask> b").tokens[2:4] == ["<mask>", "Ġb"]


# ------------------------------------------------------------------ parity with transformers


@pytest.mark.parametrize("text", TEXTS)
def test_matches_transformers(tok: RobertaTokenizer, hf, text: str) -> None:
    ours = tok.encode(text)
    ref = hf(text)
    assert ours.ids == ref["input_ids"]
    assert ours.attention_mask == ref["attention_mask"]
    assert ours.tokens == hf.convert_ids_to_tokens(ref["input_ids"])


def test_truncation_matches_transformers(tok: RobertaTokenizer, hf) -> None:
    text = " ".join(CORPUS[:40])
    full = tok.encode_batch_ids([text], add_special_tokens=True)[0]
    assert len(full) > 2 * tok.model_max_length
    for max_length in (2, 3, 17, tok.model_max_length, len(full), len(full) + 5):
        enc = tok.encode(text, max_length=max_length)
        ref = hf(text, truncation=True, max_length=max_length)
        assert enc.ids == ref["input_ids"], max_length
        assert len(enc.ids) == min(max_length, len(full))
        assert enc.ids[-1] == tok.eos_token_id
        assert enc.truncated == (max_length < len(full))
    # Without max_length the limit is model_max_length.
    default = tok.encode(text)
    assert len(default.ids) == tok.model_max_length and default.truncated
    assert default.ids == hf(text, truncation=True)["input_ids"]
    # A text that fits exactly is not truncated.
    exact = tok.encode("The cat sat.")
    assert not tok.encode("The cat sat.", max_length=len(exact.ids)).truncated
    assert tok.encode("The cat sat.", max_length=len(exact.ids) - 1).truncated


def test_batch_padding_matches_transformers(tok: RobertaTokenizer, hf) -> None:
    for max_length in (None, 9):
        batch = tok(TEXTS, max_length=max_length)
        ref = hf(TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long
        assert torch.equal(batch["input_ids"], ref["input_ids"])
        assert torch.equal(batch["attention_mask"], ref["attention_mask"])
    batch = tok(["a", "a longer sentence here"])
    assert batch["input_ids"][0, -1].item() == tok.pad_token_id
    assert batch["attention_mask"][0].sum().item() == len(tok.encode("a").ids)
    single = tok("hello there", padding=False)
    assert single["input_ids"].shape == (1, len(tok.encode("hello there").ids))


def test_transformers_sees_the_same_config(tok: RobertaTokenizer, hf) -> None:
    assert hf.model_max_length == tok.model_max_length
    assert hf.mask_token_id == tok.mask_token_id and hf.pad_token_id == tok.pad_token_id
    assert hf.bos_token_id == tok.bos_token_id and hf.eos_token_id == tok.eos_token_id
    assert len(hf) == tok.vocab_size
    ids = tok.encode("The <mask> sat on the mat.").ids
    assert hf.decode(ids, skip_special_tokens=True) == tok.decode(ids)
    assert hf.decode(ids) == tok.decode(ids, skip_special_tokens=False)


def test_transformers_loads_vocab_merges_layout(
    tok: RobertaTokenizer, saved: Path, tmp_path: Path
) -> None:
    path = tmp_path / "no-json"
    shutil.copytree(saved, path)
    (path / "tokenizer.json").unlink()
    ref = transformers.AutoTokenizer.from_pretrained(str(path))
    for text in TEXTS:
        assert tok.encode(text).ids == ref(text)["input_ids"], text


# ------------------------------------------------------------------ save / load


def test_saved_files(tok: RobertaTokenizer, saved: Path) -> None:
    names = {p.name for p in saved.iterdir()}
    assert {
        "tokenizer.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    } <= names
    config = json.loads((saved / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "RobertaTokenizer"
    assert config["model_max_length"] == tok.model_max_length
    assert config["mask_token"]["lstrip"] is True
    vocab = json.loads((saved / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == tok.vocab_size and vocab["<mask>"] == 4
    assert (saved / "merges.txt").read_text(encoding="utf-8").startswith("#version")


def test_roundtrip_identical(tok: RobertaTokenizer, saved: Path) -> None:
    loaded = RobertaTokenizer.from_pretrained(saved)
    assert loaded.vocab_size == tok.vocab_size
    assert loaded.model_max_length == tok.model_max_length
    assert loaded.special_ids == tok.special_ids
    for text in TEXTS + [" ".join(CORPUS[:30])]:
        assert loaded.encode(text) == tok.encode(text), text
    # Saving the loaded one again gives the same tokenizer.json.
    assert json.loads(loaded.backend.to_str())["model"] == json.loads(tok.backend.to_str())["model"]


def test_load_from_vocab_and_merges(tok: RobertaTokenizer, vocab_merges_only: Path) -> None:
    loaded = RobertaTokenizer.from_pretrained(vocab_merges_only)
    assert loaded.model_max_length == 512  # no tokenizer_config.json: the default
    assert loaded.mask_token_id == tok.mask_token_id and loaded.vocab_size == tok.vocab_size
    for text in TEXTS:
        assert loaded.encode(text).ids == tok.encode(text).ids, text
    assert loaded.encode("This is <mask>.").tokens == tok.encode("This is <mask>.").tokens
    long = " ".join(CORPUS[:5])
    assert loaded.encode_batch_ids([long]) == tok.encode_batch_ids([long])


def test_from_pretrained_max_length_override(saved: Path) -> None:
    assert RobertaTokenizer.from_pretrained(saved, model_max_length=16).model_max_length == 16


# ------------------------------------------------------------------ text <-> ids


@pytest.mark.parametrize(
    "text",
    [
        "The cat sat on the mat.",
        "  two leading, two trailing  ",
        "line\nbreaks\n\nhere",
        "café naïve 😀 東京",
        "unseen words: xylophone zeugma",
    ],
)
def test_decode_roundtrip(tok: RobertaTokenizer, text: str) -> None:
    ids = tok.encode(text, max_length=10_000).ids
    assert tok.decode(ids) == text
    assert tok.decode(torch.tensor(ids)) == text
    assert tok.decode(ids, skip_special_tokens=False) == f"<s>{text}</s>"


def test_offsets_map_back_to_text(tok: RobertaTokenizer) -> None:
    for text in [
        "The old teacher bought three apples yesterday.",
        "café naïve déjà vu",
        "emoji 🍕 and 東京",
        "The <mask> sat on the <mask>.",
    ]:
        enc = tok.encode(text)
        for token, (start, end), i in zip(enc.tokens, enc.offsets, enc.ids, strict=True):
            assert 0 <= start <= end <= len(text)
            if i == tok.mask_token_id:
                assert text[start:end] == "<mask>"
            elif i in tok.special_ids:
                assert (start, end) == (0, 0)
            else:
                shown = tok.token_display(token)
                if "⟨byte" not in shown:  # skip tokens holding part of a multi-byte character
                    assert text[start:end] == shown.lstrip(" "), token
        spans = [o for o, i in zip(enc.offsets, enc.ids, strict=True) if i not in tok.special_ids]
        # In order; pieces of one multi-byte character share that character's span.
        assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(spans))


def test_token_display(tok: RobertaTokenizer) -> None:
    assert tok.token_display("Ġthe") == " the"
    assert tok.token_display("Ċ") == "\n"
    assert tok.token_display("ĉ") == "\t"
    assert tok.token_display("cafÃ©") == "café"
    assert tok.token_display("Ã") == "⟨byte c3⟩"  # half of "é", marked plainly
    assert tok.token_display("<mask>") == "<mask>"
    # The byte table agrees with the backend's ByteLevel decoder for every ASCII byte.
    for char in pre_tokenizers.ByteLevel.alphabet():
        if tok.backend.decoder.decode([char]).isascii():
            assert tok.token_display(char) == tok.backend.decoder.decode([char])
    assert len({tok.token_display(c) for c in pre_tokenizers.ByteLevel.alphabet()}) == 256


def test_word_start_mask(tok: RobertaTokenizer) -> None:
    mask = tok.word_start_mask()
    assert mask.dtype == torch.bool and mask.shape == (tok.vocab_size,)
    vocab = tok.backend.get_vocab()
    assert mask[vocab["Ġthe"]] and mask[vocab["Ġ"]]
    assert all(mask[i] for i in tok.special_ids)
    assert not mask[vocab["e"]] and not mask[vocab["."]]
    enc = tok.encode("The quixotic zeugma sat.")
    flags = [bool(mask[i]) for i in enc.ids]
    expected = [
        t.startswith("Ġ") or i in tok.special_ids for t, i in zip(enc.tokens, enc.ids, strict=True)
    ]
    assert flags == expected
    # Words split into several tokens: one start, then continuations.
    assert flags.count(True) == 2 + 3  # <s>, </s>, " quixotic", " zeugma", " sat"


def test_encode_batch_ids(tok: RobertaTokenizer) -> None:
    texts = TEXTS + [" ".join(CORPUS)]  # the last one is far past model_max_length
    ids = tok.encode_batch_ids(texts)
    assert len(ids[-1]) > 10 * tok.model_max_length  # never truncated
    for text, row in zip(texts[:-1], ids[:-1], strict=True):
        assert row == tok.encode(text).ids[1:-1]
    with_specials = tok.encode_batch_ids(["hello", ""], add_special_tokens=True)
    assert with_specials == [tok.encode("hello").ids, [0, 2]]
    assert tok.encode_batch_ids([]) == []
    # The backend's own truncation is back in place afterwards.
    assert len(tok.backend.encode(texts[-1]).ids) == tok.model_max_length


def test_concurrent_calls_keep_their_own_limits(tok: RobertaTokenizer) -> None:
    text = " ".join(CORPUS[:20])
    errors: list[str] = []

    def work(max_length: int) -> None:
        for _ in range(50):
            n = len(tok.encode(text, max_length=max_length).ids)
            if n != max_length:
                errors.append(f"{max_length}: got {n}")

    threads = [threading.Thread(target=work, args=(m,)) for m in (5, 9, 13, 64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ------------------------------------------------------------------ errors


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="not found"):
        RobertaTokenizer.from_pretrained(tmp_path / "nope")


def test_directory_without_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("hi")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json.*README\.md"):
        RobertaTokenizer.from_pretrained(tmp_path)
    with pytest.raises(TokenizerError, match="a file"):
        RobertaTokenizer.from_pretrained(tmp_path / "README.md")


def test_corrupt_tokenizer_json(saved: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(saved, bad)
    text = (bad / "tokenizer.json").read_text(encoding="utf-8")
    (bad / "tokenizer.json").write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json is not valid JSON"):
        RobertaTokenizer.from_pretrained(bad)
    (bad / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": 3}}')
    with pytest.raises(TokenizerError, match="corrupt"):
        RobertaTokenizer.from_pretrained(bad)
    (bad / "tokenizer.json").write_text("[1, 2]")
    with pytest.raises(TokenizerError, match="not a tokenizers file"):
        RobertaTokenizer.from_pretrained(bad)


def test_corrupt_config_and_vocab(saved: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(saved, bad)
    (bad / "tokenizer_config.json").write_text("{oops")
    with pytest.raises(TokenizerError, match=r"tokenizer_config\.json is not valid JSON"):
        RobertaTokenizer.from_pretrained(bad)
    (bad / "tokenizer_config.json").unlink()
    (bad / "tokenizer.json").unlink()
    vocab = json.loads((bad / "vocab.json").read_text(encoding="utf-8"))
    del vocab["<mask>"]
    (bad / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(TokenizerError, match="<mask>"):
        RobertaTokenizer.from_pretrained(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 100}, "vocab_size must be >= 262"),
        ({"vocab_size": 261}, "vocab_size must be >= 262"),
        ({"vocab_size": 1000.0}, "vocab_size must be an int"),
        ({"min_frequency": 0}, "min_frequency"),
        ({"model_max_length": 1}, "model_max_length"),
    ],
)
def test_bad_train_args(kwargs: dict, match: str) -> None:
    with pytest.raises(TokenizerError, match=match):
        RobertaTokenizer.train(["some text"], **kwargs)


def test_bad_train_texts() -> None:
    with pytest.raises(TokenizerError, match="single string"):
        RobertaTokenizer.train("just one string", vocab_size=300)
    with pytest.raises(TokenizerError, match=r"texts\[1\] is int"):
        RobertaTokenizer.train(["fine", 42], vocab_size=300)
    with pytest.raises(TokenizerError, match="empty"):
        RobertaTokenizer.train(iter([]), vocab_size=300)


def test_bad_encode_input(tok: RobertaTokenizer) -> None:
    with pytest.raises(TokenizerError, match="must be str"):
        tok.encode(None)  # type: ignore[arg-type]
    with pytest.raises(TokenizerError, match="must be str"):
        tok.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TokenizerError, match="max_length"):
        tok.encode("hi", max_length=1)
    with pytest.raises(TokenizerError, match=r"texts\[1\]"):
        tok(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TokenizerError, match="non-empty"):
        tok([])
    with pytest.raises(TokenizerError, match="padding=True"):
        tok(["a", "a much longer text"], padding=False)
    with pytest.raises(TokenizerError, match="invalid token id"):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(TokenizerError, match="not a single str"):
        tok.encode_batch_ids("one string")  # type: ignore[arg-type]


def test_a_lone_surrogate_is_replaced_not_an_error(tok: RobertaTokenizer) -> None:
    """Text pasted from a broken source can hold half a UTF-16 pair, which no UTF-8 can encode."""
    broken = tok.encode("The coffee \ud83d was good")
    assert broken.tokens == tok.encode("The coffee \ufffd was good").tokens
