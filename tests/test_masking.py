"""Tests for roberta.masking: the statistics and invariants of RoBERTa's MLM masking."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roberta.masking import (
    IGNORE_INDEX,
    KEPT,
    MASKED,
    NOT_CHOSEN,
    RANDOM,
    DynamicMasker,
    MaskAction,
    MaskingConfig,
    StaticMaskedDataset,
    mask_statistics,
    mask_tokens,
    maskable_positions,
)

BOS, PAD, EOS, UNK, MASK = 0, 1, 2, 3, 4
SPECIALS = (BOS, PAD, EOS, UNK, MASK)
VOCAB = 300


def make_batch(batch=64, length=128, seed=0):
    """Random ids framed as <s> … </s> with a random amount of right padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, length), generator=g)
    lengths = torch.randint(3, length + 1, (batch,), generator=g)
    lengths[0] = length  # at least one full row
    positions = torch.arange(length)
    attention = (positions[None, :] < lengths[:, None]).long()
    ids[:, 0] = BOS
    ids[torch.arange(batch), lengths - 1] = EOS
    ids[attention == 0] = PAD
    return ids, attention


def masker(**overrides) -> DynamicMasker:
    options = dict(mask_token_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS, seed=0)
    options.update(overrides)
    return DynamicMasker(**options)


def choosable(ids, attention):
    """Where a mask may fall, worked out position by position without the library: a real
    (attended) token whose id is not special. The invariants must not judge maskable_positions
    with maskable_positions itself."""
    specials = set(SPECIALS)
    rows = [[attended == 1 and token not in specials for token, attended in zip(r, a, strict=True)]
            for r, a in zip(ids.tolist(), attention.tolist(), strict=True)]
    return torch.tensor(rows, dtype=torch.bool, device=ids.device)


def test_maskable_positions_agrees_with_the_position_by_position_rule():
    ids, attention = make_batch(16, 40)
    ids[ids == 7] = UNK
    assert torch.equal(maskable_positions(ids, SPECIALS, attention), choosable(ids, attention))


def check_invariants(ids, attention, out, config):
    """What every mask must satisfy, whatever the draw."""
    record, labels, new = out.record, out.labels, out.input_ids
    chosen = record != NOT_CHOSEN
    allowed = choosable(ids, attention)
    assert not (chosen & ~allowed).any(), "a special or padding position was chosen"
    assert torch.equal(labels, torch.where(chosen, ids, IGNORE_INDEX))
    assert (new[record == MASKED] == MASK).all()
    assert torch.equal(new[record == KEPT], ids[record == KEPT])
    assert torch.equal(new[~chosen], ids[~chosen])
    randoms = new[record == RANDOM]
    assert ((randoms >= 0) & (randoms < VOCAB)).all()
    assert not torch.isin(randoms, torch.tensor(SPECIALS, device=ids.device)).any()
    # k = floor(p * n + u): each row masks the floor or the ceiling of p * n (whole-word mode
    # counts words, so check it in token mode only)
    if not config.whole_word:
        expected = config.mlm_probability * allowed.sum(dim=1).double()
        count = chosen.sum(dim=1).double()
        assert ((count == expected.floor()) | (count == expected.ceil())).all()


