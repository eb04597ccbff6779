"""Experiments: two runs that differ in one setting, trained together fairly
(roberta/experiments.py, roberta/ui/experiment_job.py). The interleaving is checked by
recording what each side was fed: the same steps, the same batches in the same order, the same
seed; Stop stops both; bad comparisons are plain errors; the verdict measures the difference
against the noise."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny_assets import tiny_corpus

from roberta.config import RobertaConfig
from roberta.experiments import (
    COMPARISONS,
    ComparedPretrainer,
    ExperimentError,
    PairedRun,
    Spread,
    verdict,
)
from roberta.init import initialise_
from roberta.model import RobertaForMaskedLM
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import PretrainConfig
from roberta.training.pretraining import prepare_pretraining_data
from roberta.ui.experiment_job import build_job, custom_comparison, side_settings
from roberta.ui.limits import LimitError

TEXTS = tiny_corpus(300)
PASTED = "\n\n".join(TEXTS)
# The one-click comparisons' settings on a small pasted corpus: data ready in a blink.
FAST_BASE = {"corpus": "pasted", "pasted_text": PASTED, "tokenizer": "new", "vocab_size": 400,
             "seq_length": 32, "max_steps": 12, "warmup_steps": 2, "eval_every": 4,
             "eval_sequences": 16}


@pytest.fixture(scope="module")
def tokenizer():
    return RobertaTokenizer.train(TEXTS, vocab_size=400, min_frequency=1)


@pytest.fixture(scope="module")
def data(tokenizer):
    return prepare_pretraining_data(TEXTS, tokenizer, seq_length=32, validation_fraction=0.1)


def make_trainer(tokenizer, data, init="structured", validation=None, **config):
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig.preset("micro", vocab_size=tokenizer.vocab_size,
                                                    max_position_embeddings=34))
    initialise_(model, init)
    settings = dict(max_steps=10, batch_size=4, warmup_steps=2, eval_every=5, seq_length=32,
                    eval_sequences=8, learning_rate=1e-3, seed=3, device="cpu",
                    precision="fp32", probes=())
    settings.update(config)
    return ComparedPretrainer(model, tokenizer, data, PretrainConfig(**settings),
                              validation=validation)


def record_batches(trainer, side, log):
    """Wrap the trainer's micro_batch to log (side, step, input ids, labels) it is fed."""
    original = trainer.micro_batch

    def logged(index):
        batch = original(index)
        log.append((side, trainer.step, batch["input_ids"].clone(), batch["labels"].clone()))
        return batch

    trainer.micro_batch = logged


def record_rows(trainer, side, log):
    """Log the rows of every global batch the trainer draws (single process: all of them)."""
    original = trainer.global_rows

    def logged(index, num_rows):
        rows = original(index, num_rows)
        log.append((side, rows.clone()))
        return rows

    trainer.global_rows = logged


# --- the interleaving is fair ------------------------------------------------------------------

def test_steps_alternate_and_both_sides_are_fed_the_same_batches(tokenizer, data):
    a = make_trainer(tokenizer, data, init="structured")
    b = make_trainer(tokenizer, data, init="roberta")
    log = []
    record_batches(a, 0, log)
    record_batches(b, 1, log)
    events = list(PairedRun(a, b).run())
    assert a.step == b.step == 10
    assert a.config.seed == b.config.seed == 3
    # One step of A, then one of B, all the way.
    assert [side for side, *_ in log] == [0, 1] * 10
    fed_a = [(ids, labels) for side, _, ids, labels in log if side == 0]
    fed_b = [(ids, labels) for side, _, ids, labels in log if side == 1]
    for (ids_a, labels_a), (ids_b, labels_b) in zip(fed_a, fed_b, strict=True):
        assert torch.equal(ids_a, ids_b) and torch.equal(labels_a, labels_b)
    assert len({ids.sum().item() for ids, _ in fed_a}) > 1  # a different batch every step
    # Both evaluated at the same steps, and both ended normally.
    evals = [(e.side, e.event.step) for e in events if e.event.kind == "eval"]
    assert sorted(evals) == [(0, 5), (0, 10), (1, 5), (1, 10)]
    assert [e.event.kind for e in events if e.event.finished] == ["done", "done"]


