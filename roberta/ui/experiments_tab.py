"""Experiments tab: press one button and watch two training runs that differ in one choice —
on the same data, seed and budget — drawn on the same charts, with what the RoBERTa paper found
beside it and, at the end, what this run found, measured against the seed-to-seed spread.

The two runs are one job (roberta/experiments.py: PairedRun, one step of A then one of B) and
take one turn of the host's training slots (limits.TRAINING_QUEUE); Stop stops both. Both
models join this browser session's models, so the Fill-mask, Attention and Sentiment tabs can
use them (and Fill-mask and Sentiment can compare two models side by side).

API (gradio_client): `/compare` takes the comparison first ("init", "masking", "packing",
"mask_rate", "batch", "vocab" or "custom"); everything else has a default, so
`client.predict("init", api_name="/compare")` runs the plateau comparison at its defaults.
`/stop_comparison` stops this session's comparison.
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass, field

import gradio as gr

from roberta.experiments import COMPARISONS, CUSTOM_ID, Comparison, verdict
from roberta.training.engine import TrainEvent
from roberta.ui import registry, timelapse_view
from roberta.ui.common import markdown_literal, plain_errors, request_stop, start_stop
from roberta.ui.experiment_job import (
    CUSTOM_SETTINGS,
    ExperimentJob,
    build_job,
    comparison_for,
    side_settings,
)
from roberta.ui.limits import current_limits
from roberta.ui.live import UPDATE_SECONDS, SendWhenChanged, duration, plot_value, progress_html
from roberta.ui.runs import stream_run
from roberta.viz.compare_curves import SIDE_COLORS, ComparisonHistory

COMPARISON_CHOICES = [(c.title, c.id) for c in COMPARISONS.values()] + [
    ("Custom: any two values of one Train-tab setting", CUSTOM_ID)]
DEFAULT_COMPARISON = "init"
DEFAULT_STEPS = COMPARISONS[DEFAULT_COMPARISON].sides()[0]["max_steps"]


def describe(comparison: Comparison) -> str:
    """The paragraph beside the charts: the setting, what the paper found, how it is fair."""
    a, b = (markdown_literal(x) for x in (comparison.label_a, comparison.label_b))
    return (f"**{markdown_literal(comparison.title)}** — "
            f"<span style='color:{SIDE_COLORS[0]}'>■ A: {a}</span> vs "
            f"<span style='color:{SIDE_COLORS[1]}'>■ B: {b}</span>\n\n"
            f"**What the paper found.** {markdown_literal(comparison.paper)}\n\n"
            + (f"**What this lab measured before.** {markdown_literal(comparison.lab)}\n\n"
               if comparison.lab else "")
            + f"**Keeping it fair.** {markdown_literal(comparison.fairness)}")


def describe_choice(comparison_id: str) -> tuple:
    """The paragraph and the custom controls' visibility for a dropdown choice."""
    custom = comparison_id == CUSTOM_ID
    text = ("**Custom.** Pick one Train-tab setting and give each side a value: everything "
            "else is the Train tab's default run, with the same text, seed and budget."
            if custom else describe(COMPARISONS[comparison_id]))
    return text, gr.update(visible=custom)


