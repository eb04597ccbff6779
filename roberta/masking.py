"""RoBERTa's masked-language-model masking, with a record of what was done to every token.

RoBERTa's first change to BERT is *dynamic* masking: a fresh mask every time a sequence is fed
to the model, instead of BERT's *static* masks fixed once at preprocessing (which the paper
approximates by duplicating the data 10 times with 10 different masks). Both are here, so the
app can show them side by side, together with whole-word masking.

How a mask is drawn (as in fairseq's ``MaskTokensDataset``, which RoBERTa was trained with):

1. **Maskable positions** are real tokens that are not special: ``<s>``, ``</s>``, ``<pad>``,
   ``<mask>`` (and any other id in ``special_ids``) and padding positions are never chosen.
2. **Choice**: in each sequence with ``n`` maskable units, ``k = floor(p * n + u)`` units are
   chosen uniformly without replacement, with ``u ~ U[0, 1)`` (stochastic rounding: exactly
   ``p * n`` on average, and short sequences still get masked sometimes). A unit is a token, or
   with ``whole_word=True`` a whole word, so every token is chosen with probability ``p``.
3. **Treatment**, decided independently for every chosen *token* (also in whole-word mode, as in
   Google's BERT and fairseq): ``<mask>`` with probability ``mask_fraction`` (0.8), a random
   non-special token with ``random_fraction`` (0.1), otherwise left unchanged (0.1). The random
   token may by chance equal the original one.

:func:`mask_tokens` is a pure function: it returns new tensors and never writes into its input.
(The seed tutorial masked in place, so a stored dataset accumulated masks epoch after epoch.)
All randomness comes from the ``torch.Generator`` passed in, drawn in a fixed order, so the same
generator state gives the same mask. Random numbers are drawn on the generator's device and moved
to the tokens' device, so a CPU generator gives identical masks for CPU and CUDA batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

import torch

from .model import IGNORE_INDEX  # one definition: the label the model's loss skips
from .settings import SettingError, check, setting

__all__ = [
    "IGNORE_INDEX",
    "KEPT",
    "MASKED",
    "NOT_CHOSEN",
    "RANDOM",
    "DynamicMasker",
    "MaskAction",
    "MaskedBatch",
    "MaskingConfig",
    "StaticMaskedDataset",
    "mask_statistics",
    "mask_tokens",
    "maskable_positions",
]



class MaskAction(IntEnum):
    """What happened to a token; the values are the codes stored in ``MaskedBatch.record``."""

    NOT_CHOSEN = 0
    MASKED = 1  # replaced by <mask>
    RANDOM = 2  # replaced by a random token
    KEPT = 3  # chosen (the model must predict it) but left unchanged


NOT_CHOSEN, MASKED, RANDOM, KEPT = (int(a) for a in MaskAction)


@dataclass(frozen=True)
class MaskingConfig:
    """How much to mask and what to do with the chosen tokens."""

    mlm_probability: float = setting(0.15, "the masking rate", minimum=0, above=True,
                                     maximum=1, below=True, flag="--mask-rate")
    mask_fraction: float = setting(0.8, "the <mask> share", minimum=0, maximum=1,
                                   flag="--mask-fraction", help="of chosen: -> <mask>")
    random_fraction: float = setting(0.1, "the random-token share", minimum=0, maximum=1,
                                     flag="--random-fraction", help="of chosen: -> random")
    whole_word: bool = False

    def __post_init__(self) -> None:
        check(self)
        if self.mask_fraction + self.random_fraction > 1.0 + 1e-9:
            raise SettingError("{mask_fraction} + {random_fraction} must add up to at most 1, "
                               "not {sum}", sum=f"{self.mask_fraction} + {self.random_fraction}")

    @property
    def keep_fraction(self) -> float:
        return max(0.0, 1.0 - self.mask_fraction - self.random_fraction)


@dataclass
class MaskedBatch:
    """The model's input and targets for one batch, and optionally what was done where."""

    input_ids: torch.Tensor  # (B, T) with <mask> / random tokens substituted
    labels: torch.Tensor  # (B, T) original id where chosen, IGNORE_INDEX elsewhere
    record: torch.Tensor | None = None  # (B, T) MaskAction codes


def _special_tensor(special_ids: Iterable[int], mask_token_id: int, device) -> torch.Tensor:
    ids = sorted({int(i) for i in special_ids} | {int(mask_token_id)})
    return torch.tensor(ids, dtype=torch.long, device=device)