# ------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mlm_probability": 0.0}, "mlm_probability"),
        ({"mlm_probability": 1.0}, "mlm_probability"),
        ({"mask_fraction": -0.1}, "mask_fraction"),
        ({"random_fraction": 1.5}, "random_fraction"),
        ({"mask_fraction": 0.9, "random_fraction": 0.2}, "mask_fraction \\+ random_fraction"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MaskingConfig(**kwargs)


def test_codes_are_stable():
    assert [int(a) for a in MaskAction] == [NOT_CHOSEN, MASKED, RANDOM, KEPT] == [0, 1, 2, 3]
    assert MaskingConfig().keep_fraction == pytest.approx(0.1)


# ------------------------------------------------------------------------------------------
# Statistics over many draws
# ------------------------------------------------------------------------------------------


def test_rates_match_the_paper_over_many_draws():
    ids, attention = make_batch()
    m = masker(seed=123)
    allowed = maskable_positions(ids, SPECIALS, attention)
    records = [m(ids, attention, return_record=True).record for _ in range(20)]
    stats = mask_statistics(torch.cat(records), allowed.repeat(20, 1))
    n, chosen = stats["tokens"], stats["chosen"]
    assert n > 60_000
    # binomial standard errors; stochastic rounding makes the chosen count even tighter
    assert abs(stats["chosen_fraction"] - 0.15) < 4 * math.sqrt(0.15 * 0.85 / n)
    for name, p in (("masked", 0.8), ("random", 0.1), ("kept", 0.1)):
        assert abs(stats[f"{name}_fraction"] - p) < 4 * math.sqrt(p * (1 - p) / chosen), name
    assert stats["masked"] + stats["random"] + stats["kept"] == chosen


def test_other_rates_are_respected():
    ids, attention = make_batch()
    config = MaskingConfig(mlm_probability=0.4, mask_fraction=0.5, random_fraction=0.0)
    out = masker(config=config)(ids, attention, return_record=True)
    check_invariants(ids, attention, out, config)
    stats = mask_statistics(out.record, maskable_positions(ids, SPECIALS, attention))
    assert abs(stats["chosen_fraction"] - 0.4) < 0.01
    assert stats["random"] == 0
    assert abs(stats["masked_fraction"] - 0.5) < 0.03


def test_statistics_without_a_mask_count_every_position():
    record = torch.tensor([[0, 1, 1, 2], [3, 0, 0, 0]])
    stats = mask_statistics(record)
    assert stats["tokens"] == 8 and stats["chosen"] == 4
    assert stats["masked_fraction"] == 0.5 and stats["kept_fraction"] == 0.25
    assert mask_statistics(torch.zeros(2, 3, dtype=torch.long))["masked_fraction"] == 0.0


# ------------------------------------------------------------------------------------------
# Invariants
# ------------------------------------------------------------------------------------------


def test_input_is_never_modified():
    ids, attention = make_batch()
    before_ids, before_attention = ids.clone(), attention.clone()
    m = masker()
    for _ in range(3):
        out = m(ids, attention, return_record=True)
        check_invariants(ids, attention, out, m.config)
    assert torch.equal(ids, before_ids) and torch.equal(attention, before_attention)
    assert out.input_ids.data_ptr() != ids.data_ptr()


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 6),
    length=st.integers(3, 40),
    seed=st.integers(0, 10_000),
    p=st.floats(0.01, 0.99),
    mask_fraction=st.floats(0.0, 1.0),
    whole_word=st.booleans(),
)
def test_invariants_hold_for_any_batch(batch, length, seed, p, mask_fraction, whole_word):
    ids, attention = make_batch(batch, length, seed)
    ids[ids == 7] = UNK  # a special in the middle of the text is never chosen either
    config = MaskingConfig(p, mask_fraction, (1 - mask_fraction) / 2, whole_word)
    word_start = torch.arange(VOCAB) % 3 == 0
    out = mask_tokens(
        ids.clone(),
        mask_token_id=MASK,
        vocab_size=VOCAB,
        special_ids=SPECIALS,
        config=config,
        generator=torch.Generator().manual_seed(seed),
        attention_mask=attention,
        word_start=word_start,
        return_record=True,
    )
    check_invariants(ids, attention, out, config)


def test_padding_is_never_chosen_even_if_it_holds_ordinary_ids():
    ids = torch.randint(5, VOCAB, (8, 50))
    attention = torch.ones_like(ids)
    attention[:, 25:] = 0  # padding positions that happen to hold real ids
    m = masker(config=MaskingConfig(mlm_probability=0.9))
    for _ in range(5):
        out = m(ids, attention, return_record=True)
        assert (out.record[:, 25:] == NOT_CHOSEN).all()
        assert (out.labels[:, 25:] == IGNORE_INDEX).all()


