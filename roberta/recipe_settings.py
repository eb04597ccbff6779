"""The bundled recipe's settings (`BundledRecipe`) and what they make: the pretraining text, its
copies and held-out groups, and the pretraining and fine-tuning configs. `recipe.py` runs the
stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import RobertaConfig
from .corpus import (
    IMDB_SOURCE,
    WORDNET_SOURCE,
    pretraining_sources,
)
from .data import _dedupe, split_documents
from .init import STRUCTURED_START, initialise_
from .model import RobertaForMaskedLM
from .probes import (
    EVERYDAY_PROBES,
)
from .recipe_everyday import (
    PretrainingPool,
    phase_two_pool,
)
from .sentiment_protocol import (
    DEFAULT_CAP,
    DEFAULT_MAX_COPIES,
    DEFAULT_VALIDATION_FRACTION,
)
from .tokenizer import RobertaTokenizer
from .training.config import FINETUNE_DROPOUT, HOLD_WHOLE_RUN, FinetuneConfig, PretrainConfig


@dataclass
class BundledRecipe:
    seed: int = 0
    vocab_size: int = 8192  # 6,144 left "cheese", "salt", "medal" as two tokens: unguessable
    seq_length: int = 256  # most IMDB reviews fit whole (median ~230 tokens)
    # Sized for a 2-core CPU (~95 minutes of pretraining on 2 threads with native bf16) and for
    # assets/ (<= 20 MB for both models, no file over 10 MB): 4.35M parameters, 8.7 MB in fp16.
    model: dict = field(default_factory=lambda: dict(
        num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=512))
    # No dropout while pretraining: ~2.6 passes over the text leave the model under-trained, not
    # over-fitted, and dropout only slows it (as in Geiping & Goldstein 2023, "Cramming").
    # Fine-tuning on ~45k reviews for the better part of an epoch puts it back.
    pretrain_dropout: float = 0.0
    # Copies of each training document, by source (held-out documents are never copied): IMDB
    # is two thirds of the words, so the model learnt reviews and answered "She opened the
    # <mask>" with "cat / price". bench/source_balance.py measured x4 on the other sources at
    # 2,500 steps: +3.2 points <mask>-only on their held-out text, -1.1 on IMDB's, +2 probes.
    # WordNet (definitions and one-line usage examples) only twice: it is dictionary prose.
    source_repeats: dict = field(default_factory=lambda: {IMDB_SOURCE: 1, WORDNET_SOURCE: 2})
    other_sources_repeat: int = 4
    finetune_dropout: float = FINETUNE_DROPOUT
    pretrain_steps: int = 14000
    pretrain_batch: int = 16
    pretrain_lr: float | None = None  # None: for the width, default_learning_rate(256) = 1e-3
    pretrain_warmup: int | None = None  # None: default_warmup(14000) = 150
    pretrain_min_lr_ratio: float = 0.1
    init: str = STRUCTURED_START  # roberta/init.py: past the masked-LM plateau from step 0
    hold_positions_steps: int = HOLD_WHOLE_RUN
    # The classifier (roberta/recipe_sentiment.py): every training domain's training side in
    # one balanced mix (13,061 rows at seed 0), about three passes at batch 32.
    finetune_steps: int = 1200
    finetune_batch: int = FinetuneConfig.batch_size
    finetune_lr: float = FinetuneConfig.learning_rate
    finetune_warmup: int = 100
    finetune_validation: float = DEFAULT_VALIDATION_FRACTION  # per domain, picks the best step
    finetune_cap: int = DEFAULT_CAP  # training texts per domain at most (IMDB has ~47,000)
    finetune_max_copies: int = DEFAULT_MAX_COPIES  # a small domain's copies at most
    # Temperature scaling on the validation texts, folded into the head's last layer: decisions
    # unchanged, probabilities calibrated (a two-class model's only way to say "neutral").
    finetune_calibrate: bool = True
    finetune_group_by_length: bool = True  # batches of like length (FinetuneConfig's)
    # Checkpoints for --resume (a few minutes apart on a 2-core CPU); they never change a weight.
    pretrain_checkpoint_every: int = 500
    finetune_checkpoint_every: int = 100
    # For tests: at most this many documents per source, reviews per split and examples per
    # out-of-domain set (0: everything).
    subsample: int = 0
    # Phase 2 (roberta/recipe_everyday.py): phase 1's model continued on everyday English beside
    # phase 1's own text; 0 steps skips it, and 0 is what ships. bench/everyday_ab.py, 400 steps
    # from the shipped phase-1 model: ten copies (44% of phase 2's words) took the daily-life
    # probes from 8 to 11 of 72 and held-out everyday text from 25.7% to 29.9% at <mask>; a
    # 16,384-token vocabulary did worse on every figure. The full 4,000 steps (`--stage everyday
    # --everyday-steps 4000`, 69 min here) ended at 9 of 72 daily-life probes and 15 of the
    # card's 31 (phase 1: 8 and 18): 2.5M words of chat do not teach daily life; not shipped.
    everyday_steps: int = 0
    everyday_lr: float = 5e-4  # half phase 1's peak: the model is trained, not new
    everyday_warmup: int = 200
    everyday_repeat: int = 10  # copies of each everyday training document in phase 2's pool
    everyday_vocab_size: int | None = None  # None: keep phase 1's vocabulary


def _first(items: list, recipe: BundledRecipe) -> list:
    return items[:recipe.subsample] if recipe.subsample else items


def pretraining_text(recipe: BundledRecipe) -> tuple[dict[str, list[str]], list[str]]:
    """(documents by source, all documents with exact duplicates dropped)."""
    sources = {name: _first(texts, recipe)
               for name, texts in pretraining_sources(recipe.seed).items()}
    return sources, _dedupe(t for source in sources.values() for t in source)


def document_repeats(sources: dict[str, list[str]], recipe: BundledRecipe) -> dict[str, int]:
    """Copies of each document (a text in two sources gets its first source's count)."""
    repeats: dict[str, int] = {}
    for name, texts in sources.items():
        copies = recipe.source_repeats.get(name, recipe.other_sources_repeat)
        for text in texts:
            repeats.setdefault(text, copies)
    return repeats


def phase_one_pool(recipe: BundledRecipe) -> PretrainingPool:
    """Phase 1's text as prepare_pretraining_data splits and copies it."""
    sources, texts = pretraining_text(recipe)
    repeats = document_repeats(sources, recipe)
    train, _ = split_documents(texts, PretrainConfig.validation_fraction, recipe.seed)
    return PretrainingPool(
        sources, {name: recipe.source_repeats.get(name, recipe.other_sources_repeat)
                  for name in sources}, (), train, {d: repeats[d] for d in train},
        held_out_groups(sources, texts, recipe))


def shipped_pool(recipe: BundledRecipe) -> PretrainingPool:
    """The text the shipped masked LM last pretrained on, and the held-out groups its card
    reports: phase 2's where the recipe has one."""
    pool = phase_one_pool(recipe)
    return phase_two_pool(recipe, pool) if recipe.everyday_steps else pool


def pretrain_config(recipe: BundledRecipe, device: str) -> PretrainConfig:
    return PretrainConfig(
        max_steps=recipe.pretrain_steps, batch_size=recipe.pretrain_batch,
        learning_rate=recipe.pretrain_lr, warmup_steps=recipe.pretrain_warmup,
        min_lr_ratio=recipe.pretrain_min_lr_ratio, eval_every=max(1, recipe.pretrain_steps // 12),
        seq_length=recipe.seq_length,
        device=device, seed=recipe.seed, probes=tuple(EVERYDAY_PROBES)[:8], eval_sequences=512,
        hold_positions_steps=PretrainConfig.hold_for(recipe.init, recipe.hold_positions_steps))


def finetune_config(recipe: BundledRecipe, device: str) -> FinetuneConfig:
    return FinetuneConfig(
        max_steps=recipe.finetune_steps, batch_size=recipe.finetune_batch,
        learning_rate=recipe.finetune_lr, warmup_steps=recipe.finetune_warmup,
        eval_every=max(1, recipe.finetune_steps // 10), seq_length=recipe.seq_length,
        validation_fraction=recipe.finetune_validation,
        group_by_length=recipe.finetune_group_by_length, device=device, seed=recipe.seed)


def new_masked_lm(recipe: BundledRecipe, tokenizer: RobertaTokenizer) -> RobertaForMaskedLM:
    """The recipe's masked LM before pretraining: its shape, no dropout, its start, its seed."""
    config = RobertaConfig(**recipe.model, vocab_size=tokenizer.vocab_size,
                           max_position_embeddings=recipe.seq_length + 2,
                           hidden_dropout_prob=recipe.pretrain_dropout,
                           attention_probs_dropout_prob=recipe.pretrain_dropout)
    torch.manual_seed(recipe.seed)
    model = RobertaForMaskedLM(config)
    initialise_(model, recipe.init)
    return model


def held_out_groups(sources: dict[str, list[str]], texts: list[str],
                    recipe: BundledRecipe) -> dict[str, list[str]]:
    """The masked LM's held-out documents (the split prepare_pretraining_data makes), IMDB's and
    the other sources' apart — a gain on one may cost the other."""
    _, held_out = split_documents(texts, PretrainConfig.validation_fraction, recipe.seed)
    imdb = set(sources[IMDB_SOURCE])
    return {"IMDB reviews": [d for d in held_out if d in imdb],
            "the other sources": [d for d in held_out if d not in imdb]}