def maskable_positions(
    input_ids: torch.Tensor,
    special_ids: Iterable[int],
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """BoolTensor, True where a token may be chosen: not a special id and not padding."""
    specials = torch.tensor(sorted({int(i) for i in special_ids}), device=input_ids.device)
    allowed = ~torch.isin(input_ids, specials)
    if attention_mask is not None:
        allowed &= attention_mask.to(input_ids.device).bool()
    return allowed


def _rank_within_rows(scores: torch.Tensor) -> torch.Tensor:
    """0 for the smallest score of each row, 1 for the next, ..."""
    order = scores.argsort(dim=-1)
    ranks = torch.empty_like(order)
    positions = torch.arange(scores.shape[-1], device=scores.device).expand_as(order)
    return ranks.scatter_(-1, order, positions)


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int],
    config: MaskingConfig | None = None,
    generator: torch.Generator,
    attention_mask: torch.Tensor | None = None,
    word_start: torch.Tensor | None = None,
    return_record: bool = False,
) -> MaskedBatch:
    """Choose and corrupt tokens for MLM; see the module docstring for the method.

    ``input_ids`` is (B, T) or (T,) of token ids and is never modified. ``special_ids`` are
    never chosen nor drawn as random replacements (``mask_token_id`` is always added to them).
    ``word_start`` (BoolTensor over the vocabulary, needed for ``config.whole_word``) marks the
    tokens that begin a word; a word is such a token plus the continuation tokens after it. A
    maskable token right after a special or padding position also begins a word, since the first
    word of a text has no leading space in byte-level BPE.
    """
    config = config or MaskingConfig()
    if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer token ids, not {input_ids.dtype}")
    squeeze = input_ids.dim() == 1
    ids = input_ids.unsqueeze(0) if squeeze else input_ids
    if ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, seq) or (seq,), not {tuple(input_ids.shape)}")
    if attention_mask is not None:
        attention_mask = attention_mask.reshape(ids.shape)
    device, rng_device = ids.device, generator.device
    specials = _special_tensor(special_ids, mask_token_id, device)
    if vocab_size <= len(specials):
        raise ValueError(f"vocab_size {vocab_size} leaves no ordinary tokens to draw at random")

    maskable = maskable_positions(ids, specials.tolist(), attention_mask)

    # A unit of masking begins at every maskable token (sub-word masking), or only where a word
    # begins (whole-word masking).
    if config.whole_word:
        if word_start is None:
            raise ValueError("whole-word masking needs word_start, a BoolTensor over the vocab")
        if word_start.shape != (vocab_size,):
            raise ValueError(
                f"word_start must have shape ({vocab_size},), not {tuple(word_start.shape)}"
            )
        starts_word = word_start.to(device=device, dtype=torch.bool)[ids]
        after_gap = torch.ones_like(maskable)
        after_gap[:, 1:] = ~maskable[:, :-1]
        unit_start = maskable & (starts_word | after_gap)
    else:
        unit_start = maskable

    # Random numbers, always drawn in this order and shape so a generator state fixes the mask.
    shape = ids.shape
    unit_scores = torch.rand(shape, generator=generator, device=rng_device).to(device)
    rounding = torch.rand(shape[:1], generator=generator, device=rng_device).to(device)
    treatment = torch.rand(shape, generator=generator, device=rng_device).to(device)
    ordinary = torch.arange(vocab_size, device=device)
    ordinary = ordinary[~torch.isin(ordinary, specials)]
    replacement_index = torch.randint(
        len(ordinary), shape, generator=generator, device=rng_device
    ).to(device)

    # Choose k = floor(p * n + u) units per row: the k unit starts with the smallest scores.
    n_units = unit_start.sum(dim=1)
    k = torch.floor(config.mlm_probability * n_units + rounding).long()
    ranks = _rank_within_rows(torch.where(unit_start, unit_scores, 2.0))
    chosen_start = unit_start & (ranks < k[:, None])
    if config.whole_word:  # spread each word's choice over its continuation tokens
        positions = torch.arange(shape[1], device=device).expand(shape)
        word_begin = torch.where(unit_start, positions, 0).cummax(dim=1).values
        chosen = maskable & chosen_start.gather(1, word_begin)
    else:
        chosen = chosen_start

    masked = chosen & (treatment < config.mask_fraction)
    randomised = chosen & ~masked & (treatment < config.mask_fraction + config.random_fraction)
    kept = chosen & ~masked & ~randomised

    new_ids = ids.clone()
    new_ids[masked] = mask_token_id
    new_ids[randomised] = ordinary[replacement_index[randomised]].to(ids.dtype)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))

    record = None
    if return_record:
        record = torch.zeros(shape, dtype=torch.long, device=device)
        record[masked] = MASKED
        record[randomised] = RANDOM
        record[kept] = KEPT
    if squeeze:
        new_ids, labels = new_ids[0], labels[0]
        record = None if record is None else record[0]
    return MaskedBatch(new_ids, labels, record)