def test_existing_mask_tokens_are_never_chosen():
    ids = torch.full((4, 30), MASK)
    ids[:, ::2] = 50
    out = masker(config=MaskingConfig(mlm_probability=0.9))(ids, return_record=True)
    assert (out.record[ids == MASK] == NOT_CHOSEN).all()


def test_one_dimensional_input():
    ids, attention = make_batch(1, 64)
    out = masker()(ids[0], attention[0], return_record=True)
    assert out.input_ids.shape == out.labels.shape == out.record.shape == (64,)


def test_rejects_float_ids_and_missing_word_start():
    with pytest.raises(ValueError, match="integer"):
        masker()(torch.rand(2, 5))
    with pytest.raises(ValueError, match="word_start"):
        masker(config=MaskingConfig(whole_word=True))


# ------------------------------------------------------------------------------------------
# Dynamic vs static, and reproducibility
# ------------------------------------------------------------------------------------------


def test_dynamic_masking_differs_every_epoch_and_is_reproducible():
    ids, attention = make_batch(8, 64)
    first, second = masker(seed=5), masker(seed=5)
    epoch_1 = first(ids, attention, return_record=True)
    epoch_2 = first(ids, attention, return_record=True)
    assert not torch.equal(epoch_1.record, epoch_2.record)
    again_1 = second(ids, attention, return_record=True)
    again_2 = second(ids, attention, return_record=True)
    assert torch.equal(epoch_1.input_ids, again_1.input_ids)
    assert torch.equal(epoch_2.record, again_2.record)
    other = masker(seed=6)(ids, attention, return_record=True)
    assert not torch.equal(other.record, epoch_1.record)


def test_masker_state_dict_resumes_exactly():
    ids, attention = make_batch(8, 64)
    m = masker(seed=9)
    m(ids, attention)
    state = m.state_dict()
    expected = [m(ids, attention).input_ids for _ in range(3)]
    resumed = masker(seed=0)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed(ids, attention).input_ids, e) for e in expected)


def test_mask_tokens_uses_only_the_generator_it_is_given():
    ids, attention = make_batch(4, 32)
    kwargs = dict(
        mask_token_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS, attention_mask=attention
    )
    a = mask_tokens(ids, generator=torch.Generator().manual_seed(1), **kwargs)
    torch.manual_seed(12345)  # the global RNG must not matter
    torch.rand(100)
    b = mask_tokens(ids, generator=torch.Generator().manual_seed(1), **kwargs)
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)


def test_static_masking_repeats_every_n_copies():
    ids, attention = make_batch(16, 64)
    static = StaticMaskedDataset(
        ids,
        attention,
        n_copies=4,
        mask_token_id=MASK,
        vocab_size=VOCAB,
        special_ids=SPECIALS,
        seed=3,
    )
    assert len(static) == 16
    epochs = [static.epoch(e, return_record=True) for e in range(8)]
    for e in range(4):
        assert torch.equal(epochs[e].input_ids, epochs[e + 4].input_ids)
        assert torch.equal(epochs[e].record, epochs[e + 4].record)
        check_invariants(ids, attention, epochs[e], MaskingConfig())
    assert len({tuple(ep.record.flatten().tolist()) for ep in epochs}) == 4
    part = static.batch(torch.tensor([3, 0]), epoch=6, return_record=True)
    assert torch.equal(part.labels, epochs[2].labels[[3, 0]])
    assert part.input_ids.dtype == torch.long
    # the copies are exactly what a dynamic masker with the same seed draws on its first calls
    m = masker(seed=3)
    assert torch.equal(m(ids, attention).input_ids, epochs[0].input_ids)


