"""The everyday probes and their scoring: a probe is answered when an accepted word is among the
top 5 guesses, whole word and case-insensitive, and never otherwise."""

import torch

from roberta.model import RobertaForMaskedLM
from roberta.probes import EVERYDAY_PROBES, ProbeResult, answered_share, score_probes
from roberta.tokenizer import RobertaTokenizer


def test_the_probes_are_well_formed():
    assert len(EVERYDAY_PROBES) >= 25
    for text, accepted in EVERYDAY_PROBES.items():
        assert text.count("<mask>") == 1 and accepted.split(), text
        assert accepted == accepted.lower()


def test_answered_means_an_accepted_word_in_the_top_5():
    hit = ProbeResult("x <mask>", ("tea", "coffee"), [("the", 0.5), ("Coffee", 0.1)])
    near = ProbeResult("x <mask>", ("tea",), [("teas", 0.5), ("steam", 0.1), ("", 0.1)])
    assert hit.answered and not near.answered
    assert answered_share([hit, near]) == 0.5


def test_score_probes_reads_the_models_own_top_5(tiny_assets):
    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    with torch.no_grad():
        model.lm_head.bias.zero_()
        token = tokenizer.encode_batch_ids([" the"])[0][0]
        model.lm_head.bias[token] = 50.0  # every guess now starts with "the"
    results = score_probes(model.eval(), tokenizer, {"I saw <mask> dog.": "the a",
                                                     "A cup of <mask>.": "tea"})
    assert [r.guesses[0][0] for r in results] == ["the", "the"]
    assert [r.answered for r in results] == [True, False]
    assert all(len(r.guesses) == 5 for r in results)