def test_a_four_times_larger_batch_sees_the_same_sequences_in_the_same_order(tokenizer, data):
    small = make_trainer(tokenizer, data, batch_size=4, max_steps=12)
    large = make_trainer(tokenizer, data, batch_size=16, max_steps=3)
    rows = []
    record_rows(small, 0, rows)
    record_rows(large, 1, rows)
    run = PairedRun(small, large)
    order = []
    for paired in run.run():
        if paired.event.kind == "step":
            order.append(paired.side)
            # Neither side ever gets more than one large step ahead in the data.
            assert abs(small.step * 4 - large.step * 16) <= 16
    assert (small.step, large.step) == (12, 3)
    assert order.count(0) == 12 and order.count(1) == 3
    seen_small = torch.cat([r for side, r in rows if side == 0])
    seen_large = torch.cat([r for side, r in rows if side == 1])
    assert torch.equal(seen_small, seen_large)


def test_shared_validation_scores_both_on_the_same_predictions(tokenizer, data):
    a = make_trainer(tokenizer, data)
    b = make_trainer(tokenizer, data, validation=a.validation_batches,
                     masking=dataclasses.replace(a.config.masking, mlm_probability=0.4))
    assert b.validation_batches is a.validation_batches
    assert a.masked_positions() == b.masked_positions() > 0
    # Without sharing, 40% masking would be scored on a different, harder task.
    alone = make_trainer(tokenizer, data,
                         masking=dataclasses.replace(a.config.masking, mlm_probability=0.4))
    assert alone.masked_positions() > a.masked_positions()


@pytest.mark.parametrize("stop_at", [1, 4, 7])
def test_stop_stops_both_at_the_same_step(tokenizer, data, stop_at):
    a = make_trainer(tokenizer, data, max_steps=1000)
    b = make_trainer(tokenizer, data, init="roberta", max_steps=1000)
    run = PairedRun(a, b)
    finals = {}
    for paired in run.run():
        if paired.side == 0 and paired.event.kind == "step" and paired.event.step == stop_at:
            run.stop()  # pressed right after A's step: B catches up, then both stop
        if paired.event.finished:
            finals[paired.side] = paired.event
    assert a.step == b.step == stop_at
    assert {s: e.kind for s, e in finals.items()} == {0: "stopped", 1: "stopped"}


def test_stop_with_unequal_budgets_stops_both_at_the_same_share(tokenizer, data):
    small = make_trainer(tokenizer, data, batch_size=4, max_steps=400)
    large = make_trainer(tokenizer, data, batch_size=16, max_steps=100)
    run = PairedRun(small, large)
    for paired in run.run():
        if paired.side == 1 and paired.event.kind == "step" and paired.event.step == 2:
            run.stop()
    assert (small.step, large.step) == (8, 2)  # the same 32 sequences each


def test_a_side_that_fails_stops_the_other(tokenizer, data):
    a = make_trainer(tokenizer, data, max_steps=50)
    b = make_trainer(tokenizer, data, max_steps=50)
    original = b._optimizer_step
    b._optimizer_step = lambda: None if b.step == 3 else original()  # NaN at B's 4th step
    kinds = {}
    for paired in PairedRun(a, b).run():
        if paired.event.finished:
            kinds[paired.side] = paired.event.kind
    assert kinds == {0: "stopped", 1: "failed"}
    assert b.step == 3 and a.step == 4  # A's 4th step was done before B's failed


# --- the comparisons through the Train tab's own code path -------------------------------------

def fast(comparison_id, **base):
    comparison = COMPARISONS[comparison_id]
    return dataclasses.replace(comparison, base={**FAST_BASE, **base})


def test_every_comparison_differs_in_its_setting_only():
    for comparison in COMPARISONS.values():
        a, b, warnings = side_settings(comparison)
        assert a.settings.seed == b.settings.seed
        assert warnings == []
        differs = {f.name for f in dataclasses.fields(a.settings)
                   if getattr(a.settings, f.name) != getattr(b.settings, f.name)}
        differs |= {k for k in set(a.extras) | set(b.extras)
                    if a.extras.get(k) != b.extras.get(k)}
        if comparison.id == "batch":  # equal tokens: the steps, warmup and eval pace follow
            assert differs == {"batch_size", "max_steps", "warmup_steps", "eval_every"}
            assert a.settings.batch_size * a.settings.max_steps == \
                b.settings.batch_size * b.settings.max_steps
        elif comparison.id == "init":  # RoBERTa's random positions are not held
            assert differs == {"init"}
        else:
            assert len(differs) == 1, (comparison.id, differs)
        assert comparison.paper and comparison.fairness


