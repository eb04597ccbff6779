"""Training curves as plotly figures, big enough to read from the back of a room.

`PretrainHistory` and `FinetuneHistory` collect the numbers of a run's `TrainEvent`s; their
methods draw them. A live run redraws several charts every half second, and building a
`plotly.graph_objects.Figure` costs ~50 ms (validation and the template), so the charts are
built as plain plotly JSON dicts ("specs", ~1 ms); `as_figure(spec)` turns one into a Figure
when a caller wants one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

TRAIN_COLOR = "#1f77b4"
VALIDATION_COLOR = "#d62728"
BASELINE_COLOR = "#6b6b6b"
GRID_COLOR = "#e5e5e5"
SMOOTHING = 0.9  # exponential moving average of the noisy per-step training loss
MAX_POINTS = 300  # per line, however long the run: every redraw ships and draws this much
EMPTY_STEPS = 1000  # the x axis of an empty chart when the run's length is not known

Spec = dict[str, Any]


def as_figure(spec: Spec) -> go.Figure:
    return go.Figure(spec)


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "gridcolor": GRID_COLOR, "zerolinecolor": GRID_COLOR,
            "automargin": True, **extra}


def _spec(title: str, x_title: str, y_title: str, height: int, **yaxis: Any) -> Spec:
    return {"data": [], "layout": {
        "title": {"text": title, "font": {"size": 18}},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 56, "b": 50},
        "font": {"size": 14},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        # Under the plot, clear of the title and the curves; plotly makes room for it.
        "legend": {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom",
                   "xanchor": "left", "x": 0},
        "xaxis": _axis(x_title),
        "yaxis": _axis(y_title, **yaxis),
        "uirevision": "keep",  # keep a visitor's zoom while the curve grows
        "shapes": [], "annotations": [],
    }}


def _line(x: list, y: list, name: str, color: str, width: float = 3, markers: bool = False,
          dash: str | None = None, opacity: float = 1.0) -> dict[str, Any]:
    line = {"color": color, "width": width}
    if dash:
        line["dash"] = dash
    return {"type": "scatter", "x": x, "y": y, "name": name, "opacity": opacity,
            "mode": "lines+markers" if markers else "lines", "line": line}


def _baseline(spec: Spec, value: float | None, label: str) -> None:
    """A dashed horizontal line across the plot at `value`, named in the legend (a label
    drawn inside the plot would sit on top of the curves).

    Plotly places shapes in data units on every axis type, log included (annotations and axis
    ranges, by contrast, take log10 units there)."""
    if value is None:
        return
    spec["layout"]["shapes"].append({
        "type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": value,
        "y1": value, "line": {"color": BASELINE_COLOR, "dash": "dash", "width": 2},
        "name": label})
    # A trace with no points: only its legend entry shows, in the line's colour and dash.
    spec["data"].append({"type": "scatter", "x": [None], "y": [None], "mode": "lines",
                         "name": label, "hoverinfo": "skip", "showlegend": True,
                         "line": {"color": BASELINE_COLOR, "dash": "dash", "width": 2}})


def _empty_axes(spec: Spec, steps: int | None, y_range: list[float] | None = None) -> None:
    """Axes for a chart with nothing drawn yet: steps from 0 to the run's length, and the
    values' likely range (plotly's own default, -1 to 6, means nothing here); no y numbers
    when there is no likely range."""
    layout = spec["layout"]
    layout["xaxis"]["range"] = [0, steps or EMPTY_STEPS]
    if y_range is None:
        layout["yaxis"].update(range=[0, 1], showticklabels=False)
    else:
        layout["yaxis"]["range"] = y_range


def _note(spec: Spec, text: str) -> Spec:
    spec["layout"]["annotations"].append({
        "text": text, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
        "font": {"size": 15, "color": BASELINE_COLOR}})
    return spec


def smooth(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """Debiased exponential moving average (as TensorBoard draws it)."""
    smoothed, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**i))
    return smoothed


@dataclass
class Series:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: int, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            self.steps.append(int(step))
            self.values.append(float(value))

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    def thinned(self, values: list[float] | None = None,
                keep_steps: set[int] | frozenset[int] = frozenset(),
                ) -> tuple[list[int], list[float]]:
        """(steps, values) decimated to about MAX_POINTS (see `decimate`)."""
        values = self.values if values is None else values
        keep = decimate(values, MAX_POINTS, keep=[i for i, s in enumerate(self.steps)
                                                  if s in keep_steps] if keep_steps else ())
        return [self.steps[i] for i in keep], [values[i] for i in keep]


def decimate(values: list[float], max_points: int = MAX_POINTS,
             keep: list[int] | tuple[int, ...] = ()) -> list[int]:
    """Indices of at most ~`max_points` of `values` that still draw the same line: the first
    and the last, the lowest and the highest of each of max_points / 2 equal buckets (so a
    spike survives), and every index in `keep` (evaluation steps), in order.

    A long run's per-step series is thousands of points; a chart a few hundred pixels wide
    shows no more than this, and every live redraw sends and draws all of it."""
    n = len(values)
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    if n <= max_points:
        return list(range(n))
    chosen = {0, n - 1, *(i for i in keep if 0 <= i < n)}
    buckets = max(1, (max_points - 2) // 2)
    for b in range(buckets):
        lo, hi = 1 + b * (n - 2) // buckets, 1 + (b + 1) * (n - 2) // buckets
        if lo >= hi:
            continue
        bucket = range(lo, hi)
        chosen.add(min(bucket, key=values.__getitem__))
        chosen.add(max(bucket, key=values.__getitem__))
    return sorted(chosen)


def _percent(values: list[float]) -> list[float]:
    return [100 * v for v in values]


def log_ticks(low: float, high: float, most: int = 8) -> dict:
    """Tick values and whole-number labels for a log axis spanning 10**low to 10**high: 1, 2 and
    5 of each decade, or only the powers of ten when those would crowd the axis. Plotly's own
    ticks label the 2 and 5 of a decade as bare digits ("1000, 5, 2, 100"), which reads as
    nonsense (issue 33)."""
    values = []
    for decade in range(math.floor(low), math.ceil(high) + 1):
        for m in (1, 2, 5):
            value = m * 10.0 ** decade
            if low - 1e-9 <= math.log10(value) <= high + 1e-9:
                values.append(value)
    if len(values) > most:
        values = [v for v in values if round(math.log10(v), 9).is_integer()]
    return {"tickvals": values, "ticktext": [f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in values]}


@dataclass
class PretrainHistory:
    """Everything the Train tab draws, gathered from a Pretrainer's events."""

    unigram_accuracy: float | None = None
    unigram_perplexity: float | None = None
    planned_steps: int | None = None  # the run's length: the x axis of the empty charts
    loss: Series = field(default_factory=Series)
    lr: Series = field(default_factory=Series)
    tokens_per_s: Series = field(default_factory=Series)
    val_loss: Series = field(default_factory=Series)
    val_accuracy: Series = field(default_factory=Series)
    val_mask_accuracy: Series = field(default_factory=Series)  # at <mask> inputs only
    val_perplexity: Series = field(default_factory=Series)

    def record(self, kind: str, step: int, metrics: dict[str, float]) -> None:
        if kind == "step":
            self.loss.add(step, metrics.get("loss"))
            self.lr.add(step, metrics.get("lr"))
            self.tokens_per_s.add(step, metrics.get("tokens_per_s"))
        elif kind == "eval":
            self.val_loss.add(step, metrics.get("val_loss"))
            self.val_accuracy.add(step, metrics.get("val_accuracy"))
            self.val_mask_accuracy.add(step, metrics.get("val_mask_accuracy"))
            self.val_perplexity.add(step, metrics.get("val_perplexity"))

    def loss_spec(self) -> Spec:
        spec = _spec("Loss (masked-token cross-entropy)", "step", "loss", 380)
        if not self.loss and not self.val_loss:
            _empty_axes(spec, self.planned_steps, [0, 1.2 * (self._unigram_loss() or 8)])
            _note(spec, "The loss appears here once training starts.")
        if self.loss:
            evaluated = set(self.val_loss.steps)
            steps, raw = self.loss.thinned(keep_steps=evaluated)
            smoothed_steps, smoothed = self.loss.thinned(smooth(self.loss.values), evaluated)
            spec["data"] += [
                _line(steps, raw, "train (each step)", TRAIN_COLOR, width=1, opacity=0.35),
                _line(smoothed_steps, smoothed, "train (smoothed)", TRAIN_COLOR)]
        if self.val_loss:
            spec["data"].append(_line(self.val_loss.steps, self.val_loss.values, "validation",
                                      VALIDATION_COLOR, markers=True))
        if self.unigram_perplexity:
            _baseline(spec, self._unigram_loss(), f"unigram baseline {self._unigram_loss():.2f}")
        return spec

    def _unigram_loss(self) -> float | None:
        return math.log(self.unigram_perplexity) if self.unigram_perplexity else None

    def accuracy_spec(self) -> Spec:
        spec = _spec("Masked-token accuracy (validation)", "step", "accuracy (%)", 380,
                     rangemode="tozero")
        if self.val_accuracy:
            spec["data"].append(_line(self.val_accuracy.steps,
                                      _percent(self.val_accuracy.values), "all scored tokens",
                                      VALIDATION_COLOR, markers=True))
        if self.val_mask_accuracy:  # kept tokens can be copied; <mask> needs the context
            spec["data"].append(_line(self.val_mask_accuracy.steps,
                                      _percent(self.val_mask_accuracy.values),
                                      "where the input was masked (context alone)", TRAIN_COLOR,
                                      markers=True, width=2))
        if not self.val_accuracy:
            _empty_axes(spec, self.planned_steps, [0, 100])
            _note(spec, "Accuracy appears at the first evaluation.")
        if self.unigram_accuracy is not None:
            _baseline(spec, 100 * self.unigram_accuracy,
                      f"unigram baseline {100 * self.unigram_accuracy:.1f}%")
        return spec

    def perplexity_spec(self) -> Spec:
        spec = _spec("Perplexity (validation)", "step", "perplexity (log scale)", 300,
                     type="log")
        if self.val_perplexity:
            spec["data"].append(_line(self.val_perplexity.steps, self.val_perplexity.values,
                                      "validation", VALIDATION_COLOR, markers=True, width=2))
            # Room around the curve and the baseline (a log axis's range is in log10 units).
            shown = [*self.val_perplexity.values, self.unigram_perplexity or 0]
            low, high = min(self.val_perplexity.values), max(shown)
            spec["layout"]["yaxis"]["range"] = [math.log10(max(low, 1.0) / 1.3),
                                                math.log10(high * 1.3)]
            spec["layout"]["yaxis"].update(log_ticks(*spec["layout"]["yaxis"]["range"]))
        else:  # a log axis's range is in log10 units: 1 to twice the baseline, or to 10,000
            top = 2 * self.unigram_perplexity if self.unigram_perplexity else 1e4
            _empty_axes(spec, self.planned_steps, [0, math.log10(max(top, 10))])
            spec["layout"]["yaxis"].update(log_ticks(0, math.log10(max(top, 10))))
            _note(spec, "Perplexity appears at the first evaluation.")
        if self.unigram_perplexity:
            _baseline(spec, self.unigram_perplexity,
                      f"unigram baseline {self.unigram_perplexity:,.0f}")
        return spec

    def learning_rate_spec(self) -> Spec:
        spec = _spec("Learning rate", "step", "learning rate", 300)
        spec["layout"]["showlegend"] = False
        if self.lr:
            spec["data"].append(_line(*self.lr.thinned(), "learning rate", TRAIN_COLOR, 2))
        else:
            _empty_axes(spec, self.planned_steps)
            _note(spec, "Warmup, then a linear decay to zero.")
        return spec

    def throughput_spec(self) -> Spec:
        spec = _spec("Speed", "step", "tokens / s", 300, rangemode="tozero")
        spec["layout"]["showlegend"] = False
        if self.tokens_per_s:
            spec["data"].append(_line(*self.tokens_per_s.thinned(), "tokens/s",
                                      TRAIN_COLOR, 2))
        else:
            _empty_axes(spec, self.planned_steps)
            _note(spec, "Training speed appears here.")
        return spec

    def specs(self) -> tuple[Spec, ...]:
        """Loss, accuracy, perplexity, learning rate, tokens/s: the Train tab's plot order."""
        return (self.loss_spec(), self.accuracy_spec(), self.perplexity_spec(),
                self.learning_rate_spec(), self.throughput_spec())

    def figures(self) -> tuple[go.Figure, ...]:
        return tuple(as_figure(spec) for spec in self.specs())


