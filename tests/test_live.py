"""What a live training run streams to the page (issue 13, item 2): unchanged outputs are
skipped, the slow charts are redrawn a bounded number of times, and the end sends everything."""

from __future__ import annotations

from roberta.ui.live import SLOW_CHART_REDRAWS, SendWhenChanged, pretrain_plots
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


def test_a_5000_step_run_redraws_each_chart_only_when_it_changed():
    steps, eval_every = 5000, 250
    history = PretrainHistory(unigram_accuracy=0.04, unigram_perplexity=770.0,
                              planned_steps=steps)
    send = SendWhenChanged()
    sent = dict.fromkeys(CHARTS, 0)
    for step in range(1, steps + 1):  # an update every 10 steps (the page's pace is ~2/s)
        history.record("step", step, {"loss": 5.0, "lr": 1e-3, "tokens_per_s": 1e4})
        if step % eval_every == 0:
            history.record("eval", step, {"val_loss": 5.0, "val_accuracy": 0.3,
                                          "val_perplexity": 100.0})
        if step % 10:
            continue
        for name, value in zip(CHARTS, pretrain_plots(history, send), strict=True):
            sent[name] += is_sent(value)
    evaluations = steps // eval_every
    assert sent["loss"] == steps // 10  # the loss moves at every update
    assert sent["accuracy"] == sent["perplexity"] == evaluations + 1  # + the empty chart
    assert sent["lr"] <= SLOW_CHART_REDRAWS + 1 and sent["speed"] <= SLOW_CHART_REDRAWS + 1
    final = pretrain_plots(history, send, final=True)
    assert all(is_sent(value) for value in final)
