"""The deletion check of token attributions (roberta.faithfulness), checked against model calls
on hand-shortened ids and against a classifier built by hand so that one word decides."""

from __future__ import annotations

import pytest
import torch

from roberta import faithfulness
from roberta.config import RobertaConfig
from roberta.faithfulness import DeletionCheck, deletion_check, deletion_line
from roberta.inference import classify, token_attributions
from roberta.model import RobertaForSequenceClassification
from roberta.tokenizer import RobertaTokenizer

TEXT = "The coffee was wonderful but the box was damaged."
LONG = " ".join(["The cat was slow yesterday and the dog was quick today."] * 12)  # 3 windows


@pytest.fixture
def classifier(tiny_assets):
    """The tiny (untrained, random) sentiment classifier and its tokenizer."""
    model = RobertaForSequenceClassification.from_pretrained(tiny_assets / "sentiment").eval()
    return model, RobertaTokenizer.from_pretrained(tiny_assets / "sentiment")


def probability_of(model, ids: list[int], target: int) -> float:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits.softmax(-1)[0, target].item()


def test_deleting_removes_exactly_those_tokens_and_nothing_else(classifier):
    """Each figure is the model's answer on the ids with those positions cut out by hand: one
    row `<s> … </s>`, k tokens shorter, nothing replaced, nothing re-encoded."""
    model, tokenizer = classifier
    check = deletion_check(model, tokenizer, TEXT, k=3)
    ids = tokenizer.encode(TEXT).ids
    target = model.config.label2id[check.label]
    assert check.probability == pytest.approx(classify(model, tokenizer, [TEXT])[0][check.label],
                                              abs=1e-5)
    assert check.probability == pytest.approx(probability_of(model, ids, target), abs=1e-5)
    deletions = [(check.top_positions, check.after_top),
                 *zip(check.random_positions, check.after_random, strict=True)]
    assert len(deletions) == 1 + faithfulness.RANDOM_DRAWS
    for positions, after in deletions:
        shortened = [t for i, t in enumerate(ids) if i not in positions]
        assert len(shortened) == len(ids) - 3
        assert shortened[0] == tokenizer.bos_token_id and shortened[-1] == tokenizer.eos_token_id
        assert after == pytest.approx(probability_of(model, shortened, target), abs=1e-5)
    tokens = tokenizer.encode(TEXT).tokens
    assert check.deleted_top == [tokenizer.token_display(tokens[i]) for i in check.top_positions]


def test_the_top_k_are_the_highest_attributions_towards_the_predicted_class(classifier,
                                                                          monkeypatch):
    model, tokenizer = classifier
    attributions = token_attributions(model, tokenizer, TEXT)
    _, scores, target = attributions
    probabilities = classify(model, tokenizer, [TEXT])[0]
    assert model.config.id2label[target] == max(probabilities, key=probabilities.get)

    def computed_again(*args, **kwargs):
        raise AssertionError("the attributions were passed in: nothing to compute")

    monkeypatch.setattr(faithfulness, "token_attributions", computed_again)
    check = deletion_check(model, tokenizer, TEXT, k=3, attributions=attributions)
    assert check.label == model.config.id2label[target]
    content = range(1, len(scores) - 1)  # <s> and </s> are never deleted
    rest = [scores[i] for i in content if i not in check.top_positions]
    assert len(check.top_positions) == 3
    assert min(scores[i] for i in check.top_positions) >= max(rest)
    with pytest.raises(ValueError, match="another text"):
        deletion_check(model, tokenizer, TEXT + " And more.", attributions=attributions)


def test_the_random_baseline_is_seeded_and_never_deletes_a_special_token(classifier):
    model, tokenizer = classifier
    text = "The cat <mask> was good."
    ids = tokenizer.encode(text).ids
    assert tokenizer.mask_token_id in ids  # a special inside the text, besides <s> and </s>
    first = deletion_check(model, tokenizer, text, seed=7, random_draws=40)
    again = deletion_check(model, tokenizer, text, seed=7, random_draws=40)
    other = deletion_check(model, tokenizer, text, seed=8, random_draws=40)
    assert first.random_positions == again.random_positions
    assert first.after_random == again.after_random
    assert first.random_positions != other.random_positions
    assert len(first.after_random) == 40
    for positions in [first.top_positions, *first.random_positions]:
        assert len(set(positions)) == 3
        assert not {ids[i] for i in positions} & tokenizer.special_ids
    # 40 draws of 3 from 5 tokens reach every one of them: the pool is all but the specials.
    drawn = {i for positions in first.random_positions for i in positions}
    assert drawn == {i for i, t in enumerate(ids) if t not in tokenizer.special_ids}