@dataclass
class FinetuneHistory:
    """The Sentiment tab's fine-tuning curves: validation accuracy beside the TF-IDF baseline."""

    baseline_accuracy: float | None = None
    majority_accuracy: float | None = None  # known once a run has its data
    planned_steps: int | None = None
    loss: Series = field(default_factory=Series)
    val_accuracy: Series = field(default_factory=Series)
    val_macro_f1: Series = field(default_factory=Series)

    def record(self, kind: str, step: int, metrics: dict[str, float]) -> None:
        if kind == "step":
            self.loss.add(step, metrics.get("loss"))
        elif kind == "eval":
            self.val_accuracy.add(step, metrics.get("val_accuracy"))
            self.val_macro_f1.add(step, metrics.get("val_macro_f1"))

    def accuracy_spec(self) -> Spec:
        spec = _spec("Validation accuracy while fine-tuning", "step", "accuracy (%)", 380,
                     range=[0, 100])
        if self.val_accuracy:
            spec["data"] += [
                _line(self.val_accuracy.steps, _percent(self.val_accuracy.values),
                      "RoBERTa accuracy", VALIDATION_COLOR, markers=True),
                _line(self.val_macro_f1.steps, _percent(self.val_macro_f1.values),
                      "RoBERTa macro-F1", VALIDATION_COLOR, width=1.5, dash="dot")]
        else:
            _empty_axes(spec, self.planned_steps, [0, 100])
            _note(spec, "Accuracy appears at the first evaluation.")
        if self.baseline_accuracy is not None:
            _baseline(spec, 100 * self.baseline_accuracy,
                      f"TF-IDF + logistic regression {100 * self.baseline_accuracy:.1f}%")
        elif self.majority_accuracy is not None:  # a run is going: it is being fitted
            spec["layout"]["annotations"].append({
                "text": "TF-IDF baseline: computing…", "showarrow": False, "x": 0.01,
                "y": 0.03, "xref": "paper", "yref": "paper", "xanchor": "left",
                "font": {"color": BASELINE_COLOR, "size": 13}})
        if self.majority_accuracy is not None:
            _baseline(spec, 100 * self.majority_accuracy,
                      f"always the commonest class {100 * self.majority_accuracy:.1f}%")
        return spec

    def loss_spec(self) -> Spec:
        spec = _spec("Training loss", "step", "cross-entropy", 300)
        if self.loss:
            steps, raw = self.loss.thinned()
            smoothed_steps, smoothed = self.loss.thinned(smooth(self.loss.values))
            spec["data"] += [_line(steps, raw, "each step", TRAIN_COLOR, 1, opacity=0.35),
                             _line(smoothed_steps, smoothed, "smoothed", TRAIN_COLOR)]
        else:
            _empty_axes(spec, self.planned_steps)
            _note(spec, "The loss appears here once fine-tuning starts.")
        return spec
