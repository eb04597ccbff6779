"""Did the highlighted tokens carry the decision? A deletion check of token attributions.

The rule (after the deletion tests of Samek et al. 2017 and DeYoung et al.'s ERASER, 2020):
delete the k tokens with the highest attribution towards the predicted class and read that
class's probability again; do the same for k tokens drawn at random, several seeded draws,
averaged. The attribution is *faithful* when the top-k deletion lowers the probability more than
the random deletions do on average.

"Delete" means: the token ids at those positions are removed from the input the model reads
(`<s> … </s>`), and the tokens after them move up one position each. Nothing is replaced (not by
<mask>, not by <pad>: both are tokens the model reads, and <pad> at a non-pad position is not
what "the text without that word" means) and nothing is re-encoded (re-encoding the shortened
string could merge the pieces on either side of a gap into other tokens, and then more than k
tokens would have changed). Only those positions go: a word that occurs twice keeps its other
occurrence. The shortened ids are read exactly as classify() reads a text that fits one window:
one row, padded in a batch with the others, through `window_logits`.

The check runs on texts that fit in one window of the model. A longer text is averaged over
several windows, where deleting k tokens shifts every window boundary after them and tells little
about k tokens among hundreds: such a text gets a result that says it was not checked, never a
figure read some other way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .inference import (
    classify,
    encode_whole,
    padded,
    token_attributions,
    window_logits,
)
from .model import RobertaForSequenceClassification
from .tokenizer import RobertaTokenizer

RANDOM_DRAWS = 10  # random deletions averaged: one unlucky draw does not decide


@dataclass
class DeletionCheck:
    """The predicted class's probability on the whole text, after deleting the k most attributed
    tokens, and after deleting k random tokens (each draw's, and their mean)."""

    label: str  # the class checked: the one the attributions point towards (the predicted one)
    probability: float  # of `label`, on the whole text
    k: int
    after_top: float | None = None  # None when the check was not run (see `not_checked`)
    after_random: list[float] = field(default_factory=list)  # one per random draw
    deleted_top: list[str] = field(default_factory=list)  # as a person reads them, in text order
    deleted_random: list[list[str]] = field(default_factory=list)  # each draw's
    top_positions: list[int] = field(default_factory=list)  # in the encoding, <s> at 0
    random_positions: list[list[int]] = field(default_factory=list)  # each draw's
    not_checked: str | None = None  # one sentence saying why, for a text longer than one window

    @property
    def checked(self) -> bool:
        return self.not_checked is None

    @property
    def after_random_mean(self) -> float | None:
        return sum(self.after_random) / len(self.after_random) if self.after_random else None

    @property
    def faithful(self) -> bool:
        """The top-k deletion lowered the probability more than the random deletions' mean
        (False when the check was not run: nothing was shown to be carried)."""
        return self.checked and self.after_top < self.after_random_mean


def deletable_positions(tokenizer: RobertaTokenizer, ids: list[int]) -> list[int]:
    """Positions in `ids` (an encoding with <s> and </s>) that may be deleted: every token but
    the specials (<s>, </s>, and a <mask> typed in the text), the same pool for the top-k and the
    random draws, so the two deletions differ only in which tokens they take."""
    special = tokenizer.special_ids
    return [i for i, token_id in enumerate(ids) if token_id not in special]


def without_positions(ids: list[int], positions: list[int]) -> list[int]:
    """`ids` with the tokens at `positions` removed: the rest keep their order and close up."""
    gone = set(positions)
    return [token_id for i, token_id in enumerate(ids) if i not in gone]


def deletion_check(model: RobertaForSequenceClassification, tokenizer: RobertaTokenizer,
                   text: str, k: int = 3, seed: int = 0, random_draws: int = RANDOM_DRAWS,
                   attributions: tuple[list[str], list[float], int] | None = None,
                   probabilities: dict[str, float] | None = None) -> DeletionCheck:
    """The deletion check of `text`'s attributions (see the module's docstring for the rule).

    `attributions` is token_attributions()'s answer for this text, reused so integrated
    gradients run once for a display and its check; without it they are computed here.
    `probabilities` (classify()'s for this text) is read only for a text too long to check,
    which then needs no forward pass of its own.

    The top k are the k deletable tokens with the highest attribution towards the attributions'
    target class, the predicted one (ties: the earlier token); each random draw takes k distinct
    deletable tokens from `random.Random(seed)`, so the same seed gives the same draws. A text
    with fewer than k + 1 deletable tokens raises ValueError: deleting k would leave nothing to
    read."""
    if k < 1 or random_draws < 1:
        raise ValueError(f"k and random_draws must be at least 1, got {k} and {random_draws}")
    encoding = encode_whole(tokenizer, text)  # the plain error for an empty text
    ids = encoding.ids
    names = model.config.id2label
    if len(ids) > model.config.max_sequence_length:
        probabilities = probabilities or classify(model, tokenizer, [text])[0]
        label = (names[attributions[2]] if attributions is not None
                 else max(probabilities, key=probabilities.get))
        return DeletionCheck(label, probabilities[label], k, not_checked=(
            f"The text is {len(ids) - 2:,} tokens long and the model reads "
            f"{model.config.max_sequence_length - 2:,} at a time: the deletion check runs on "
            f"texts that fit in one reading, so this one was not checked."))
    pool = deletable_positions(tokenizer, ids)
    if len(pool) < k + 1:
        raise ValueError(f"The text has {len(pool)} tokens and the deletion check removes {k}: "
                         f"it needs at least {k + 1}, so type a longer sentence.")
    if attributions is None:
        attributions = token_attributions(model, tokenizer, text)
    _, scores, target = attributions
    if len(scores) != len(ids):
        raise ValueError(f"The attributions cover {len(scores)} tokens and the text has "
                         f"{len(ids)}: they were computed for another text.")
    # sorted() is stable: among equal scores the earlier token comes first.
    top = sorted(sorted(pool, key=lambda i: scores[i], reverse=True)[:k])
    draws = random.Random(seed)
    random_sets = [sorted(draws.sample(pool, k)) for _ in range(random_draws)]
    rows = [ids, without_positions(ids, top), *(without_positions(ids, s) for s in random_sets)]
    logits = window_logits(model, padded(rows, tokenizer.pad_token_id))
    of_target = logits.softmax(-1)[:, target].tolist()

    def shown(positions: list[int]) -> list[str]:
        return [tokenizer.token_display(encoding.tokens[i]) for i in positions]

    return DeletionCheck(names[target], of_target[0], k, after_top=of_target[1],
                         after_random=of_target[2:], deleted_top=shown(top),
                         deleted_random=[shown(s) for s in random_sets],
                         top_positions=top, random_positions=random_sets)


def deletion_line(check: DeletionCheck) -> str:
    """The check as sentences a room can read: "Deleting the 3 most attributed tokens (…):
    positive 97% → 41%. Deleting 3 random tokens (mean of 10 draws): 97% → 95%. …" (plain text;
    the caller escapes it for Markdown)."""
    if not check.checked:
        return check.not_checked
    words = ", ".join(t.strip() or repr(t) for t in check.deleted_top)
    plural = "s" if check.k > 1 else ""
    draws = (f"mean of {len(check.after_random)} draws" if len(check.after_random) > 1
             else "one draw")
    verdict = ("The highlighted words carried the decision." if check.faithful else
               "The highlighted words did not carry it: read the colours with care.")
    return (f"Deleting the {check.k} most attributed token{plural} ({words}): {check.label} "
            f"{change(check.probability, check.after_top)}. Deleting {check.k} random "
            f"token{plural} ({draws}): {change(check.probability, check.after_random_mean)}. "
            f"{verdict}")


def change(before: float, after: float) -> str:
    """"97% → 41%": whole percents, or one or two decimals where whole ones would print a
    change as none (51.2% → 50.9%, not 51% → 51% beside a verdict that one was larger)."""
    for digits in (0, 1, 2):
        shown = f"{before:.{digits}%} → {after:.{digits}%}"
        if f"{before:.{digits}%}" != f"{after:.{digits}%}":
            break
    return shown
