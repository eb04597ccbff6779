"""Head roles (roberta/viz/head_roles.py): heads built to have each role are labelled with it
and nothing else; the structured start's layer-1 heads 1 and 2 are previous and next."""

from __future__ import annotations

import pytest
import torch

from roberta import RobertaConfig, RobertaForMaskedLM
from roberta.init import structured_init_
from roberta.tokenizer import RobertaTokenizer
from roberta.viz.head_roles import MIXED, OFF, ROLES, combine, head_roles, role_scores

TOKENS = ["<s>", " the", " cat", ",", " the", " dog", " ran", ".", "</s>"]
T = len(TOKENS)


def built_head(role: str) -> torch.Tensor:
    """(T, T) attention of a head that does exactly `role`."""
    a = torch.zeros(T, T)
    rows = torch.arange(T)
    if role == "previous":
        a[rows[1:], rows[:-1]] = 1
        a[0, 1] = 1  # the first token has no previous one: it looks ahead
    elif role == "next":
        a[rows[:-1], rows[1:]] = 1
        a[-1, -2] = 1
    elif role == "self":
        a[rows, rows] = 1
    elif role == "first":
        a[:, 0] = 1
    elif role == "last":
        a[:, -1] = 1
    elif role == "punctuation":
        a[:, [3, 7]] = 0.5
    elif role == "broad":
        a[:] = 1 / T
    return a


@pytest.mark.parametrize("role", ROLES)
def test_a_head_built_for_a_role_is_labelled_with_it_alone(role):
    other = "self" if role != "self" else "first"
    attentions = torch.stack([built_head(role), built_head(other)])[None]  # (1, 2, T, T)
    roles = combine([(attentions, TOKENS)])
    assert roles.labels == [[role, other]]
    assert roles.scores[role][0, 0] > 0.9
    for name in ROLES:  # no other role passes for that head: nothing else could label it
        if name != role:
            assert roles.scores[name][0, 0] < 0.5, name


def test_a_head_that_splits_its_attention_is_mixed_and_a_silent_one_off():
    mixed = 0.4 * built_head("previous") + 0.4 * built_head("first") + 0.2 * built_head("next")
    roles = combine([(torch.stack([mixed, torch.zeros(T, T)])[None], TOKENS)])
    assert roles.labels == [[MIXED, OFF]]
    assert roles.count()[MIXED] == 1 and roles.count()[OFF] == 1


def test_scores_are_means_over_queries_in_zero_to_one():
    torch.manual_seed(0)
    attentions = torch.rand(2, 3, T, T).softmax(-1)
    scores = role_scores(attentions, TOKENS)
    for name, score in scores.items():
        assert score.shape == (2, 3) and bool(((score >= 0) & (score <= 1)).all()), name
    rows = torch.arange(T)
    assert scores["previous"][1, 2] == pytest.approx(
        float(attentions[1, 2, rows[1:], rows[:-1]].mean()))
    with pytest.raises(ValueError, match="at least one token"):
        role_scores(attentions[..., :2, :2], TOKENS[:2])


def test_the_structured_starts_first_heads_are_previous_and_next(tiny_assets):
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig.preset("micro", vocab_size=tokenizer.vocab_size,
                                                    max_position_embeddings=66)).eval()
    structured_init_(model)
    roles = head_roles(model, tokenizer)
    assert roles.labels[0][:2] == ["previous", "next"]
    off = torch.ones(model.config.num_hidden_layers, model.config.num_attention_heads)
    off[0, 0] = 0
    assert head_roles(model, tokenizer, head_mask=off).labels[0][0] == OFF