@dataclass
class CompareView:
    comparison: Comparison
    history: ComparisonHistory
    max_steps: tuple[int, int]
    steps: list[int] = field(default_factory=lambda: [0, 0])
    last_eval: list[dict] = field(default_factory=lambda: [{}, {}])
    last_eval_step: list[int] = field(default_factory=lambda: [-1, -1])
    tokens_per_s: list[float] = field(default_factory=lambda: [0.0, 0.0])
    status: str = ""
    paragraph: str = ""
    result: str = ""
    models: str = ""
    elapsed: float | None = None
    note: str = ""
    shown_at: float = 0.0
    timelapses: tuple = (None, None)  # each side's TimeLapse, growing as it trains
    ended: bool = False
    send: SendWhenChanged = field(default_factory=SendWhenChanged)

    def record(self, side: int, event: TrainEvent) -> None:
        self.history.record(side, event.kind, event.step, event.metrics)
        self.steps[side] = event.step
        self.elapsed = event.elapsed
        if event.kind == "step":
            self.tokens_per_s[side] = event.metrics.get("tokens_per_s", 0.0)
        if event.kind == "eval":
            self.last_eval[side], self.last_eval_step[side] = event.metrics, event.step

    def due(self, event: TrainEvent) -> bool:
        return event.kind in ("eval", "done", "stopped", "failed") or \
            time.monotonic() - self.shown_at >= UPDATE_SECONDS

    def progress(self) -> str:
        """Side A's steps on the bar (B moves through the same data alongside), B's beside."""
        done = min(self.steps[0] / self.max_steps[0], self.steps[1] / self.max_steps[1])
        eta = self.elapsed / done * (1 - done) if self.elapsed and done > 0 else None
        note = " · ".join(x for x in (f"B: step {self.steps[1]:,} / {self.max_steps[1]:,}",
                                      self.note) if x)
        return progress_html(self.steps[0], self.max_steps[0], self.elapsed, eta,
                             sum(self.tokens_per_s) / 2 or None, note)

    def outputs(self, session=None, charts: bool = True) -> tuple:
        self.shown_at = time.monotonic()
        plots = tuple(plot_value(s) for s in self.history.specs()) if charts else \
            (gr.skip(),) * 4
        titles = [f"{side}: {label}" for side, label in
                  zip("AB", (self.comparison.label_a, self.comparison.label_b), strict=True)]
        replay = timelapse_view.live_value(self.send, self.timelapses, self.ended, titles)
        return (self.status, self.progress(), self.paragraph + self.result, *plots, replay,
                self.models, gr.skip() if session is None else session)


def _model_names(session: dict, comparison: Comparison, steps: tuple[int, int]) -> list[str]:
    taken = set(registry.choices(session, "mlm")) | set(registry.choices(session, "classifier"))
    n = 1
    while any(t.startswith(f"Experiment {n} ") for t in taken):
        n += 1
    return [f"Experiment {n} {side}: {label} ({s:,} steps)" for side, label, s in
            zip("AB", (comparison.label_a, comparison.label_b), steps, strict=True)]


def start_comparison(comparison: str = DEFAULT_COMPARISON, max_steps: float | None = 0,
                     seed: float = 0, custom_setting: str = "learning_rate",
                     custom_a: str = "1e-3", custom_b: str = "4e-3", control=None,
                     session=None):
    """Stream a comparison into the tab's outputs (see CompareView.outputs). Both runs together
    take one turn of the host's training queue (runs.stream_run)."""
    control = control if isinstance(control, dict) else {}
    session = session if isinstance(session, dict) else {}
    steps = int(max_steps) if max_steps not in (None, "", 0) else None  # 0: its default
    with plain_errors("Checking the comparison"):
        chosen = comparison_for(comparison, custom_setting, custom_a, custom_b)
        side_a, side_b, warnings = side_settings(chosen, seed, steps)
    for warning in warnings:
        gr.Warning(warning)
    x_title = "step"
    if side_a.settings.batch_size != side_b.settings.batch_size:
        x_title = "sequences seen"
    history = ComparisonHistory((f"A: {chosen.label_a}", f"B: {chosen.label_b}"),
                                chosen.setting, x_title)
    view = CompareView(chosen, history, (side_a.settings.max_steps, side_b.settings.max_steps),
                       paragraph=describe(chosen))

    def show(message: str) -> tuple:
        view.status = message
        return view.outputs(charts=False)

    def run(stop_requested: threading.Event):
        yield show("Preparing both runs: corpus, tokenizer and packed data (cached after the "
                   "first time)…")
        embedded = registry.embedded("mlm")
        with plain_errors("Preparing the two runs"):
            job = build_job(chosen, seed, steps, embedded.tokenizer if embedded else None,
                            stopped=stop_requested.is_set)
        if job is None or stop_requested.is_set():
            view.status = "Stopped before training began."
            yield view.outputs()
            return
        control["trainer"] = job.pair  # request_stop() calls its stop(): both sides stop
        view.timelapses = tuple(t.timelapse for t in job.trainers)
        for side, settings in enumerate(s.settings for s in job.sides):
            if x_title != "step":
                history.sides[side].x_per_step = settings.batch_size
        view.max_steps = tuple(t.config.max_steps for t in job.trainers)
        view.note = " ".join(job.notes)
        with plain_errors("Training"):
            yield from _train(job, view, control, session)

    with plain_errors("Joining the training queue"):
        yield from stream_run(control, run, show, what="comparison")


