"""The time-lapse block: a step slider and a play button that replay a run's snapshots
(roberta.timelapse) — the fixed sentence's attention per head, the head-role grid, how many heads
play each role, the embedding map and the probe guesses — for one run (Train tab, an imported
model) or two side by side under one slider (an Experiments pair).

The whole time-lapse goes to the page once per update as JSON (roberta.viz.timelapse.replay_data)
and the slider redraws in the browser: a server round trip per slider move, on a loaded 2-core
host, with four plotly figures, would not keep a drag under 300 ms. The block is a gr.HTML whose
value is that JSON; its script (js_on_load) draws with the page's plotly (the copy Gradio's
charts load; loaded here if no chart has yet) and redraws when a run sends a newer value, staying
on the snapshot the visitor chose unless they were at the latest one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from roberta.viz.timelapse import FIGURES, replay_data

# During a run, the time-lapse is re-sent at most this often (each send is the whole of it).
TIMELAPSE_SECONDS = 5.0
PLAY_FRAME_MS = 600  # how long play shows each snapshot
WAITING = ("The time-lapse appears here once the run has taken its first snapshot: then replay, "
           "at any step, the fixed sentence's attention in every head, the role each head plays, "
           "the embedding map and the probe guesses.")


def timelapse_value(timelapses: Sequence[Any | None], titles: Sequence[str] = (),
                    message: str = "") -> dict[str, Any]:
    """The block's value: each time-lapse that has a snapshot, replayable side by side, and a
    line of text (what the block waits for, or why there is no time-lapse)."""
    runs = []
    for i, timelapse in enumerate(timelapses):
        if timelapse is not None and timelapse.snapshots:
            runs.append(replay_data(timelapse, titles[i] if i < len(titles) else ""))
    return {"runs": runs, "message": message if message or runs else WAITING}


def live_value(send, timelapses: Sequence[Any | None], ended: bool,
               titles: Sequence[str] = ()):
    """A training tab's update of the block (`send`: its live.SendWhenChanged): the run's
    time-lapses when one has a new snapshot, at most every TIMELAPSE_SECONDS while they run
    (the page replays what it has meanwhile), and all of them once the run has ended."""
    counts = tuple(len(t.snapshots) if t is not None else 0 for t in timelapses)
    return send("timelapse", counts, lambda: timelapse_value(timelapses, titles), ended,
                TIMELAPSE_SECONDS)


def empty_value(message: str = WAITING) -> dict[str, Any]:
    return {"runs": [], "message": message}


@functools.cache
def plotly_chunk() -> str:
    """The file name of Gradio's plotly bundle in its frontend's assets (empty if not found):
    the page imports it when no chart has loaded plotly yet."""
    assets = Path(gr.__file__).parent / "templates" / "frontend" / "assets"
    found = sorted(assets.glob("PlotlyPlot-*.js"))
    return found[0].name if found else ""


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
.tl-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 8px; }
.tl-probes-table { font-size: 13px; border-collapse: collapse; }
.tl-probes-table td, .tl-probes-table th { padding: 2px 6px; border-bottom: 1px solid #e5e7eb; }
"""