class DynamicMasker:
    """Dynamic masking: a fresh mask on every call, from the masker's own seeded generator.

    ``state_dict()`` / ``load_state_dict()`` save and restore the generator so that a resumed
    training run draws exactly the masks it would have drawn.
    """

    def __init__(
        self,
        *,
        mask_token_id: int,
        vocab_size: int,
        special_ids: Iterable[int],
        config: MaskingConfig | None = None,
        seed: int = 0,
        word_start: torch.Tensor | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.mask_token_id = int(mask_token_id)
        self.vocab_size = int(vocab_size)
        self.special_ids = tuple(sorted({int(i) for i in special_ids} | {self.mask_token_id}))
        self.config = config or MaskingConfig()
        self.word_start = word_start
        if self.config.whole_word and word_start is None:
            raise ValueError("whole-word masking needs word_start, a BoolTensor over the vocab")
        self.seed = int(seed)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(self.seed)

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        return_record: bool = False,
    ) -> MaskedBatch:
        return mask_tokens(
            input_ids,
            mask_token_id=self.mask_token_id,
            vocab_size=self.vocab_size,
            special_ids=self.special_ids,
            config=self.config,
            generator=self.generator,
            attention_mask=attention_mask,
            word_start=self.word_start,
            return_record=return_record,
        )

    def state_dict(self) -> dict:
        return {"seed": self.seed, "generator_state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.generator.set_state(state["generator_state"])


class StaticMaskedDataset:
    """The paper's static baseline: ``n_copies`` masks per sequence, drawn once, up front.

    Epoch ``e`` sees copy ``e % n_copies``, so the masks repeat every ``n_copies`` epochs (the
    paper: 10 copies over 40 epochs, each mask seen 4 times). Ids and labels are stored as int32
    and the record as int8 to keep ``n_copies`` copies of a corpus in memory affordable.
    """

    def __init__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        n_copies: int = 10,
        mask_token_id: int,
        vocab_size: int,
        special_ids: Iterable[int],
        config: MaskingConfig | None = None,
        seed: int = 0,
        word_start: torch.Tensor | None = None,
    ) -> None:
        if n_copies < 1:
            raise ValueError(f"n_copies must be at least 1, not {n_copies}")
        if input_ids.dim() != 2:
            raise ValueError(
                f"input_ids must be (sequences, seq_len), not {tuple(input_ids.shape)}"
            )
        self.attention_mask = attention_mask
        self.n_copies = n_copies
        small = torch.int32 if vocab_size <= torch.iinfo(torch.int32).max else torch.long
        masker = DynamicMasker(
            mask_token_id=mask_token_id,
            vocab_size=vocab_size,
            special_ids=special_ids,
            config=config,
            seed=seed,
            word_start=word_start,
        )
        copies = [masker(input_ids, attention_mask, return_record=True) for _ in range(n_copies)]
        self._ids = torch.stack([c.input_ids.to(small) for c in copies])  # (C, N, T)
        self._labels = torch.stack([c.labels.to(small) for c in copies])
        self._records = torch.stack([c.record.to(torch.int8) for c in copies])

    def __len__(self) -> int:
        return self._ids.shape[1]

    def batch(self, indices, epoch: int, return_record: bool = False) -> MaskedBatch:
        """Sequences ``indices`` (an index tensor, list or slice) as masked for ``epoch``."""
        copy = epoch % self.n_copies
        record = self._records[copy, indices].long() if return_record else None
        return MaskedBatch(
            self._ids[copy, indices].long(), self._labels[copy, indices].long(), record
        )

    def epoch(self, epoch: int, return_record: bool = False) -> MaskedBatch:
        """Every sequence as masked for ``epoch``."""
        return self.batch(slice(None), epoch, return_record)


def mask_statistics(
    record: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> dict[str, float]:
    """Counts and fractions of what a mask did.

    ``chosen_fraction`` is chosen / tokens, where tokens are the positions where
    ``attention_mask`` is nonzero (all positions if None); pass
    :func:`maskable_positions` as the mask to measure the rate among maskable tokens only.
    ``masked_fraction``, ``random_fraction`` and ``kept_fraction`` are shares of the chosen.
    """
    counted = (
        torch.ones_like(record, dtype=torch.bool)
        if attention_mask is None
        else attention_mask.to(record.device).bool()
    )
    tokens = int(counted.sum())
    chosen = int(((record != NOT_CHOSEN) & counted).sum())
    counts = {
        name: int(((record == code) & counted).sum())
        for name, code in (("masked", MASKED), ("random", RANDOM), ("kept", KEPT))
    }
    return {
        "tokens": tokens,
        "chosen": chosen,
        **counts,
        "chosen_fraction": chosen / tokens if tokens else 0.0,
        **{f"{name}_fraction": (n / chosen if chosen else 0.0) for name, n in counts.items()},
    }