def _train(job: ExperimentJob, view: CompareView, control: dict, session: dict):
    stop_requested: threading.Event = control["stop"]
    max_seconds = current_limits().max_run_seconds
    ending = ""
    view.status = "Training both runs, one step of each in turn…"
    last: list[TrainEvent | None] = [None, None]
    for paired in job.pair.run():
        event = paired.event
        last[paired.side] = event
        view.record(paired.side, event)
        if stop_requested.is_set():
            job.pair.stop()
        if event.elapsed > max_seconds and not ending:
            ending = (f" They reached this app's limit of {duration(max_seconds)} per run "
                      f"(ROBERTA_LAB_MAX_RUN_SECONDS).")
            job.pair.stop()
        if view.due(event):
            yield view.outputs()
    for side, trainer in enumerate(job.trainers):  # stopped runs: score what they leave
        if trainer.step > view.last_eval_step[side] and trainer.step > 0:
            metrics, _ = trainer.evaluate()
            view.record(side, TrainEvent("eval", trainer.step, trainer.config.max_steps,
                                         view.elapsed or 0.0, metrics))
    view.ended = True
    failed = [e.message for e in last if e is not None and e.kind == "failed"]
    for message in failed:
        gr.Warning(message)
    if min(t.step for t in job.trainers) == 0:
        view.status = "Stopped before the first step; no models were kept."
        yield view.outputs()
        return
    names = _model_names(session, job.comparison, tuple(t.step for t in job.trainers))
    for side, name, trainer, label in zip("AB", names, job.trainers, job.labels, strict=True):
        source = (f"trained here for {trainer.step:,} steps, side {side} of the comparison "
                  f"“{job.comparison.title}” ({label})")
        session = registry.add(session, registry.LoadedModel(
            name, "mlm", trainer.model.eval(), trainer.tokenizer,
            registry.describe(trainer.model, source), trainer.timelapse))
    control["last_models"] = names
    a, b = job.trainers
    found = verdict(job.comparison, job.labels[0], job.labels[1], a.step, view.last_eval[0],
                    view.last_eval[1], a.masked_positions(), job.spread, job.budget_matches and
                    a.step == a.config.max_steps)
    finished = all(e is not None and e.kind == "done" for e in last)
    # Apart from the paper's findings above: a rule, then this run's own (issue 33).
    view.result = f"\n\n---\n\n**What this run found.** {html.escape(found.text, quote=False)}"
    view.models = "\n".join(names)
    view.status = (f"{'Finished' if finished else 'Stopped'}: A after {a.step:,} steps, B "
                   f"after {b.step:,}, in {duration(view.elapsed)}. Both models are now in "
                   f"the Fill-mask, Attention and Sentiment tabs (this browser session only)."
                   f"{ending}")
    yield view.outputs(session=session)


def stop_comparison(control: dict | None) -> str:
    """Ask this session's comparison to stop both runs after the current step."""
    return request_stop(control, "comparison", "both models trained so far are kept.")


