"""What a live training run streams to the page (issue 13, item 2): unchanged outputs are
skipped, the slow charts are redrawn a bounded number of times, and the end sends everything."""

from __future__ import annotations

from roberta.ui.live import (
    CHART_SECONDS,
    EVAL_CHART_SECONDS,
    SLOW_CHART_REDRAWS,
    UPDATE_SECONDS,
    SendWhenChanged,
    pretrain_plots,
)
from roberta.viz.curves import PretrainHistory

CHARTS = ("loss", "accuracy", "perplexity", "lr", "speed")


def is_sent(value) -> bool:
    return not (isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1)


def test_skip_marker_is_what_gradio_skips():
    import gradio as gr

    assert not is_sent(gr.skip())
    send = SendWhenChanged()
    assert send("x", 1, lambda: "drawn") == "drawn"
    assert not is_sent(send("x", 1, lambda: "again"))
    assert send("x", 1, lambda: "forced", force=True) == "forced"
    assert send("x", 2, lambda: "changed") == "changed"


def test_a_changed_output_waits_its_interval_then_goes_with_a_later_update():
    now = [0.0]
    send = SendWhenChanged(clock=lambda: now[0])
    assert send("x", 1, lambda: "drawn", every=2.0) == "drawn"
    now[0] = 1.5
    assert not is_sent(send("x", 2, lambda: "too soon", every=2.0))
    assert send("x", 2, lambda: "forced", force=True, every=2.0) == "forced"
    now[0] = 3.0
    assert not is_sent(send("x", 2, lambda: "unchanged", every=2.0))
    now[0] = 3.4  # 1.9 s after the forced send
    assert not is_sent(send("x", 3, lambda: "too soon", every=2.0))
    now[0] = 5.0
    assert send("x", 3, lambda: "held back, now sent", every=2.0) == "held back, now sent"


def test_a_5000_step_run_redraws_each_chart_at_most_at_its_pace():
    """An update every UPDATE_SECONDS (the page's pace), 20 steps each, an evaluation every
    50 steps: the loss is redrawn at most every CHART_SECONDS, accuracy and perplexity at most
    every EVAL_CHART_SECONDS and only after a new evaluation; the end sends everything."""
    steps, eval_every, steps_per_update = 5000, 50, 20
    history = PretrainHistory(unigram_accuracy=0.04, unigram_perplexity=770.0,
                              planned_steps=steps)
    now = [0.0]
    send = SendWhenChanged(clock=lambda: now[0])
    sent = dict.fromkeys(CHARTS, 0)
    for step in range(1, steps + 1):
        history.record("step", step, {"loss": 5.0, "lr": 1e-3, "tokens_per_s": 1e4})
        if step % eval_every == 0:
            history.record("eval", step, {"val_loss": 5.0, "val_accuracy": 0.3,
                                          "val_perplexity": 100.0})
        if step % steps_per_update:
            continue
        now[0] += UPDATE_SECONDS
        for name, value in zip(CHARTS, pretrain_plots(history, send), strict=True):
            sent[name] += is_sent(value)
    seconds = now[0]
    assert sent["loss"] == seconds / CHART_SECONDS  # the loss moves at every update
    # Evaluations come every 1.25 s here: the charts show the latest every 2 s, never more.
    # (the empty charts at the first update, then one every EVAL_CHART_SECONDS)
    assert sent["accuracy"] == sent["perplexity"] == 1 + (seconds - UPDATE_SECONDS) // \
        EVAL_CHART_SECONDS
    assert sent["lr"] <= SLOW_CHART_REDRAWS + 1 and sent["speed"] <= SLOW_CHART_REDRAWS + 1
    final = pretrain_plots(history, send, final=True)
    assert all(is_sent(value) for value in final)


def test_a_slow_run_shows_each_evaluation_at_the_next_update():
    """Evaluations every 10 s: each one is drawn by the first update after it."""
    history = PretrainHistory(unigram_accuracy=0.04, unigram_perplexity=770.0,
                              planned_steps=100)
    now = [0.0]
    send = SendWhenChanged(clock=lambda: now[0])
    for step in range(1, 101):  # a step (and an update) every 2 s
        now[0] += 2.0
        history.record("step", step, {"loss": 5.0, "lr": 1e-3, "tokens_per_s": 1e4})
        evaluated = step % 5 == 0
        if evaluated:
            history.record("eval", step, {"val_loss": 5.0, "val_accuracy": 0.3,
                                          "val_perplexity": 100.0})
        loss, accuracy, perplexity, *_ = pretrain_plots(history, send)
        assert is_sent(loss)
        assert is_sent(accuracy) == is_sent(perplexity) == (evaluated or step == 1)
