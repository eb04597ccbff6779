"""The roles attention heads take on: a score in [0, 1] per head and role, and a label.

A head's role is read from where its attention goes on a fixed set of everyday sentences
(`ROLE_SENTENCES`, the same for every model, so two models or two steps of one run compare):

- previous / next / self: the mean weight a token gives the token just before it / just after
  it / itself (the first token has no previous one, the last no next one);
- first: the mean weight on `<s>`, where many trained heads park attention they do not need
  (the "attention sink"); last: the same on `</s>`;
- punctuation: the mean share of attention on punctuation tokens (",", ".", "!"...), over
  sentences that have some;
- broad: the entropy of a token's weights over the keys divided by its largest value, log T
  (1 = spread evenly over every token).

A head is labelled with the role whose score is highest among those passing `THRESHOLDS`: more
than half of its attention for the six that say where attention goes, 0.9 for broad. A head
passing none is "mixed"; a switched-off head (all weights 0) is "off".
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import torch

ROLES = ("previous", "next", "self", "first", "last", "punctuation", "broad")
THRESHOLDS = {"previous": 0.5, "next": 0.5, "self": 0.5, "first": 0.5, "last": 0.5,
              "punctuation": 0.5, "broad": 0.9}
MIXED, OFF = "mixed", "off"

# Written for this module, plain everyday English with punctuation in each.
ROLE_SENTENCES = (
    "I drink a cup of coffee every morning, before work.",
    "The bus was late again, so we walked home in the rain.",
    "She opened the window and let the cat in.",
    "My brother cooks dinner on Sundays; we wash the dishes.",
    "The doctor said I should sleep more and eat less sugar.",
    "Is the shop open today? I need bread, milk and eggs.",
    "After school, the children played football in the park.",
    "It was cold outside, but the kitchen was warm.",
)


def _is_punctuation(token: str) -> bool:
    text = token.strip()
    return bool(text) and all(c in string.punctuation for c in text)


def role_scores(attentions: torch.Tensor, tokens: list[str]) -> dict[str, torch.Tensor]:
    """Every role's score for every head on one sentence: attentions (L, nh, T, T) of that
    sentence (rows = queries) with `tokens` its tokens, <s> first and </s> last. Each score is
    (L, nh); punctuation is NaN where the sentence has none."""
    a = attentions.detach().float().cpu()
    T = a.shape[-1]
    if T < 3 or len(tokens) != T:
        raise ValueError(f"need the attentions of a sentence of at least one token between <s> "
                         f"and </s>, with its {T} tokens; got {len(tokens)} tokens")
    rows = torch.arange(T)
    punctuation = torch.tensor([_is_punctuation(t) for t in tokens])
    punctuation[0] = punctuation[-1] = False  # <s> and </s> are their own roles
    entropy = -(a * torch.log(a.clamp_min(1e-12))).sum(-1)  # (L, nh, T)
    return {
        "previous": a[..., rows[1:], rows[:-1]].mean(-1),
        "next": a[..., rows[:-1], rows[1:]].mean(-1),
        "self": a[..., rows, rows].mean(-1),
        "first": a[..., 0].mean(-1),
        "last": a[..., -1].mean(-1),
        "punctuation": (a[..., punctuation].sum(-1).mean(-1) if punctuation.any()
                        else torch.full(a.shape[:2], float("nan"))),
        "broad": (entropy / math.log(T)).mean(-1),
    }


@dataclass
class HeadRoles:
    scores: dict[str, torch.Tensor]  # role -> (L, nh) in [0, 1], averaged over the sentences
    labels: list[list[str]]  # [layer][head]: a role, "mixed" or "off"

    def count(self) -> dict[str, int]:
        """How many heads carry each label (roles in ROLES order, then mixed and off)."""
        flat = [label for row in self.labels for label in row]
        return {role: flat.count(role) for role in (*ROLES, MIXED, OFF)}


def label_heads(scores: dict[str, torch.Tensor], active: torch.Tensor) -> list[list[str]]:
    """The label of each head: `active` (L, nh) bool is False for a switched-off head."""
    L, nh = active.shape
    labels = []
    for layer in range(L):
        row = []
        for head in range(nh):
            passing = {role: float(scores[role][layer, head]) for role in ROLES
                       if float(scores[role][layer, head]) > THRESHOLDS[role]}
            row.append(OFF if not active[layer, head] else
                       max(passing, key=passing.get) if passing else MIXED)
        labels.append(row)
    return labels


def combine(per_sentence: list[tuple[torch.Tensor, list[str]]]) -> HeadRoles:
    """HeadRoles from (attentions, tokens) of several sentences: each score the mean over the
    sentences (punctuation over those that have some)."""
    if not per_sentence:
        raise ValueError("need at least one sentence")
    scores = [role_scores(a, t) for a, t in per_sentence]
    mean = {role: torch.stack([s[role] for s in scores]).nanmean(0) for role in ROLES}
    mean["punctuation"] = torch.nan_to_num(mean["punctuation"], nan=0.0)
    active = torch.stack([a.float().sum(-1).mean(-1) > 0.5 for a, _ in per_sentence]).all(0)
    return HeadRoles(mean, label_heads(mean, active))


def head_roles(model, tokenizer, sentences: tuple[str, ...] = ROLE_SENTENCES,
               head_mask: torch.Tensor | None = None) -> HeadRoles:
    """The roles of every head of `model` (any of our model classes) on `sentences`."""
    from ..inference import attention_maps

    per_sentence = []
    for sentence in sentences:
        result = attention_maps(model, tokenizer, sentence, head_mask=head_mask)
        per_sentence.append((result.attentions, result.tokens))
    return combine(per_sentence)
