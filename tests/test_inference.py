"""roberta.inference against transformers: fill-mask (which runs the LM head at the <mask>
positions only) gives the guesses and probabilities of transformers' full forward pass."""

import pytest
import torch
import transformers

from roberta import RobertaForMaskedLM
from roberta.defaults import REPO_ASSETS
from roberta.inference import fill_mask
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
