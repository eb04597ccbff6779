"""The time-lapse of a training run (roberta.timelapse.TimeLapse) as the compact data a page
replays at any snapshot without asking the server again (`replay_data`), and readers of that
data at one snapshot (`attention_at`, `map_at`) that the tests hold against
the TimeLapse it was made from.

What the page draws from it (roberta/ui/timelapse_view.py):
- the attention of the fixed sentence, one heatmap per head (layers down, heads across), drawn
  on canvases: `attention.frames[i]` is every head's (T, T) weights, flattened, in whole percents;
- the role of every head: `roles[i]` the (L, H) labels, with ROLE_COLORS and ROLE_SHORT;
- how many heads play each role over the run (`counts`: a line per role over the steps), with a
  mark at the snapshot shown;
- the embedding map on fixed axes (`map.frames[i]`: each word's x and y as whole numbers
  0..MAP_SCALE of the axes' ranges, one PCA basis for the whole run: TimeLapse.map_points);
- the probe guesses (`probes[i]`, HTML escaped here) and a line about the step (`lines[i]`).

All four are drawn on canvases (and the roles as a table): a snapshot redraws in a few
milliseconds where plotly recomputed a whole figure per move (100-200 ms each on a loaded 2-core
host, even to move one line), so a drag of the slider keeps up. A micro run's 60 snapshots are
a few hundred kB of JSON.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

import numpy as np

from .attention import ROLE_SHORT
from .head_roles import MIXED, OFF, ROLES

ROLE_ORDER = (*ROLES, MIXED, OFF)
# One colour per label (the role grid, the counts' lines); mixed grey, off near-white.
ROLE_COLORS = {"previous": "#2563eb", "next": "#16a34a", "self": "#9333ea", "first": "#ea580c",
               "last": "#b45309", "punctuation": "#db2777", "broad": "#0891b2",
               MIXED: "#9ca3af", OFF: "#e5e7eb"}
SHORT = {role: html.unescape(ROLE_SHORT.get(role, role)) or "mixed" for role in ROLE_ORDER}
MAP_LABELS = 40  # the most frequent words are written on the map; the rest show on hover
MAP_SCALE = 9999  # map coordinates travel as whole numbers 0..MAP_SCALE of the axes' ranges


def token_label(token: str) -> str:
    """A token as a label: spaces made visible, so ' the' and 'the' look different."""
    return token.replace(" ", "␣").replace("\n", "↵") or "∅"


def attention_data(timelapse) -> dict[str, Any]:
    """Every snapshot's attention of the fixed sentence, every head, in whole percents."""
    L, H, T = timelapse.snapshots[0].attention.shape[:3]
    frames = [np.rint(np.asarray(s.attention, np.float32) * 100).astype(int).ravel().tolist()
              for s in timelapse.snapshots]
    return dict(layers=L, heads=H, tokens=[token_label(t) for t in timelapse.tokens],
                frames=frames)


def attention_at(data: dict[str, Any], index: int) -> np.ndarray:
    """(L, H, T, T) attention in [0, 1] at snapshot `index`, as the page reads it."""
    a = data["attention"]
    T = len(a["tokens"])
    return np.asarray(a["frames"][index], np.float32).reshape(a["layers"], a["heads"], T, T) / 100


def counts_data(timelapse) -> dict[str, Any]:
    """How many heads play each role at every snapshot: a line per role that ever occurs (in
    ROLE_ORDER), over the snapshots' steps, out of `heads`."""
    counts = timelapse.role_counts()
    return dict(steps=timelapse.steps(),
                heads=sum(len(row) for row in timelapse.snapshots[0].roles),
                lines={role: list(counts[role]) for role in ROLE_ORDER
                       if role in counts and any(counts[role])})


def map_data(timelapse) -> dict[str, Any]:
    """The map words' input embeddings in 2-D (TimeLapse.map_points: one PCA basis for the
    whole run) on axes fixed for the whole run, so a word's move between steps is its own."""
    points = np.asarray(timelapse.map_points(), dtype=np.float64)  # (S, W, 2)
    low, high = points.reshape(-1, 2).min(0), points.reshape(-1, 2).max(0)
    pad = (high - low) * 0.04 + 1e-9
    low, high = low - pad, high + pad
    scaled = np.rint((points - low) / (high - low) * MAP_SCALE).astype(int)
    return dict(words=list(timelapse.map_words), labelled=MAP_LABELS,
                x_range=[float(low[0]), float(high[0])], y_range=[float(low[1]), float(high[1])],
                frames=[dict(x=p[:, 0].tolist(), y=p[:, 1].tolist()) for p in scaled])


def map_at(data: dict[str, Any], index: int) -> np.ndarray:
    """(W, 2) map coordinates at snapshot `index`, as the page places them."""
    m = data["map"]
    frame = m["frames"][index]
    scaled = np.stack([frame["x"], frame["y"]], axis=1) / MAP_SCALE
    low = np.array([m["x_range"][0], m["y_range"][0]])
    high = np.array([m["x_range"][1], m["y_range"][1]])
    return low + scaled * (high - low)


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
        attention=attention_data(timelapse),
        roles=[[list(row) for row in s.roles] for s in timelapse.snapshots],
        role_colors=ROLE_COLORS, role_short=SHORT,
        counts=counts_data(timelapse), map=map_data(timelapse))
