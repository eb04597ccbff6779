"""roberta.inference against transformers: fill-mask (which runs the LM head at the <mask>
positions only) gives the guesses and probabilities of transformers' full forward pass, and
classify reads a long text in windows whose transformers logits it averages."""

import pytest
import torch
import transformers

from roberta import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.defaults import REPO_ASSETS
from roberta.inference import (
    MAX_CLASSIFY_WINDOWS,
    classification_reading,
    classify,
    encode_window,
    fill_mask,
    window_starts,
)
from roberta.tokenizer import RobertaTokenizer

MLM, CLASSIFIER = REPO_ASSETS / "mlm", REPO_ASSETS / "sentiment"


@pytest.mark.parametrize("text", ["The <mask> of the company said <mask> had risen.",
                                  "<mask> coffee.", "I gave my dog a <mask>"])
def test_fill_mask_matches_transformers_full_forward(text):
    ours = RobertaForMaskedLM.from_pretrained(MLM).eval()
    tokenizer = RobertaTokenizer.from_pretrained(MLM)
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(MLM, dtype=torch.float32).eval()
    result = fill_mask(ours, tokenizer, text, top_k=5)

    ids = torch.tensor([tokenizer.encode(text).ids])
    positions = (ids[0] == tokenizer.mask_token_id).nonzero().flatten().tolist()
    with torch.no_grad():
        probs = theirs(ids).logits[0, positions].softmax(-1)  # (M, V)
    top = probs.topk(5, dim=-1)
    assert [p.position for p in result.predictions] == positions
    for prediction, values, indices in zip(result.predictions, top.values, top.indices,
                                           strict=True):
        assert [c.token_id for c in prediction.candidates] == indices.tolist()
        assert torch.allclose(torch.tensor([c.probability for c in prediction.candidates]),
                              values, atol=1e-5)