INTRO = """Two training runs that differ in **one** choice, trained together — one step of A,
then one of B, on the same text, the same batches and the same seed — and drawn on the same
charts. Pick one of the RoBERTa paper's ablations (or your own), press **Compare**, and see for
yourself why RoBERTa made the choices it made. At the end the tab says what this run found,
and whether the difference is larger than the spread between seeds or **within noise**. The two
runs count as one training run on this host; both models stay available in the other tabs."""


def build_experiments_tab(session: gr.State) -> None:
    control = gr.State({})
    gr.Markdown(INTRO)
    with gr.Row(equal_height=True):
        comparison = gr.Dropdown(COMPARISON_CHOICES, value=DEFAULT_COMPARISON,
                                 label="Comparison", scale=4, elem_id="compare-choice",
                                 allow_custom_value=True)
        start_button = gr.Button("▶ Compare", variant="primary", scale=1, size="lg",
                                 elem_id="compare-start")
        stop_button = gr.Button("■ Stop both", variant="stop", scale=1, size="lg",
                                interactive=False, elem_id="compare-stop")
    with gr.Row(visible=False) as custom_row:
        custom_setting = gr.Dropdown(list(CUSTOM_SETTINGS), value="learning_rate",
                                     label="Setting that differs", allow_custom_value=True)
        custom_a = gr.Textbox("1e-3", label="Side A's value")
        custom_b = gr.Textbox("4e-3", label="Side B's value")
    with gr.Accordion("Budget and seed", open=False), gr.Row():
        max_steps = gr.Number(0, precision=0, label="Steps of side A (0: the comparison's "
                                                    "default)",
                              info=f"the defaults ({DEFAULT_STEPS} steps) were chosen to "
                                   f"finish in about two minutes on a 2-core CPU, and "
                                   f"their seed-to-seed spread was measured")
        seed = gr.Number(0, precision=0, label="Seed (the same for both runs)")
    paragraph = gr.Markdown(describe(COMPARISONS[DEFAULT_COMPARISON]),
                            elem_id="compare-paragraph")
    status = gr.Markdown("Press **Compare**.", elem_id="compare-status")
    progress = gr.HTML(progress_html(), elem_id="compare-progress")
    empty = ComparisonHistory(("A", "B"), "")
    with gr.Row():
        accuracy_plot = gr.Plot(plot_value(empty.accuracy_spec()), show_label=False,
                                label="Accuracy", elem_id="compare-accuracy-plot")
        loss_plot = gr.Plot(plot_value(empty.loss_spec()), show_label=False,
                            label="Validation loss", elem_id="compare-loss-plot")
    with gr.Row():
        perplexity_plot = gr.Plot(plot_value(empty.perplexity_spec()), show_label=False,
                                  label="Perplexity")
        speed_plot = gr.Plot(plot_value(empty.throughput_spec()), show_label=False,
                             label="Tokens per second")
    with gr.Accordion("Time-lapse of both runs, side by side", open=True):
        gr.Markdown("One slider replays both runs at the same snapshot: each head's attention "
                    "on a fixed sentence, the role it plays, the embedding map and the probe "
                    "guesses of side A beside side B's.")
        replay = timelapse_view.timelapse_block("compare-timelapse")
    models = gr.Textbox(label="The two models (selectable in the other tabs)", lines=2,
                        interactive=False, elem_id="compare-models")

    comparison.change(describe_choice, comparison, [paragraph, custom_row], queue=False,
                      api_visibility="private")
    inputs = [comparison, max_steps, seed, custom_setting, custom_a, custom_b, control, session]
    outputs = [status, progress, paragraph, accuracy_plot, loss_plot, perplexity_plot,
               speed_plot, replay, models, session]
    start_stop(start_button, stop_button, start_comparison, inputs, outputs,
               api_name="compare", concurrency_limit=None, show_progress="hidden")
    stop_answer = gr.Textbox(visible=False, label="Stop")
    stop_button.click(stop_comparison, control, stop_answer, api_name="stop_comparison",
                      concurrency_limit=None, show_progress="hidden")