def test_dynamic_covers_more_tokens_than_static_over_epochs():
    """The point of dynamic masking: over 10 epochs far more positions get to be predicted."""
    ids, attention = make_batch(16, 64)
    static = StaticMaskedDataset(
        ids, attention, n_copies=2, mask_token_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS
    )
    dynamic = masker(seed=1)
    seen_static = torch.zeros_like(ids, dtype=torch.bool)
    seen_dynamic = torch.zeros_like(ids, dtype=torch.bool)
    for e in range(10):
        seen_static |= static.epoch(e).labels != IGNORE_INDEX
        seen_dynamic |= dynamic(ids, attention).labels != IGNORE_INDEX
    assert seen_dynamic.sum() > 1.5 * seen_static.sum()


# ------------------------------------------------------------------------------------------
# Whole-word masking
# ------------------------------------------------------------------------------------------


def test_whole_word_masks_continuations_with_their_word():
    ids, attention = make_batch(32, 96)
    word_start = torch.arange(VOCAB) % 3 != 0  # a third of the vocabulary continues a word
    config = MaskingConfig(whole_word=True)
    m = masker(config=config, word_start=word_start, seed=4)
    allowed = maskable_positions(ids, SPECIALS, attention)
    begins = allowed & word_start[ids]
    begins[:, 1:] |= allowed[:, 1:] & ~allowed[:, :-1]  # first word after <s> has no space
    chosen_words = total_words = chosen_tokens = 0
    for _ in range(10):
        out = m(ids, attention, return_record=True)
        check_invariants(ids, attention, out, config)
        chosen = out.record != NOT_CHOSEN
        # walk each row: a continuation is chosen iff the token that starts its word is
        for row in range(ids.shape[0]):
            current = None
            for t in range(ids.shape[1]):
                if not allowed[row, t]:
                    current = None
                    continue
                if begins[row, t]:
                    current = bool(chosen[row, t])
                assert bool(chosen[row, t]) == current
        chosen_words += int((chosen & begins).sum())
        total_words += int(begins.sum())
        chosen_tokens += int(chosen.sum())
    assert abs(chosen_words / total_words - 0.15) < 0.01
    # every token is chosen with probability p, so ~15% of tokens too
    assert abs(chosen_tokens / (10 * int(allowed.sum())) - 0.15) < 0.015


def test_whole_word_treatment_is_per_token():
    ids = torch.full((64, 41), 11)  # 11 continues a word ...
    ids[:, 0] = BOS
    ids[:, 1::8] = 10  # ... that 10 starts: five words of 8 tokens per row
    word_start = torch.zeros(VOCAB, dtype=torch.bool)
    word_start[10] = True
    out = masker(config=MaskingConfig(whole_word=True), word_start=word_start)(
        ids, return_record=True
    )
    words = out.record[:, 1:].reshape(64, 5, 8)
    chosen_words = words[(words != NOT_CHOSEN).any(dim=-1)]
    assert len(chosen_words) > 20 and (chosen_words != NOT_CHOSEN).all()
    # 80/10/10 is drawn per token, so most chosen words mix <mask> with random or kept tokens
    mixed = sum(len(set(word.tolist())) > 1 for word in chosen_words)
    assert mixed > len(chosen_words) / 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_give_the_same_masks_as_cpu_with_a_cpu_generator():
    ids, attention = make_batch(8, 64)
    on_cpu = masker(seed=2)(ids, attention, return_record=True)
    on_gpu = masker(seed=2)(ids.cuda(), attention.cuda(), return_record=True)
    assert on_gpu.input_ids.is_cuda and torch.equal(on_gpu.input_ids.cpu(), on_cpu.input_ids)
    cuda_masker = masker(seed=2, device="cuda")
    out = cuda_masker(ids.cuda(), attention.cuda(), return_record=True)
    check_invariants(ids.cuda(), attention.cuda(), out, MaskingConfig())