def test_a_long_text_is_read_in_a_window_around_its_first_mask(tiny_assets):
    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").eval()
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    length = model.config.max_sequence_length
    filler = " ".join(["The cat sat on the mat."] * 200)
    text = f"{filler} The <mask> was good. {filler}"
    encoding, window = encode_window(tokenizer, text, length)
    assert len(encoding.ids) == length and window.cut
    assert encoding.ids[0] == tokenizer.bos_token_id and encoding.ids[-1] == tokenizer.eos_token_id
    middle = encoding.ids.index(tokenizer.mask_token_id)
    assert abs(middle - length // 2) <= 2  # centred on the <mask>
    assert text[window.chars[0]:window.chars[1]].count("<mask>") == 1
    assert f"tokens {window.start + 1:,}–{window.end:,}" in window.notice()
    result = fill_mask(model, tokenizer, text)
    assert result.truncated and len(result.predictions) == 1
    whole = encode_window(tokenizer, "The <mask> was good.", length)[1]
    assert not whole.cut and whole.notice() is None


@pytest.mark.parametrize("total,room", [(1, 5), (5, 5), (6, 5), (10, 5), (11, 5), (254, 254),
                                        (255, 254), (1000, 254), (9999, 3)])
def test_windows_cover_the_text_side_by_side_the_last_ending_at_its_end(total, room):
    starts = window_starts(total, room, max_windows=10**6)
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert len(starts) == -(-total // room)  # as few as can cover it
    covered = {t for s in starts for t in range(s, min(s + room, total))}
    assert covered == set(range(total))
    # Side by side, then the last one, which may overlap the one before.
    assert all(b - a == room for a, b in zip(starts[:-2], starts[1:-1], strict=True))
    assert total <= room or starts[-1] + room == total
    capped = window_starts(total, room, max_windows=2)
    assert capped == starts[:2]


def test_a_long_text_is_classified_on_the_mean_of_its_windows_transformers_logits():
    ours = RobertaForSequenceClassification.from_pretrained(CLASSIFIER).eval()
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(
        CLASSIFIER, dtype=torch.float32).eval()
    tokenizer = RobertaTokenizer.from_pretrained(CLASSIFIER)
    room = ours.config.max_sequence_length - 2
    text = " ".join(f"Scene {i} was {'dull and slow' if i < 30 else 'a wonderful surprise'}."
                    for i in range(50))
    ids = tokenizer.encode_batch_ids([text])[0]
    assert room < len(ids) < 2 * room  # two windows, the second ending at the end
    rows = [ids[:room], ids[-room:]]
    with torch.no_grad():
        logits = torch.cat([theirs(torch.tensor([[tokenizer.bos_token_id, *row,
                                                  tokenizer.eos_token_id]])).logits
                            for row in rows])
        short = theirs(torch.tensor([tokenizer.encode("Great coffee.").ids])).logits[0]
    expected = [logits.mean(0).softmax(-1), short.softmax(-1)]
    results = classify(ours, tokenizer, [text, "Great coffee."])
    for result, probabilities in zip(results, expected, strict=True):
        assert list(result) == ["negative", "positive"]
        assert torch.allclose(torch.tensor(list(result.values())), probabilities, atol=1e-5)
    assert (logits[0] - logits[1]).abs().max() > 0.1  # the second window counts

    reading = classification_reading(ours, tokenizer, text)
    assert (reading.windows, reading.width, reading.read.cut) == (2, room, False)
    assert "read all of it in 2 windows" in reading.notice()
    assert classification_reading(ours, tokenizer, "Great coffee.").notice() is None


def test_a_text_past_the_window_cap_is_read_from_its_start_and_says_so():
    model = RobertaForSequenceClassification.from_pretrained(CLASSIFIER).eval()
    tokenizer = RobertaTokenizer.from_pretrained(CLASSIFIER)
    room = model.config.max_sequence_length - 2
    text = "The plot was thin but the music was lovely. " * 3000
    reading = classification_reading(model, tokenizer, text)
    assert reading.windows == MAX_CLASSIFY_WINDOWS and reading.read.cut
    assert reading.read.end == MAX_CLASSIFY_WINDOWS * room < reading.read.total
    assert 0 < reading.read.chars[1] < len(text)
    assert f"the first {reading.read.end:,} tokens" in reading.notice()
    assert "left out" in reading.notice()


def test_mask_word_hides_the_whole_word_of_a_clicked_token():
    from roberta.inference import mask_word

    tokenizer = RobertaTokenizer.from_pretrained(MLM)  # a fixed file: the same pieces each run
    text = "The Rumpelstiltskin coffee, really good."
    encoding = tokenizer.encode(text)
    pieces = [i for i, (s, e) in enumerate(encoding.offsets)
              if s >= text.index("Rumpelstiltskin") and e <= text.index(" coffee")]
    assert len(pieces) > 3  # a word of several tokens: any of them hides all of it
    for index in pieces:
        assert mask_word(tokenizer, text, index, 64) == "The <mask> coffee, really good."
    comma = next(i for i, (s, e) in enumerate(encoding.offsets) if text[s:e].strip() == ",")
    assert mask_word(tokenizer, text, comma, 64) == "The Rumpelstiltskin coffee<mask> really good."
    with pytest.raises(ValueError, match="not a word of the text"):
        mask_word(tokenizer, text, 0, 64)  # <s>
    with pytest.raises(ValueError, match="There is no token 99"):
        mask_word(tokenizer, text, 99, 64)
    masked = mask_word(tokenizer, text, pieces[0], 64)
    mask_at = tokenizer.encode(masked).ids.index(tokenizer.mask_token_id)
    with pytest.raises(ValueError, match="not a word of the text"):
        mask_word(tokenizer, masked, mask_at, 64)


def test_mask_word_reads_a_lone_space_token_as_part_of_the_next_word():
    """A byte-level BPE may keep a word's space apart ("Ġ", offsets (4, 4)) when the word is
    one token without it: clicking that space hides the word after it."""
    from roberta.inference import mask_word

    # "unbelievable" only ever starts a text here, so its space can never merge with it
    tokenizer = RobertaTokenizer.train(["unbelievable"] * 5 + ["The coffee."] * 5,
                                       vocab_size=300, min_frequency=1)
    text = "The unbelievable coffee."
    encoding = tokenizer.encode(text)
    lone = [i for i, (start, end) in enumerate(encoding.offsets)
            if start == end and i not in (0, len(encoding.ids) - 1)]
    assert lone, list(zip(encoding.tokens, encoding.offsets, strict=True))
    assert mask_word(tokenizer, text, lone[0], 64) == "The <mask> coffee."
