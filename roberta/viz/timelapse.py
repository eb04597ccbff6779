"""The time-lapse of a training run (roberta.timelapse.TimeLapse) as figures at any snapshot, and
the compact data a page replays them from without asking the server again.

`replay_data(timelapse)` is plain JSON: the snapshots' steps and one line about each, the probe
guesses as HTML per snapshot, and four plotly figures — the attention of the fixed sentence
(one heatmap per head), the head-role grid, how many heads play each role over the run, and the
embedding map. Each figure is `{"data", "layout", "frames"}`: `data` and `layout` are drawn once,
and `frames[i]` holds, per trace, only what changes at snapshot i (a heatmap's `z`, the map's
`x`/`y`; `{}` for a trace that stays). `figure_at(figure, i)` merges them the way the page's
script does (roberta/ui/timelapse_view.py), so a test of the figure at step i tests what the
page draws there.

Numbers are rounded for the page: attention as whole percents, map coordinates to 4 significant
digits of the map's extent. A micro run's 60 snapshots make well under a megabyte of JSON.
"""

from __future__ import annotations

import dataclasses
import html
import math
from typing import Any

import numpy as np

from .attention import ROLE_SHORT, SEQUENTIAL, _labels, plotly_text
from .head_roles import MIXED, OFF, ROLES

ROLE_ORDER = (*ROLES, MIXED, OFF)
# One colour per label (the role grid, the counts' lines); mixed grey, off near-white.
ROLE_COLORS = {"previous": "#2563eb", "next": "#16a34a", "self": "#9333ea", "first": "#ea580c",
               "last": "#b45309", "punctuation": "#db2777", "broad": "#0891b2",
               MIXED: "#9ca3af", OFF: "#e5e7eb"}
MAP_LABELS = 40  # the most frequent words are written on the map; the rest show on hover
FIGURES = ("attention", "roles", "counts", "map")


def _percent(attention: np.ndarray) -> list:
    """(T, T) probabilities as whole percents: the page's colour needs no more."""
    return np.rint(np.asarray(attention, dtype=np.float32) * 100).astype(int).tolist()


def _axis_domains(n: int, gap: float) -> list[tuple[float, float]]:
    size = (1 - gap * (n - 1)) / n
    return [(round(i * (size + gap), 4), round(i * (size + gap) + size, 4)) for i in range(n)]


