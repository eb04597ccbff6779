"""The time-lapse block: a step slider and a play button that replay a run's snapshots
(roberta.timelapse) — the fixed sentence's attention per head, the head-role grid, how many heads
play each role, the embedding map and the probe guesses — for one run (Train tab, an imported
model) or two side by side under one slider (an Experiments pair).

The whole time-lapse goes to the page once per update as JSON text (roberta.viz.timelapse's
replay_data) and the slider redraws in the browser: a server round trip per slider move, on a
loaded 2-core host, would not keep a drag under 300 ms. The block is a gr.HTML whose value is
that text; its script (timelapse_view.js, run as the block's js_on_load) draws on canvases — a
snapshot in milliseconds, where plotly took 100-200 ms a figure — and redraws when a run sends a
newer value, staying on the snapshot the visitor chose unless they were at the latest one.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from roberta.viz.timelapse import MAP_SCALE, replay_data

# During a run, the time-lapse is re-sent at most this often (each send is the whole of it).
TIMELAPSE_SECONDS = 5.0
PLAY_FRAME_MS = 600  # how long play shows each snapshot
WAITING = ("The time-lapse appears here once the run has taken its first snapshot: then replay, "
           "at any step, the fixed sentence's attention in every head, the role each head plays, "
           "the embedding map and the probe guesses.")
NONE_TAKEN = ("This run kept no time-lapse: it ended before its first snapshot, or one snapshot "
              "of a model this large would not fit the time-lapse's size cap.")


def timelapse_value(timelapses: Sequence[Any | None], titles: Sequence[str] = (),
                    message: str = "") -> str:
    """The block's value: each time-lapse that has a snapshot, replayable side by side, and a
    line of text (what the block waits for, or why there is no time-lapse); as JSON text.

    Text, not an object: Gradio's page compares and copies an output's value as it streams a
    run's other updates (twice a second), and a string of a few hundred kB costs it next to
    nothing where the same data as nested arrays kept the page busy (measured: long tasks
    took the page's whole time while training). The block's script parses it once."""
    runs = []
    for i, timelapse in enumerate(timelapses):
        if timelapse is not None and timelapse.snapshots:
            runs.append(replay_data(timelapse, titles[i] if i < len(titles) else ""))
    return _text({"runs": runs, "message": message if message or runs else WAITING})


def live_value(send, timelapses: Sequence[Any | None], ended: bool,
               titles: Sequence[str] = ()):
    """A training tab's update of the block (`send`: its live.SendWhenChanged): the run's
    time-lapses when one has a new snapshot, at most every TIMELAPSE_SECONDS while they run
    (the page replays what it has meanwhile), and all of them once the run has ended."""
    counts = tuple(len(t.snapshots) if t is not None else 0 for t in timelapses)
    message = NONE_TAKEN if ended and not any(counts) else ""
    return send("timelapse", counts, lambda: timelapse_value(timelapses, titles, message),
                ended, TIMELAPSE_SECONDS)


def empty_value(message: str = WAITING) -> str:
    return _text({"runs": [], "message": message})


def _text(value: dict[str, Any]) -> str:
    """Compact JSON with every "<" escaped: the text can never read as a tag to anything."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")


TEMPLATE = """<div class="tl-block">
  <div class="tl-message"></div>
  <div class="tl-controls" hidden>
    <button class="tl-play" type="button">▶ Play</button>
    <input class="tl-slider" type="range" min="0" max="0" step="1" value="0"
           aria-label="Snapshot to show">
    <span class="tl-step"></span>
  </div>
  <div class="tl-runs"></div>
</div>"""

CSS = """
.tl-controls { display: flex; align-items: center; gap: 12px; margin: 6px 0; }
.tl-controls[hidden] { display: none; }
.tl-slider { flex: 1; }
.tl-play { padding: 4px 14px; border-radius: 6px; border: 1px solid #9ca3af; cursor: pointer; }
.tl-runs { display: flex; gap: 16px; flex-wrap: wrap; }
.tl-run { flex: 1 1 420px; min-width: 0; }
.tl-title { font-weight: 600; }
.tl-line { margin: 2px 0 6px; font-size: 14px; }
.tl-grid { display: grid; gap: 12px;
           grid-template-columns: repeat(auto-fit, minmax(min(340px, 100%), 1fr)); }
.tl-grid > div, .tl-probes { min-width: 0; overflow-x: auto; }  /* a phone scrolls a table */
.tl-caption { font-size: 13px; font-weight: 600; margin: 4px 0; }
.tl-sentence { font-size: 12px; color: #4b5563; margin-bottom: 4px; }
.tl-heads { display: grid; gap: 6px; }
.tl-head-title { font-size: 11px; text-align: center; }
.tl-head canvas, .tl-map { width: 100%; display: block; }
.tl-counts { width: 100%; display: block; }
.tl-legend { font-size: 11px; display: flex; flex-wrap: wrap; gap: 2px 10px; }
.tl-legend i { display: inline-block; width: 10px; height: 10px; margin-right: 3px;
               border-radius: 2px; }
.tl-roles { border-collapse: separate; border-spacing: 2px; font-size: 12px; }
.tl-roles td { padding: 3px 6px; text-align: center; border-radius: 3px; }
.tl-roles th { font-weight: normal; font-size: 11px; padding: 0 4px; }
.tl-probes-table { font-size: 13px; border-collapse: collapse; margin-bottom: 6px; }
.tl-probes-table td, .tl-probes-table th { padding: 2px 6px; border-bottom: 1px solid #e5e7eb; }
"""

SCRIPT_FILE = Path(__file__).with_name("timelapse_view.js")


@functools.cache
def script() -> str:
    """The block's script, with this module's constants."""
    return (SCRIPT_FILE.read_text().replace("__MAP_SCALE__", str(MAP_SCALE))
            .replace("__PLAY_MS__", str(PLAY_FRAME_MS)))


def timelapse_block(elem_id: str, message: str = WAITING, **kwargs) -> gr.HTML:
    """The block (empty until a value with snapshots arrives)."""
    return gr.HTML(empty_value(message), html_template=TEMPLATE, css_template=CSS,
                   js_on_load=script(), elem_id=elem_id, elem_classes=["timelapse"],
                   min_height=0, **kwargs)


def build_train_timelapse() -> gr.HTML:
    """Under the Train tab's charts."""
    with gr.Accordion("Time-lapse: watch it learn from the inside", open=True):
        gr.Markdown("Every few steps the run takes a **snapshot**. Drag the slider or press "
                    "**Play** to replay, at any step, how each head's attention on one fixed "
                    "sentence changed, which role each head took on (previous word, next word, "
                    "`<s>`…), how the embedding map sorted the most frequent words, and what "
                    "the model guessed for the probe sentences.")
        return timelapse_block("train-timelapse")
