"""roberta.inference against transformers: fill-mask (which runs the LM head at the <mask>
positions only) gives the guesses and probabilities of transformers' full forward pass."""

import pytest
import torch
import transformers

from roberta import RobertaForMaskedLM
from roberta.defaults import REPO_ASSETS
from roberta.inference import classification_window, encode_window, fill_mask
from roberta.tokenizer import RobertaTokenizer

MLM = REPO_ASSETS / "mlm"


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
    # To classify, the first window; a short text is read whole, with no notice.
    first = classification_window(model, tokenizer, text)
    assert first.start == 0 and "the first" in first.notice()
    whole = encode_window(tokenizer, "The <mask> was good.", length)[1]
    assert not whole.cut and whole.notice() is None
