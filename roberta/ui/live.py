"""Pieces both training tabs stream: a progress bar with ETA, plot values, the redraw pace."""

from __future__ import annotations

import html
import json

from gradio.components.plot import PlotData

from roberta.viz.curves import Spec

UPDATE_SECONDS = 0.5  # at most ~2 redraws a second: the charts move, the CPU keeps training


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