def one_word_decides(tokenizer: RobertaTokenizer, word_id: int) -> RobertaForSequenceClassification:
    """A one-layer classifier, weights set by hand, that says "positive" exactly when the token
    `word_id` is in the text: only that token's embedding has feature 0; every token attends to
    all evenly (queries and keys zero), so <s> reads the mean of feature 0, and the head
    thresholds it. Every other weight is zero, so no other token can move the verdict."""
    config = RobertaConfig.preset("nano", vocab_size=tokenizer.vocab_size,
                                  max_position_embeddings=66, num_hidden_layers=1,
                                  id2label={0: "negative", 1: "positive"})
    model = RobertaForSequenceClassification(config).eval()
    width = config.hidden_size
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.fill_(1.0 if "LayerNorm.weight" in name else 0.0)
        embeddings = model.roberta.embeddings
        # The same feature 1 at every position keeps each LayerNorm's input off zero, so the
        # word's feature 0 moves its output smoothly (integrated gradients need a slope).
        embeddings.position_embeddings.weight[:, 1] = 1.0
        embeddings.word_embeddings.weight[word_id, 0] = 1.0
        layer = model.roberta.encoder.layer[0]
        layer.attention.self.qkv.weight[2 * width, 0] = 1.0  # the value carries feature 0
        layer.attention.output.dense.weight[0, 0] = 1.0
        # Feature 0 of <s> is -0.25 without the word and above -0.2 with it in a short text.
        model.classifier.dense.weight[0, 0] = 10.0
        model.classifier.dense.bias[0] = 2.0
        model.classifier.out_proj.weight[:, 0] = torch.tensor([-10.0, 10.0])
    return model


def test_a_model_where_one_word_decides_is_judged_faithful(classifier):
    _, tokenizer = classifier
    (good,) = tokenizer.encode_batch_ids([" good"])[0]
    model = one_word_decides(tokenizer, good)
    text = "The film was good and the coffee was slow on Monday."
    without = text.replace(" good", " slow")
    assert classify(model, tokenizer, [text])[0]["positive"] > 0.99
    assert classify(model, tokenizer, [without])[0]["positive"] < 0.01
    for k in (1, 3):
        check = deletion_check(model, tokenizer, text, k=k)
        assert check.label == "positive" and check.probability > 0.99
        assert " good" in check.deleted_top
        assert check.after_top < 0.01  # the one word that decides is gone
        assert check.after_random_mean > 0.5  # most random draws miss it
        assert check.faithful
    assert deletion_check(model, tokenizer, text, k=1).deleted_top == [" good"]


def test_a_text_too_short_or_empty_raises_one_plain_sentence(classifier):
    model, tokenizer = classifier
    with pytest.raises(ValueError, match=r"needs at least 4, so type a longer sentence\.$"):
        deletion_check(model, tokenizer, "The cat.")  # The, cat, "."
    with pytest.raises(ValueError, match="empty"):
        deletion_check(model, tokenizer, "  ")
    with pytest.raises(ValueError, match="at least 1"):
        deletion_check(model, tokenizer, TEXT, k=0)


def test_a_text_longer_than_one_window_says_it_was_not_checked(classifier):
    model, tokenizer = classifier
    check = deletion_check(model, tokenizer, LONG)
    assert not check.checked and not check.faithful and check.after_top is None
    assert "was not checked" in check.not_checked
    assert check.probability == pytest.approx(
        classify(model, tokenizer, [LONG])[0][check.label], abs=1e-6)
    assert deletion_line(check) == check.not_checked


def test_the_line_a_room_reads():
    check = DeletionCheck("positive", 0.97, 3, after_top=0.41, after_random=[0.95] * 10,
                          deleted_top=[" great", " loved", " best"])
    assert deletion_line(check) == (
        "Deleting the 3 most attributed tokens (great, loved, best): positive 97% → 41%. "
        "Deleting 3 random tokens (mean of 10 draws): 97% → 95%. "
        "The highlighted words carried the decision.")
    check.after_top = 0.96
    assert deletion_line(check).endswith("did not carry it: read the colours with care.")
    # Whole percents would print 51% → 51% beside a verdict that one drop was larger.
    check.probability, check.after_top, check.after_random = 0.512, 0.509, [0.511]
    assert "51.2% → 50.9%" in deletion_line(check) and "(one draw): 51.2% → 51.1%" in \
        deletion_line(check)


def test_the_sentiment_tab_shows_the_check_and_never_raises_for_it(tiny_assets, monkeypatch):
    """Integrated gradients run once per Classify: the check reads the display's attributions.
    A text too short or too long to check gets its sentence; the classification stands."""
    from roberta.ui import sentiment_tab
    from roberta.ui.common import markdown_literal

    runs = []

    def counted(*args, **kwargs):
        runs.append(1)
        return token_attributions(*args, **kwargs)

    monkeypatch.setattr(sentiment_tab, "token_attributions", counted)
    monkeypatch.setattr(faithfulness, "token_attributions", None)  # calling it would fail
    _, spans, explanation = sentiment_tab.classify_text(TEXT)
    assert runs == [1] and spans
    assert ("**Faithfulness check.** " + markdown_literal("Deleting the 3 most attributed "
                                                         "tokens (")) in explanation
    assert markdown_literal("random tokens (mean of 10 draws)") in explanation
    probabilities, _, explanation = sentiment_tab.classify_text("The cat.")
    assert set(probabilities) == {"negative", "positive"}
    assert "**Faithfulness check.** The text has 3 tokens" in explanation
    assert "type a longer sentence" in explanation
    _, _, explanation = sentiment_tab.classify_text(LONG)
    assert "this one was not checked" in explanation
