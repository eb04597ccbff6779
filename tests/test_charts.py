"""The charts as plotly.js draws them (issue 13): baselines where their labels say, labels clear
of the curves and the title, empty charts with meaningful axes, bounded live series, axes
scaled to the data, colour scales clear of their neighbours.

Geometry is measured in chromium with the plotly.js the plotly package ships (tests/
plotly_page.py): what matters is where plotly.js puts things, which the spec alone cannot say
(a shape on a log axis takes data units; an annotation there takes log10 units)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from plotly_page import measure, open_plotly_page, overlap

from roberta.inference import Candidate, FillMaskResult, MaskPrediction, Window
from roberta.viz import attention as attention_viz
from roberta.viz.curves import MAX_POINTS, FinetuneHistory, PretrainHistory, decimate

# --- decimation: bounded series for live charts ----------------------------------------------


def test_decimate_keeps_short_series_whole():
    assert decimate([3.0, 1.0, 2.0], 10) == [0, 1, 2]


@pytest.mark.parametrize("n", [301, 1000, 5000, 100_000])
def test_decimate_is_bounded_and_keeps_the_ends_the_extremes_and_asked_points(n):
    rng = random.Random(n)
    values = [rng.gauss(0, 1) for _ in range(n)]
    values[n // 3] = 50.0  # a spike must survive
    asked = [7, n // 2, n - 3]
    kept = decimate(values, 300, keep=asked)
    assert kept == sorted(set(kept))
    assert len(kept) <= 300 + len(asked)
    assert kept[0] == 0 and kept[-1] == n - 1
    assert set(asked) <= set(kept)
    assert n // 3 in kept
    assert min(values[i] for i in kept) == min(values)


def test_decimate_refuses_a_useless_budget():
    with pytest.raises(ValueError, match="at least 4"):
        decimate([1.0] * 10, 2)


def long_run(steps: int = 5000, eval_every: int = 100) -> PretrainHistory:
    history = PretrainHistory(unigram_accuracy=0.043, unigram_perplexity=770.0,
                              planned_steps=steps)
    for step in range(1, steps + 1):
        history.record("step", step, {"loss": 7 - step / (steps / 4) + (step % 7) / 10,
                                      "lr": 1e-3, "tokens_per_s": 2e4})
        if step % eval_every == 0:
            history.record("eval", step, {
                "val_loss": 7 - step / (steps / 4), "val_accuracy": 0.1 + step / (2 * steps),
                "val_mask_accuracy": 0.05 + step / (3 * steps),
                "val_perplexity": 700 / (1 + step / 100)})
    return history


def test_a_long_runs_charts_stay_small():
    """5,000 steps: a few hundred points per line, first, last and evaluation steps kept."""
    history = long_run()
    for spec in history.specs():
        for trace in spec["data"]:
            assert len(trace["x"]) <= MAX_POINTS + 60, trace["name"]
    loss = history.loss_spec()["data"]
    raw, smoothed = loss[0], loss[1]
    for trace in (raw, smoothed):
        assert trace["x"][0] == 1 and trace["x"][-1] == 5000
        assert set(history.val_loss.steps) <= set(trace["x"])
    assert len(json.dumps(history.specs())) < 100_000  # one redraw of all five charts


# --- in plotly.js ------------------------------------------------------------------------------

def in_chromium(test):
    """A test that draws in chromium: a browser test, so out of the fast `-m "not slow"` loop
    like the other browser tests."""
    return pytest.mark.browser(pytest.mark.slow(test))


@pytest.fixture(scope="module")
def plotly_page(browser):
    page = open_plotly_page(browser)
    yield page
    page.close()


@in_chromium
def test_the_perplexity_baseline_is_drawn_at_its_value_on_the_log_axis(plotly_page):
    drawn = measure(plotly_page, long_run().perplexity_spec(), 440)
    assert drawn["yType"] == "log"
    assert drawn["shapes"] == [pytest.approx(770.0, rel=0.01)]
    assert "unigram baseline 770" in drawn["legend"]
    low, high = drawn["yRange"]  # log10 units
    assert low < math.log10(700 / 51) and high > math.log10(770)  # curve and baseline shown


@in_chromium
@pytest.mark.parametrize("chart", ["loss", "accuracy", "perplexity"])
def test_baselines_are_named_in_the_legend_not_over_the_curves(plotly_page, chart):
    history = long_run()
    spec = getattr(history, f"{chart}_spec")()
    drawn = measure(plotly_page, spec, 440 if chart == "perplexity" else 680)
    expected = {"loss": math.log(770.0), "accuracy": 4.3, "perplexity": 770.0}[chart]
    assert drawn["shapes"] == [pytest.approx(expected, rel=0.01)]
    assert any(name.startswith("unigram baseline") for name in drawn["legend"])
    assert not any(overlap(box, drawn["plotBox"]) for box in drawn["annotationBoxes"])
    assert not overlap(drawn["legendBox"], drawn["titleBox"])
    assert not overlap(drawn["legendBox"], drawn["plotBox"])


@in_chromium
def test_the_finetuning_baselines_are_named_in_the_legend(plotly_page):
    history = FinetuneHistory(baseline_accuracy=0.85, majority_accuracy=0.5, planned_steps=300)
    history.record("eval", 100, {"val_accuracy": 0.7, "val_macro_f1": 0.65})
    drawn = measure(plotly_page, history.accuracy_spec())
    assert sorted(drawn["shapes"]) == [pytest.approx(50.0), pytest.approx(85.0)]
    assert "TF-IDF + logistic regression 85.0%" in drawn["legend"]
    assert "always the commonest class 50.0%" in drawn["legend"]
    assert not overlap(drawn["legendBox"], drawn["titleBox"])


EMPTY_CHARTS = [
    (PretrainHistory(planned_steps=2000), "loss_spec"),
    (PretrainHistory(planned_steps=2000), "accuracy_spec"),
    (PretrainHistory(planned_steps=2000), "perplexity_spec"),
    (PretrainHistory(planned_steps=2000, unigram_perplexity=770.0), "perplexity_spec"),
    (PretrainHistory(planned_steps=2000), "learning_rate_spec"),
    (PretrainHistory(planned_steps=2000), "throughput_spec"),
    (FinetuneHistory(planned_steps=2000), "accuracy_spec"),
    (FinetuneHistory(planned_steps=2000), "loss_spec"),
]


@in_chromium
@pytest.mark.parametrize(("history", "chart"), EMPTY_CHARTS)
def test_empty_charts_span_the_run_not_minus_one_to_six(plotly_page, history, chart):
    drawn = measure(plotly_page, getattr(history, chart)())
    assert drawn["xRange"] == [0, 2000]
    assert drawn["yRange"][0] >= 0  # no negative loss, accuracy, rate or speed
    if history.__dict__.get("unigram_perplexity"):
        assert drawn["shapes"] == [pytest.approx(770.0, rel=0.01)]
        assert 10 ** drawn["yRange"][1] > 770


def test_an_empty_finetuning_chart_promises_nothing():
    """Before any run there is no TF-IDF baseline being computed; during one there is."""
    def texts(history):
        spec = history.accuracy_spec()
        return [a["text"] for a in spec["layout"]["annotations"]] + \
            [t.get("name", "") for t in spec["data"]]

    assert not any("computing" in t for t in texts(FinetuneHistory()))
    assert any("computing" in t for t in texts(FinetuneHistory(majority_accuracy=0.5)))


COLOURBAR_BOXES = """() => {
    const gd = document.getElementById('plot'), full = gd._fullLayout;
    const at = gd.getBoundingClientRect();
    const box = el => { const r = el.getBoundingClientRect();
                        return [r.left, r.top, r.right, r.bottom]; };
    const axes = Object.keys(full).filter(k => /^xaxis[0-9]*$/.test(k)).sort();
    return {
        colourbars: [...gd.querySelectorAll('.colorbar')].map(box),
        plots: axes.map(k => { const xa = full[k], ya = full[xa.anchor.replace('y', 'yaxis')];
            return [at.left + xa._offset, at.top + ya._offset,
                    at.left + xa._offset + xa._length, at.top + ya._offset + ya._length]; }),
        yLabels: [...gd.querySelectorAll('.ytick text')].map(box),
    };
}"""


@in_chromium
@pytest.mark.parametrize("width", [900, 1300])
def test_head_summary_colour_scales_stay_clear_of_the_next_panel(plotly_page, width):
    scores = torch.randn(6, 4, 12, 12, generator=torch.Generator().manual_seed(0))
    attentions = torch.softmax(scores, -1)
    tokens = ["<s>", *[f" w{i}" for i in range(10)], "</s>"]
    figure = attention_viz.summary_figure(attention_viz.head_summary(attentions, tokens), 12)
    measure(plotly_page, json.loads(figure.to_json()), width)
    drawn = plotly_page.evaluate(COLOURBAR_BOXES)
    assert len(drawn["colourbars"]) == 4 and len(drawn["plots"]) == 4
    for i, bar in enumerate(drawn["colourbars"]):
        assert bar[0] >= drawn["plots"][i][2]  # right of its own panel
        for j, plot in enumerate(drawn["plots"]):
            assert not overlap(bar, plot), (i, j)
        for label in drawn["yLabels"]:
            assert not overlap(bar, label)


def fill_mask_result(probabilities: list[float]) -> FillMaskResult:
    candidates = [Candidate(token=f" w{i}", token_id=i, probability=p)
                  for i, p in enumerate(probabilities)]
    return FillMaskResult(text="<mask>", tokens=["<s>", "<mask>", "</s>"],
                          predictions=[MaskPrediction(position=1, candidates=candidates)],
                          window=Window(start=0, end=1, total=1, chars=(0, 6)))


@in_chromium
@pytest.mark.parametrize("top", [0.03, 0.4, 0.97])
def test_fill_mask_bars_use_the_width_of_the_chart(plotly_page, top):
    from roberta.ui.fill_mask_tab import results_chart

    figure = results_chart(fill_mask_result([top, top / 2, top / 4]))
    drawn = measure(plotly_page, json.loads(figure.to_json()))
    low, high = drawn["xRange"]
    assert low == 0 and top < high <= min(1.0, 1.2 * top)


def test_masking_columns_wrap_into_blocks_within_the_budget():
    from roberta.viz.masking import CELL_PADDING_CHARACTERS, column_blocks

    widths = [3, 5, 12, 4, 30, 2, 7, 7, 7, 120, 1]
    blocks = column_blocks(widths, budget=40)
    assert [i for block in blocks for i in block] == list(range(len(widths)))  # all, in order
    for block in blocks:
        used = sum(widths[i] + CELL_PADDING_CHARACTERS for i in block)
        assert used <= 40 or len(block) == 1  # only a cell wider than the budget overflows
    assert column_blocks([], 40) == []


# --- issue 33: what the Experiments charts showed wrong, as plotly.js draws them --------------

def comparison_run(steps: int = 1000, eval_every: int = 100):
    """The default comparison's labels, both sides evaluated every `eval_every` steps, their
    perplexity falling from ~800 to ~5 (two decades and more: where plotly's own log ticks
    read '1000, 5, 2, 100')."""
    from roberta.viz.compare_curves import ComparisonHistory

    history = ComparisonHistory(("A: structured start", "B: RoBERTa's random start"),
                                "initialisation", "step")
    for side in (0, 1):
        for step in range(eval_every, steps + 1, eval_every):
            history.record(side, "eval", step, {
                "val_loss": 7 - step / steps, "val_accuracy": 0.1 + step / (2 * steps),
                "val_mask_accuracy": 0.02 + (1 - side) * step / (3 * steps),
                "val_perplexity": 800 / (1 + (side + 1) * step / 6)})
    return history


DRAWN_TEXT = """(selector) => {
    const svg = document.querySelector('#plot .main-svg').getBoundingClientRect();
    return {svg: [svg.left, svg.top, svg.right, svg.bottom],
            items: [...document.querySelectorAll('#plot ' + selector)].map(t => {
                const r = t.getBoundingClientRect();
                return {text: t.textContent, box: [r.left, r.top, r.right, r.bottom]}; })};
}"""


def inside(box, frame) -> bool:
    return frame[0] - 1 <= box[0] and box[2] <= frame[2] + 1 and \
        frame[1] - 1 <= box[1] and box[3] <= frame[3] + 1


@in_chromium
@pytest.mark.parametrize("width", [360, 580])  # a phone; one of two charts side by side at 1280
def test_the_comparison_legend_and_its_note_are_drawn_whole(plotly_page, width):
    """The accuracy legend ran off the chart's edge ('at <mas'), and nothing said why the two
    overall lines sit together (copying)."""
    drawn = measure(plotly_page, comparison_run().accuracy_spec(), width)
    legend = plotly_page.evaluate(DRAWN_TEXT, ".legendtext")
    names = [item["text"] for item in legend["items"]]
    assert names == ["A: structured start: at <mask>", "A: structured start: overall",
                     "B: RoBERTa's random start: at <mask>", "B: RoBERTa's random start: overall"]
    for item in legend["items"]:
        assert inside(item["box"], legend["svg"]), (item, legend["svg"])
    notes = plotly_page.evaluate(DRAWN_TEXT, ".annotation-text")["items"]
    note = next(n for n in notes if "copies" in n["text"])
    assert "the thin lines sit together" in note["text"]
    assert inside(note["box"], legend["svg"]), (note, legend["svg"])
    assert not overlap(note["box"], drawn["legendBox"])
    assert not overlap(note["box"], drawn["plotBox"])


@in_chromium
@pytest.mark.parametrize("chart", ["Train", "Experiments"])
def test_log_axes_read_as_whole_numbers_in_order(plotly_page, chart):
    """The perplexity axis read '1000, 5, 2, 100, 5': plotly labels a decade's 2 and 5 with a
    bare digit. Drawn, the labels are whole numbers rising up the axis."""
    history = long_run() if chart == "Train" else comparison_run()
    measure(plotly_page, history.perplexity_spec(), 440)
    labels = [item["text"] for item in plotly_page.evaluate(DRAWN_TEXT, ".ytick text")["items"]]
    values = [float(label.replace(",", "")) for label in labels]
    assert len(values) >= 3, labels
    assert values == sorted(values) and len(set(values)) == len(values), labels
    assert all(v == int(v) for v in values), labels