# The block's script: `element` is the block, `props.value` its JSON, `watch` runs a function
# after the value changed (Gradio's gr.HTML). Every figure keeps its <div> for the page's life,
# so Plotly.react updates it in place (plot_cleanup.py purges any that leave the page).
SCRIPT = """
const FIGURES = __FIGURES__, CHUNK = __CHUNK__, PLAY_MS = __PLAY_MS__;
const state = {index: 0, follow: true, playing: false, drawing: false, again: false,
               dirty: true, runs: 0};
element.robertaTimelapse = state;  // for tests: the snapshot drawn, how long it took
const $ = s => element.querySelector(s);
const slider = $('.tl-slider'), play = $('.tl-play'), stepText = $('.tl-step');
const value = () => props.value || {};
const frames = () => Math.max(0, ...(value().runs || []).map(r => r.steps.length));
const visible = () => element.getClientRects().length > 0;

let asked = false;
function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!asked && CHUNK) {  // no chart on the page has loaded plotly yet: load Gradio's copy
    asked = true;
    const main = document.querySelector('script[type=module][src*="/assets/index-"]');
    if (main) import(main.src.replace(/[^/]*$/, CHUNK)).catch(() => {});
  }
  return new Promise(resolve => setTimeout(() => resolve(plotly()), 200));
}

function build(runs) {
  const box = $('.tl-runs');
  box.replaceChildren();
  for (const run of runs) {
    const column = document.createElement('div');
    column.className = 'tl-run';
    column.innerHTML = '<div class="tl-title"></div><div class="tl-line"></div>' +
      '<div class="tl-probes"></div><div class="tl-grid">' +
      FIGURES.map(f => '<div class="tl-fig" data-figure="' + f + '"></div>').join('') +
      '</div>';
    column.querySelector('.tl-title').textContent = run.title || '';
    box.appendChild(column);
  }
  state.runs = runs.length;
}

async function draw() {
  if (state.drawing) { state.again = true; return; }
  if (!visible()) { state.dirty = true; return; }
  state.drawing = true;
  const started = performance.now(), index = state.index;
  try {
    const P = await plotly();
    const runs = value().runs || [];
    if (runs.length !== state.runs) build(runs);
    const columns = element.querySelectorAll('.tl-run');
    const drawn = [];
    runs.forEach((run, r) => {
      const k = Math.min(index, run.steps.length - 1);
      columns[r].querySelector('.tl-line').textContent = run.lines[k];
      columns[r].querySelector('.tl-probes').innerHTML = run.probes[k];  // escaped server-side
      for (const name of FIGURES) {
        const figure = run.figures[name];
        const data = figure.data.map((trace, t) => Object.assign({}, trace, figure.frames[k][t]));
        const div = columns[r].querySelector('[data-figure="' + name + '"]');
        drawn.push(P.react(div, data, figure.layout, {responsive: true, displaylogo: false}));
      }
    });
    await Promise.all(drawn);
    state.dirty = false;
    state.drawn = index;
    state.lastMs = performance.now() - started;
    element.dispatchEvent(new CustomEvent('tl-drawn', {detail: index}));
  } finally {
    state.drawing = false;
  }
  if (state.again) { state.again = false; draw(); }
}

function show(index) {
  const n = frames();
  state.index = Math.max(0, Math.min(index, n - 1));
  state.follow = state.index === n - 1;
  slider.value = state.index;
  const runs = value().runs || [];
  stepText.textContent = runs.map(r => (runs.length > 1 ? (r.title || '').split(':')[0] + ' ' : '')
    + 'step ' + r.steps[Math.min(state.index, r.steps.length - 1)].toLocaleString('en'))
    .join(' · ') + '  (' + (state.index + 1) + ' of ' + n + ')';
  draw();
}

function stop() {
  state.playing = false;
  play.textContent = '▶ Play';
}

function tick() {
  if (!state.playing) return;
  if (state.index >= frames() - 1) { stop(); return; }
  show(state.index + 1);
  setTimeout(tick, PLAY_MS);
}

function update() {
  const n = frames();
  $('.tl-message').textContent = value().message || '';
  $('.tl-controls').hidden = n === 0;
  slider.max = Math.max(0, n - 1);
  if (n === 0) {  // a new run (or a model without a time-lapse): start over
    $('.tl-runs').replaceChildren();
    Object.assign(state, {runs: 0, index: 0, follow: true});
    stop();
    return;
  }
  show(state.follow || state.index > n - 1 ? n - 1 : state.index);
}

slider.addEventListener('input', () => { stop(); show(Number(slider.value)); });
play.addEventListener('click', () => {
  if (state.playing) { stop(); return; }
  state.playing = true;
  play.textContent = '⏸ Pause';
  if (state.index >= frames() - 1) show(0);
  setTimeout(tick, PLAY_MS);
});
new IntersectionObserver(entries => {
  if (entries.some(e => e.isIntersecting) && state.dirty && frames()) draw();
}).observe(element);
update();
watch('value', update);
"""


def script() -> str:
    import json

    return (SCRIPT.replace("__FIGURES__", json.dumps(list(FIGURES)))
            .replace("__CHUNK__", json.dumps(plotly_chunk()))
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