def test_static_masking_comparison_repeats_a_small_subset(tokenizer):
    job = build_job(fast("masking"))
    dynamic, static = job.trainers
    assert dynamic.static is None and static.static is not None
    assert static.config.static_copies == 4
    assert torch.equal(dynamic.data.train.input_ids, static.data.train.input_ids)
    assert static.validation_batches is dynamic.validation_batches


def test_packing_comparison_raises_the_batch_to_equal_tokens():
    job = build_job(fast("packing"))
    full, doc = job.trainers
    assert full.config.batch_size == 8
    per_full = full.data.train.num_tokens / len(full.data.train)
    per_doc = doc.data.train.num_tokens / len(doc.data.train)
    assert per_doc < per_full  # one short sentence per document: padded
    assert doc.config.batch_size == round(8 * per_full / per_doc)
    assert any("real tokens per sequence" in note for note in job.notes)


def test_a_job_trains_both_and_counts_the_same_steps():
    job = build_job(fast("mask_rate"))
    events = list(job.pair.run())
    # What the Experiments tab draws from: each side's own step events, 1 to 12 in order,
    # evaluations at the same steps, and one "done" each, last.
    for side in (0, 1):
        own = [p.event for p in events if p.side == side]
        assert [e.step for e in own if e.kind == "step"] == list(range(1, 13)), side
        assert [e.step for e in own if e.kind == "eval"] == [4, 8, 12], side
        assert [e.kind for e in own if e.finished] == ["done"] and own[-1].kind == "done", side
    a, b = job.trainers
    assert a.step == b.step == 12
    assert a.config.masking.mlm_probability == 0.15 and b.config.masking.mlm_probability == 0.4
    assert b.validation_batches is a.validation_batches


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("setting, a, b, message", [
    ("learning_rate", "1e-3", "0.001", "identical"),
    ("init", "structured", "structured", "identical"),
    ("colour", "red", "blue", "Choose the setting to compare"),
    (None, "1", "2", "Choose the setting to compare"),
    ("batch_size", "8", "", "Give a value for each side"),
    ("batch_size", "8", "eight", "must be a number"),
    ("static_masking", "yes", "maybe", "true or false"),
    ("packing", "full_sentences", "whole_books", "Packing is"),
])
def test_bad_custom_comparisons_are_plain_errors(setting, a, b, message):
    with pytest.raises(ValueError, match=message):
        custom_comparison(setting, a, b)


@pytest.mark.parametrize("setting, a, b, error, message", [
    ("learning_rate", "1e-3", "2", ValueError, "learning rate must be above 0 and below 1"),
    ("init", "structured", "sideways", ValueError, "Unknown initialisation"),
    ("batch_size", "8", "4000", LimitError, "more than this app allows"),
])
def test_impossible_or_capped_sides_are_plain_errors(setting, a, b, error, message):
    with pytest.raises(error, match=message):
        side_settings(custom_comparison(setting, a, b))


def test_a_step_budget_over_the_cap_is_refused(monkeypatch):
    monkeypatch.setenv("ROBERTA_LAB_MAX_STEPS", "100")
    with pytest.raises(LimitError, match="more than this app allows"):
        side_settings(COMPARISONS["init"], max_steps=500)


def test_a_custom_comparison_of_packing_trains():
    comparison = dataclasses.replace(custom_comparison("learning_rate", "1e-3", "3e-3"),
                                     base=FAST_BASE)
    job = build_job(comparison, seed=5)
    assert [t.config.learning_rate for t in job.trainers] == [1e-3, 3e-3]
    assert [t.config.seed for t in job.trainers] == [5, 5]


def test_unknown_comparison_is_a_plain_error():
    from roberta.ui.experiment_job import comparison_for

    with pytest.raises(ExperimentError, match="Unknown comparison"):
        comparison_for("nsp")


# --- the verdict ------------------------------------------------------------------------------

def metrics(mask_accuracy, loss=4.0):
    return {"val_mask_accuracy": mask_accuracy, "val_loss": loss}


SPREAD = Spread("init", 600, (0, 1, 2), "python bench/experiments.py", "test",
                {300: {"mask_accuracy": [0.01, 0.02, 0.03], "loss": [0.1, 0.12, 0.14]}})


