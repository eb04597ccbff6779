"""The yardsticks and the attributions, checked against figures worked out by hand or against
the property that defines them."""

import math

import pytest
import torch

from roberta.baselines import macro_f1, scores, tfidf_baseline, unigram_baseline
from roberta.inference import token_attributions
from roberta.model import RobertaForSequenceClassification
from roberta.tokenizer import RobertaTokenizer


def test_unigram_baseline_by_hand():
    # Training ids: token 5 three times, token 6 once, special 0 (never guessed) four times.
    train = torch.tensor([0, 5, 5, 0, 6, 5, 0, 0])
    targets = torch.tensor([5, 6, 7, 5])
    result = unigram_baseline(train, targets, special_ids=[0], vocab_size=8)
    assert result["top_token_id"] == 5
    assert result["accuracy"] == 0.5  # two of the four targets are 5
    # Add-one smoothing over 8 ids, the special's count zeroed: counts+1 = 1,1,1,1,1,4,2,1.
    p = {5: 4 / 12, 6: 2 / 12, 7: 1 / 12}
    cross_entropy = -(2 * math.log(p[5]) + math.log(p[6]) + math.log(p[7])) / 4
    assert result["cross_entropy"] == pytest.approx(cross_entropy)
    assert result["perplexity"] == pytest.approx(math.exp(cross_entropy))
    with pytest.raises(ValueError, match="no target"):
        unigram_baseline(train, torch.tensor([], dtype=torch.long), [0], 8)


def test_scores_and_macro_f1_by_hand():
    predictions, labels = [0, 0, 1, 1, 1], [0, 1, 1, 1, 0]
    # class 0: precision 1/2, recall 1/2 -> F1 0.5; class 1: precision 2/3, recall 2/3.
    assert macro_f1(predictions, labels, 2) == pytest.approx((0.5 + 2 / 3) / 2)
    assert scores(predictions, labels, 2) == pytest.approx(
        {"accuracy": 0.6, "macro_f1": (0.5 + 2 / 3) / 2})
    assert macro_f1([0, 0], [0, 0], 3) == pytest.approx(1 / 3)  # absent classes count as 0


def test_tfidf_baseline_learns_words_and_not_noise():
    good = ["a lovely warm film", "lovely acting and a warm story", "warm, lovely, great"]
    bad = ["a dull cold film", "dull acting and a cold story", "cold, dull, awful"]
    texts, labels = (good + bad) * 5, ([1] * 3 + [0] * 3) * 5
    held_out = (["what a lovely warm evening", "so dull and cold"], [1, 0])
    assert tfidf_baseline(texts, labels, *held_out)["accuracy"] == 1.0
    shuffled = tfidf_baseline(texts, [1, 0] * 15, *held_out)  # labels unrelated to the words
    assert shuffled["accuracy"] < 1.0


LONG_REVIEW = " ".join(f"Part {i} of the coffee tasting was {'bitter' if i % 3 else 'lovely'}."
                       for i in range(12))  # several windows of the tiny model's 62 tokens


@pytest.mark.parametrize("text", ["The coffee was wonderful but the box was damaged.",
                                  LONG_REVIEW])
def test_integrated_gradients_are_complete(tiny_assets, text):
    """Completeness (Sundararajan et al. 2017): the attributions add up to the change of the
    target logit classify() reads (for a long text, the mean of its windows') from the all-<pad>
    baseline to the text."""
    model = RobertaForSequenceClassification.from_pretrained(tiny_assets / "sentiment").eval()
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "sentiment")
    tokens, attributions, target = token_attributions(model, tokenizer, text, steps=256)
    ids = tokenizer.encode_batch_ids([text])[0]
    room = model.config.max_sequence_length - 2
    starts = list(range(0, len(ids) - room, room)) + [max(0, len(ids) - room)]
    windows = torch.tensor([[tokenizer.bos_token_id, *ids[s:s + room], tokenizer.eos_token_id]
                            for s in starts])
    with torch.no_grad():
        actual = model(windows).logits[:, target].mean()
        embeddings = model.roberta.embeddings.word_embeddings
        pad = embeddings(torch.full_like(windows, tokenizer.pad_token_id))
        handle = embeddings.register_forward_hook(lambda module, inputs, output: pad)
        try:
            baseline = model(windows).logits[:, target].mean()
        finally:
            handle.remove()
    assert len(tokens) == len(attributions) == len(ids) + 2  # every token, <s> and </s> once
    assert len(starts) == 1 if text != LONG_REVIEW else len(starts) >= 3
    change = float(actual - baseline)
    assert abs(change) > 1e-3  # the check below is not vacuous
    assert sum(attributions) == pytest.approx(change, rel=0.02)


def test_attributions_leave_other_requests_on_the_same_model_alone(tiny_assets):
    """The app classifies for several visitors at once on one model: while integrated
    gradients run, another forward pass of that model (here: started from inside the
    attribution's own forward, as a concurrent request would land) sees its own embeddings.
    Before, the attribution's hook answered every lookup with its path: the other request got
    the wrong logits or a shape error (seen at start-up, warming up the embedded classifier)."""
    model = RobertaForSequenceClassification.from_pretrained(tiny_assets / "sentiment").eval()
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "sentiment")
    other = torch.tensor([tokenizer.encode("Great coffee, awful box.").ids])
    with torch.no_grad():
        expected = model(other).logits
    seen, started = [], []

    def another_request(module, inputs):
        # Once, inside the attribution's own pass (its batch is the 8 interpolation steps).
        if not started and inputs[0].size(0) == 8:
            started.append(True)
            with torch.no_grad():
                seen.append(model(other).logits)

    handle = model.roberta.encoder.layer[0].register_forward_pre_hook(another_request)
    try:
        alone = token_attributions(model, tokenizer, "The coffee was wonderful.", steps=8)
    finally:
        handle.remove()
    assert seen and torch.allclose(seen[0], expected, atol=1e-6)
    undisturbed = token_attributions(model, tokenizer, "The coffee was wonderful.", steps=8)
    assert undisturbed[0] == alone[0] and undisturbed[2] == alone[2]
    assert undisturbed[1] == pytest.approx(alone[1], abs=1e-6)
