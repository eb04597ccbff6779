"""Pieces both training tabs stream: a progress bar with ETA, plot values, the redraw pace, and
which outputs an update needs to send at all (a long run's page must stay light: the charts'
series are decimated in roberta.viz.curves, and unchanged outputs are skipped here)."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable

import gradio as gr
import pandas as pd
from gradio.components.plot import PlotData

from roberta.inference import FillMaskResult
from roberta.ui.common import markdown_literal
from roberta.viz.curves import PretrainHistory, Spec

UPDATE_SECONDS = 0.5  # at most ~2 updates a second: the progress line moves, the CPU keeps training
# A chart is redrawn at most this often (the loss) or, for those that change at evaluations,
# EVAL_CHART_SECONDS: a busy page answers Stop late (issue 13: within 0.5 s).
CHART_SECONDS = 1.0
EVAL_CHART_SECONDS = 2.0
GUESS_COLUMNS = ["1st", "2nd", "3rd", "4th", "5th"]


def plot_value(spec: Spec) -> PlotData:
    """A plotly JSON spec straight to gr.Plot, without building a (slow) plotly Figure."""
    return PlotData(type="plotly", plot=json.dumps(spec))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_html(step: int = 0, total: int = 0, elapsed: float | None = None,
                  eta: float | None = None, tokens_per_s: float | None = None,
                  note: str = "") -> str:
    """A bar and one line: step, time elapsed, time left, speed, and a note."""
    fraction = min(1.0, step / total) if total else 0.0
    parts = [f"step {step:,} / {total:,}"] if total else []
    if elapsed is not None:
        parts.append(f"{duration(elapsed)} elapsed")
    if eta is not None and step < total:
        parts.append(f"about {duration(eta)} left")
    if tokens_per_s:
        parts.append(f"{tokens_per_s:,.0f} tokens/s")
    if note:
        parts.append(html.escape(note))
    return (
        '<div class="train-progress" style="font-size:16px;margin:4px 0">'
        '<div style="background:#e5e7eb;border-radius:8px;height:20px;overflow:hidden">'
        f'<div class="train-progress-bar" style="background:#2563eb;height:100%;'
        f'width:{100 * fraction:.1f}%;transition:width .4s"></div></div>'
        f'<div style="margin-top:4px">{" · ".join(parts) or "&nbsp;"}</div></div>')


class SendWhenChanged:
    """Sends an output only when what it shows has changed since it was last sent, and
    gr.skip() otherwise: a long run re-sends what moved, not the whole page. `key` is anything
    comparable that changes exactly when the output would (a count of points, a step); `every`
    (seconds) holds a changed output back until that long after it was last sent — it goes with
    a later update — because every chart redrawn costs the page time it cannot spend on a click
    or a message (plotly.js, and Gradio redraws a changed plot twice)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sent: dict[str, object] = {}
        self._sent_at: dict[str, float] = {}
        self._clock = clock

    def __call__(self, name: str, key: object, make: Callable[[], object],
                 force: bool = False, every: float = 0.0):
        now = self._clock()
        if not force and name in self._sent and (
                self._sent[name] == key or now - self._sent_at[name] < every):
            return gr.skip()
        self._sent[name], self._sent_at[name] = key, now
        return make()


# The learning-rate and speed charts change smoothly: this many redraws show a whole run.
SLOW_CHART_REDRAWS = 50


def pretrain_plots(history: PretrainHistory, send: SendWhenChanged,
                   final: bool = False) -> tuple:
    """The Train tab's five charts for one update: the loss whenever it grew; accuracy and
    perplexity only after an evaluation; learning rate and speed about SLOW_CHART_REDRAWS times
    a run; everything once the run has ended (`final`: the last update is complete, for API
    callers too)."""
    planned = max(1, history.planned_steps or len(history.lr) or 1)
    evaluations = (len(history.val_accuracy), len(history.val_perplexity),
                   history.unigram_accuracy, history.unigram_perplexity)
    loss = (len(history.loss), len(history.val_loss), history.unigram_perplexity)
    return (
        send("loss", loss, lambda: plot_value(history.loss_spec()), final, CHART_SECONDS),
        send("accuracy", evaluations, lambda: plot_value(history.accuracy_spec()), final,
             EVAL_CHART_SECONDS),
        send("perplexity", evaluations, lambda: plot_value(history.perplexity_spec()), final,
             EVAL_CHART_SECONDS),
        send("lr", len(history.lr) * SLOW_CHART_REDRAWS // planned,
             lambda: plot_value(history.learning_rate_spec()), final),
        send("speed", len(history.tokens_per_s) * SLOW_CHART_REDRAWS // planned,
             lambda: plot_value(history.throughput_spec()), final),
    )


# --- the probe guesses (the Train tab's table) ----------------------------------------------

def _word(token: str) -> str:
    return token.strip() or repr(token)


def probe_table(probes: list[FillMaskResult] | None, sentences, step: int = 0) -> pd.DataFrame:
    """One row per probe: the sentence with the first guess in bold, then the top 5; the
    first column's header says at which step the model guessed."""
    rows = []
    for i, sentence in enumerate(sentences):
        result = probes[i] if probes and i < len(probes) else None
        if result is None or not result.predictions:
            rows.append([markdown_literal(sentence)] + [""] * 5)
            continue
        candidates = result.predictions[0].candidates[:5]
        first = _word(candidates[0].token)
        filled = markdown_literal(sentence).replace("&lt;mask&gt;",
                                                    f"**{markdown_literal(first)}**", 1)
        cells = [f"{_word(c.token)} ({c.probability:.0%})" for c in candidates]
        rows.append([filled] + cells + [""] * (5 - len(cells)))
    header = f"Probe at step {step:,} (first guess in bold)" if probes else "Probe"
    return pd.DataFrame(rows, columns=[header, *GUESS_COLUMNS])