def test_a_difference_inside_the_seed_spread_is_within_noise():
    result = verdict(COMPARISONS["init"], "A", "B", 300, metrics(0.10), metrics(0.115),
                     n_masked=100_000, spread=SPREAD, budget_matches=True)
    assert result.within_noise and "within noise" in result.text
    assert result.noise == pytest.approx(0.02)  # twice the sd of the per-seed differences
    assert "3 seeds" in result.text


def test_a_difference_beyond_the_spread_names_the_better_side():
    result = verdict(COMPARISONS["init"], "structured", "random", 300, metrics(0.10),
                     metrics(0.02), n_masked=100_000, spread=SPREAD, budget_matches=True)
    assert result.within_noise is False
    assert "**structured** is ahead by 8.0 points" in result.text


def test_without_a_measured_spread_the_sampling_noise_is_a_stated_lower_bound():
    result = verdict(COMPARISONS["init"], "A", "B", 300, metrics(0.10), metrics(0.12),
                     n_masked=400, spread=SPREAD, budget_matches=False)
    # 2 × sqrt((0.09 + 0.1056) / 400) = 0.0442: a 2-point difference is within it.
    assert result.noise == pytest.approx(0.0442, abs=1e-4)
    assert result.within_noise and "lower bound" in result.text


def test_different_vocabularies_are_not_judged():
    result = verdict(COMPARISONS["vocab"], "A", "B", 600, metrics(0.1), metrics(0.3),
                     n_masked=1000, spread=None, budget_matches=False)
    assert result.within_noise is None and "not judged" in result.text


# --- the overlay charts -----------------------------------------------------------------------

def test_overlay_charts_draw_both_sides_in_two_colours_named_by_the_setting():
    from roberta.viz.compare_curves import MAX_POINTS, SIDE_COLORS, ComparisonHistory

    history = ComparisonHistory(("A: 15%", "B: 40%"), "masking rate")
    assert all(not spec["data"] for spec in history.specs())  # an empty chart says why
    for step in range(1, 2001):
        for side in (0, 1):
            history.record(side, "step", step, {"tokens_per_s": 1000.0 + side})
    for side, accuracy in ((0, 0.1), (1, 0.2)):
        history.record(side, "eval", 50, {"val_loss": 5.0, "val_accuracy": accuracy,
                                          "val_mask_accuracy": accuracy / 2,
                                          "val_perplexity": 148.4})
    accuracy, loss, perplexity, speed = history.specs()
    names = [t["name"] for t in accuracy["data"]]
    assert names == ["A: 15%: at <mask>", "A: 15%: overall", "B: 40%: at <mask>",
                     "B: 40%: overall"]
    assert [t["y"] for t in accuracy["data"]] == [[5.0], [10.0], [10.0], [20.0]]
    assert accuracy["layout"]["legend"]["title"]["text"] == "masking rate:"
    for spec in (loss, perplexity, speed):
        assert [t["line"]["color"] for t in spec["data"]] == list(SIDE_COLORS)
    assert perplexity["layout"]["yaxis"]["type"] == "log"
    assert all(len(t["x"]) <= MAX_POINTS + 1 and t["x"][-1] == 2000 for t in speed["data"])


def test_overlay_x_axis_can_count_sequences():
    from roberta.viz.compare_curves import ComparisonHistory

    history = ComparisonHistory(("A", "B"), "batch size", "sequences seen")
    history.sides[0].x_per_step, history.sides[1].x_per_step = 8, 32
    history.record(0, "eval", 40, {"val_loss": 5.0})
    history.record(1, "eval", 10, {"val_loss": 5.1})
    loss = history.loss_spec()
    assert [t["x"] for t in loss["data"]] == [[320], [320]]


def test_the_stored_spread_was_measured_at_each_comparisons_current_defaults():
    """A comparison's defaults changed without re-running bench/experiments.py would make the
    verdict measure against the wrong spread: the stored budget must match."""
    from roberta.experiments import load_spreads

    spreads = load_spreads()
    assert "init" in spreads
    for cid, spread in spreads.items():
        comparison = COMPARISONS[cid]
        assert comparison.same_validation  # only judged comparisons get a spread
        assert spread.max_steps == comparison.sides()[0]["max_steps"]
        assert len(spread.seeds) >= 3 and "bench/experiments.py" in spread.command
        final = spread.differences[max(spread.differences)]
        assert all(len(values) == len(spread.seeds) for values in final.values())
