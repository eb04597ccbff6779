"""Two training runs on the same charts: validation loss, accuracy (overall and where the input
was <mask>), perplexity and tokens/s, side A in blue and side B in orange, the legend naming
each side's value of the setting that differs.

Built as plain plotly JSON dicts like roberta/viz/curves.py (a live run redraws them twice a
second), but kept apart from it: these charts overlay two runs, those draw one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from roberta.viz.curves import log_ticks

Spec = dict[str, Any]
SIDE_COLORS = ("#1f63b4", "#e8710a")  # blue, orange: told apart by most colour-blind eyes
SIDE_DASH = (None, "dash")  # and by the line style, for print and projectors
GRID_COLOR = "#e5e5e5"
NOTE_COLOR = "#6b6b6b"
MAX_POINTS = 600  # tokens/s is recorded every step: thinned beyond this


@dataclass
class SideCurves:
    """One side's numbers, x in the comparison's units (steps, or sequences seen)."""

    x_per_step: float = 1.0
    tokens_per_s: list[tuple[float, float]] = field(default_factory=list)
    val_loss: list[tuple[float, float]] = field(default_factory=list)
    val_accuracy: list[tuple[float, float]] = field(default_factory=list)
    val_mask_accuracy: list[tuple[float, float]] = field(default_factory=list)
    val_perplexity: list[tuple[float, float]] = field(default_factory=list)

    def record(self, kind: str, step: int, metrics: dict[str, float]) -> None:
        x = step * self.x_per_step
        pairs = {"step": ("tokens_per_s",),
                 "eval": ("val_loss", "val_accuracy", "val_mask_accuracy", "val_perplexity")}
        for name in pairs.get(kind, ()):
            value = metrics.get(name)
            if value is not None and math.isfinite(value):
                getattr(self, name).append((x, float(value)))


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    k = math.ceil(len(points) / MAX_POINTS)
    return points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


@dataclass
class ComparisonHistory:
    """Both sides of a comparison, drawn together."""

    labels: tuple[str, str]
    setting: str  # what differs, e.g. "masking rate"
    x_title: str = "step"
    sides: tuple[SideCurves, SideCurves] = field(
        default_factory=lambda: (SideCurves(), SideCurves()))

    def record(self, side: int, kind: str, step: int, metrics: dict[str, float]) -> None:
        self.sides[side].record(kind, step, metrics)

    def _spec(self, title: str, y_title: str, height: int = 380, **yaxis: Any) -> Spec:
        axis = {"gridcolor": GRID_COLOR, "zerolinecolor": GRID_COLOR, "automargin": True}
        return {"data": [], "layout": {
            "title": {"text": title, "font": {"size": 17}}, "height": height,
            "margin": {"l": 60, "r": 20, "t": 50, "b": 120}, "font": {"size": 14},
            "paper_bgcolor": "white", "plot_bgcolor": "white",
            # Below the plot: four entries (two sides × two accuracies) would cover the title.
            "legend": {"orientation": "h", "yanchor": "top", "y": -0.3, "xanchor": "left",
                       "x": 0.0, "title": {"text": f"{self.setting}:"}},
            "xaxis": {"title": {"text": self.x_title}, **axis},
            "yaxis": {"title": {"text": y_title}, **axis, **yaxis},
            "uirevision": "keep", "annotations": []}}

    def _line(self, side: int, points: list[tuple[float, float]], name: str,
              dash: str | None = None, width: float = 3, markers: bool = True,
              percent: bool = False) -> dict[str, Any]:
        line = {"color": SIDE_COLORS[side], "width": width}
        if dash or SIDE_DASH[side]:
            line["dash"] = dash or SIDE_DASH[side]
        scale = 100 if percent else 1
        return {"type": "scatter", "x": [x for x, _ in points],
                "y": [scale * y for _, y in points], "name": name, "line": line,
                "mode": "lines+markers" if markers else "lines",
                "legendgroup": f"side{side}"}

    def _empty(self, spec: Spec, text: str) -> Spec:
        spec["layout"]["annotations"].append({
            "text": text, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper",
            "yref": "paper", "font": {"size": 15, "color": NOTE_COLOR}})
        return spec

    def accuracy_spec(self) -> Spec:
        spec = self._spec("Accuracy where the input was <mask> (thick) and overall (thin)",
                          "accuracy (%)", 640, rangemode="tozero")
        # Four long entries: one per line (side by side, the last ran off the chart's edge), and
        # a word on why the thin lines sit together (issue 33), in short lines that fit a phone;
        # the bottom margin holds both apart (at 210 px the note touched the legend and its last
        # line was cut off).
        spec["layout"]["legend"].update(orientation="v", y=-0.22)
        spec["layout"]["margin"]["b"] = 290
        spec["layout"]["annotations"].append({
            "text": "Overall accuracy counts the chosen tokens<br>left as they were, which any "
                    "model copies:<br>the thin lines sit together; the thick lines,<br>at "
                    "<mask>, show what context taught.".replace("<mask>", "&lt;mask&gt;"),
            "xref": "paper", "yref": "paper", "x": 0, "y": -0.7, "xanchor": "left",
            "yanchor": "top", "showarrow": False, "align": "left",
            "font": {"size": 12, "color": NOTE_COLOR}})
        for side, curves in enumerate(self.sides):
            label = self.labels[side]
            if curves.val_mask_accuracy:
                spec["data"].append(self._line(side, curves.val_mask_accuracy,
                                               f"{label}: at <mask>", percent=True))
            if curves.val_accuracy:
                spec["data"].append(self._line(side, curves.val_accuracy,
                                               f"{label}: overall", width=1.5, markers=False,
                                               percent=True))
        if not spec["data"]:
            self._empty(spec, "Both runs' accuracy appears at their first evaluation.")
        return spec

    def loss_spec(self) -> Spec:
        spec = self._spec("Validation loss", "loss")
        for side, curves in enumerate(self.sides):
            if curves.val_loss:
                spec["data"].append(self._line(side, curves.val_loss, self.labels[side]))
        if not spec["data"]:
            self._empty(spec, "The validation loss appears at the first evaluation.")
        return spec

    def perplexity_spec(self) -> Spec:
        spec = self._spec("Validation perplexity", "perplexity (log scale)", type="log")
        for side, curves in enumerate(self.sides):
            if curves.val_perplexity:
                spec["data"].append(self._line(side, curves.val_perplexity, self.labels[side]))
        values = [y for curves in self.sides for _, y in curves.val_perplexity if y > 0]
        if values:  # whole-number ticks (plotly's own label a decade's 2 and 5 as bare digits)
            span = [math.log10(max(min(values), 1.0) / 1.3), math.log10(max(values) * 1.3)]
            spec["layout"]["yaxis"].update(range=span, **log_ticks(*span))
        if not spec["data"]:
            self._empty(spec, "Perplexity appears at the first evaluation.")
        return spec

    def throughput_spec(self) -> Spec:
        spec = self._spec("Speed (each side's own steps)", "tokens / s", rangemode="tozero")
        for side, curves in enumerate(self.sides):
            if curves.tokens_per_s:
                spec["data"].append(self._line(side, _thin(curves.tokens_per_s),
                                               self.labels[side], width=2, markers=False))
        if not spec["data"]:
            self._empty(spec, "Training speed appears here.")
        return spec

    def specs(self) -> tuple[Spec, ...]:
        """Accuracy, loss, perplexity, tokens/s: the Experiments tab's order."""
        return (self.accuracy_spec(), self.loss_spec(), self.perplexity_spec(),
                self.throughput_spec())