def attention_figure(timelapse) -> dict[str, Any]:
    """One heatmap per head (layers down, heads across) of the fixed sentence; rows are the
    tokens attending, columns the tokens attended to."""
    snapshots = timelapse.snapshots
    L, H, T = snapshots[0].attention.shape[:3]
    labels = _labels(list(timelapse.tokens))
    hover = [[f"{labels[q]} → {labels[k]}" for k in range(T)] for q in range(T)]
    layout: dict[str, Any] = dict(
        title=dict(text="Attention of the fixed sentence, every head (row: token looking, "
                        "column: token looked at)", font=dict(size=13)),
        height=70 + L * max(110, min(230, 760 // H)), margin=dict(l=70, r=10, t=60, b=60),
        coloraxis=dict(colorscale=SEQUENTIAL, cmin=0, cmax=100,
                       colorbar=dict(title="%", thickness=10)),
        annotations=[], showlegend=False)
    data = []
    columns, rows = _axis_domains(H, 0.03), _axis_domains(L, 0.08)
    for layer in range(L):
        for head in range(H):
            n = layer * H + head + 1
            suffix = "" if n == 1 else str(n)
            x_dom, y_dom = columns[head], rows[L - 1 - layer]
            layout[f"xaxis{suffix}"] = dict(
                domain=x_dom, anchor=f"y{suffix}", tickmode="array", tickvals=list(range(T)),
                ticktext=labels, showticklabels=layer == L - 1, tickangle=-60,
                tickfont=dict(size=9))
            layout[f"yaxis{suffix}"] = dict(
                domain=y_dom, anchor=f"x{suffix}", tickmode="array", tickvals=list(range(T)),
                ticktext=labels, showticklabels=head == 0, autorange="reversed",
                tickfont=dict(size=9))
            layout["annotations"].append(dict(
                text=f"layer {layer + 1} · head {head + 1}", showarrow=False, xref="paper",
                yref="paper", x=(x_dom[0] + x_dom[1]) / 2, y=y_dom[1], yanchor="bottom",
                font=dict(size=11)))
            data.append(dict(type="heatmap", xaxis=f"x{suffix}", yaxis=f"y{suffix}",
                             coloraxis="coloraxis", text=hover,
                             name=f"layer {layer + 1} head {head + 1}",
                             hovertemplate="%{text}: %{z}%<extra>%{fullData.name}</extra>"))
    frames = [[{"z": _percent(s.attention[layer, head])} for layer in range(L)
               for head in range(H)] for s in snapshots]
    return dict(data=data, layout=layout, frames=frames)


def roles_figure(timelapse) -> dict[str, Any]:
    """The role of every head (layers down, heads across), coloured and written on its cell."""
    first = timelapse.snapshots[0].roles
    L, H = len(first), len(first[0])
    index = {role: i for i, role in enumerate(ROLE_ORDER)}
    n = len(ROLE_ORDER)
    # A stepped colour scale: label i fills [i / n, (i + 1) / n] of the range 0..n-1.
    scale = []
    for i, role in enumerate(ROLE_ORDER):
        scale += [[i / n, ROLE_COLORS[role]], [(i + 1) / n, ROLE_COLORS[role]]]
    data = [dict(type="heatmap", x=[f"head {h + 1}" for h in range(H)],
                 y=[f"layer {layer + 1}" for layer in range(L)], colorscale=scale,
                 zmin=-0.5, zmax=n - 0.5, showscale=False, xgap=2, ygap=2,
                 texttemplate="%{text}", textfont=dict(size=11),
                 hovertemplate="%{y}, %{x}: %{text}<extra></extra>")]
    layout = dict(title=dict(text="The role each head plays", font=dict(size=13)),
                  height=90 + 34 * L, margin=dict(l=70, r=10, t=40, b=30),
                  yaxis=dict(autorange="reversed"))
    frames = [[{"z": [[index.get(r, index[MIXED]) for r in row] for row in s.roles],
                "text": [[ROLE_SHORT.get(r, r) or "mixed" for r in row] for row in s.roles]}]
              for s in timelapse.snapshots]
    return dict(data=data, layout=layout, frames=frames)


def counts_figure(timelapse) -> dict[str, Any]:
    """How many heads play each role at every snapshot, a line per role (those that ever
    occur), and a dashed line at the snapshot shown."""
    steps = list(timelapse.steps())
    counts = timelapse.role_counts()
    heads = sum(len(row) for row in timelapse.snapshots[0].roles)
    data = [dict(type="scatter", mode="lines+markers", x=steps, y=list(counts[role]),
                 name=role, line=dict(color=ROLE_COLORS.get(role, "#6b7280"), width=2),
                 marker=dict(size=4))
            for role in ROLE_ORDER if role in counts and any(counts[role])]
    data.append(dict(type="scatter", mode="lines", x=[steps[0], steps[0]], y=[0, heads],
                     name="shown", showlegend=False, hoverinfo="skip",
                     line=dict(color="#111827", width=1, dash="dot")))
    layout = dict(title=dict(text="How many heads play each role", font=dict(size=13)),
                  height=260, margin=dict(l=50, r=10, t=40, b=40),
                  xaxis=dict(title="step"), yaxis=dict(title="heads", range=[0, heads + 0.5],
                                                       dtick=max(1, heads // 8)),
                  legend=dict(font=dict(size=10)))
    frames = [[{} for _ in data[:-1]] + [{"x": [step, step]}] for step in steps]
    return dict(data=data, layout=layout, frames=frames)


def _rounding(extent: float) -> int:
    """Decimals that keep 4 significant digits of the map's extent."""
    return max(0, 3 - math.floor(math.log10(extent))) if extent > 0 else 3


def map_figure(timelapse) -> dict[str, Any]:
    """The map words' input embeddings in 2-D (TimeLapse.map_points: one PCA basis for the
    whole run), on fixed axes so a word's move between steps is its own."""
    points = np.asarray(timelapse.map_points(), dtype=np.float64)  # (S, W, 2)
    words = [plotly_text(w) for w in timelapse.map_words]
    low, high = points.reshape(-1, 2).min(0), points.reshape(-1, 2).max(0)
    pad = (high - low) * 0.06 + 1e-9
    decimals = _rounding(float((high - low).max()))
    data = [dict(type="scatter", mode="markers+text",
                 text=[w if i < MAP_LABELS else "" for i, w in enumerate(words)],
                 hovertext=words, hoverinfo="text", textposition="top center",
                 textfont=dict(size=10, color="#374151"),
                 marker=dict(size=5, color="#2563eb", opacity=0.6))]
    layout = dict(title=dict(text=f"Embedding map: the {len(words)} most frequent words",
                             font=dict(size=13)),
                  height=420, margin=dict(l=40, r=10, t=40, b=30), showlegend=False,
                  xaxis=dict(range=[low[0] - pad[0], high[0] + pad[0]], zeroline=False),
                  yaxis=dict(range=[low[1] - pad[1], high[1] + pad[1]], zeroline=False))
    frames = [[{"x": np.round(p[:, 0], decimals).tolist(),
                "y": np.round(p[:, 1], decimals).tolist()}] for p in points]
    return dict(data=data, layout=layout, frames=frames)


def _word(token: str) -> str:
    return token.strip() or repr(token)


def probes_html(probe_texts, probes) -> str:
    """The probe sentences with the first guess in bold, then the top 5 with probabilities."""
    rows = []
    for i, sentence in enumerate(probe_texts):
        guesses = probes[i] if i < len(probes) else []
        text = html.escape(sentence)
        if guesses:
            first = f"<b>{html.escape(_word(guesses[0][0]))}</b>"
            text = text.replace("&lt;mask&gt;", first, 1)
        cells = "".join(f"<td>{html.escape(_word(token))} ({probability:.0%})</td>"
                        for token, probability in guesses[:5])
        rows.append(f"<tr><td>{text}</td>{cells}</tr>")
    return ("<table class='tl-probes-table'><thead><tr><th>Probe (first guess in bold)</th>"
            "<th colspan='5'>top 5 guesses</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def step_line(snapshot) -> str:
    """One line about a snapshot: its step and the validation figures of that step."""
    line = f"step {snapshot.step:,}"
    metrics = snapshot.metrics or {}
    if "val_mask_accuracy" in metrics:
        line += f" · validation accuracy where the input was <mask>: " \
                f"{metrics['val_mask_accuracy']:.1%}"
    if "val_loss" in metrics:
        line += f" · validation loss {metrics['val_loss']:.3f}"
    return line


def replay_data(timelapse, title: str = "") -> dict[str, Any]:
    """Everything a page needs to replay `timelapse` at any snapshot (see the module's text).
    ValueError when it holds no snapshot."""
    # One consistent list: a live run appends snapshots while the page's data is made.
    timelapse = dataclasses.replace(timelapse, snapshots=list(timelapse.snapshots))
    if not timelapse.snapshots:
        raise ValueError("the time-lapse holds no snapshot yet")
    return dict(
        title=title, sentence=timelapse.sentence, steps=timelapse.steps(),
        lines=[step_line(s) for s in timelapse.snapshots],
        probes=[probes_html(timelapse.probe_texts, s.probes) for s in timelapse.snapshots],
        figures=dict(attention=attention_figure(timelapse), roles=roles_figure(timelapse),
                     counts=counts_figure(timelapse), map=map_figure(timelapse)))


def figure_at(figure: dict[str, Any], index: int) -> dict[str, Any]:
    """The plotly figure (data, layout) at snapshot `index`: each trace with its frame merged
    in, as the page draws it."""
    frame = figure["frames"][index]
    return dict(data=[{**trace, **patch} for trace, patch in zip(figure["data"], frame,
                                                                  strict=True)],
                layout=figure["layout"])
