"""Train tab: pretrain a small RoBERTa from scratch and watch it learn.

Start is a generator: it waits for a training slot (runs take turns, see limits.py), prepares
the data (cached per process), then streams the Pretrainer's events as charts, a progress bar
and a table of the model's guesses for probe sentences. Stop sets the trainer's stop flag, so
the run ends after the current step with a usable model. Every finished or stopped model is
added to this browser session's models (registry.add) and can be downloaded as a zip in the
Hugging Face format.

API (gradio_client): `/train` takes the number of steps first; every other setting has a
default, so `client.predict(30, api_name="/train")` trains the default model for 30 steps on
the bundled corpus. `/stop_training` stops this session's run; `/download_model` returns the
zip of this session's last trained model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import gradio as gr
import torch
from gradio.context import Context

from roberta.config import PRESETS
from roberta.inference import FillMaskResult
from roberta.model import RobertaForMaskedLM
from roberta.settings import SettingError, declared
from roberta.training.config import PRECISIONS, default_learning_rate, default_warmup
from roberta.training.engine import TrainEvent
from roberta.training.pretrain_settings import (
    CORPUS_CHOICES,
    DEVICE_CHOICES,
    INIT_LABELS,
    ONE_MINUTE_RUN,
    SIZE_CHOICES,
    TOKENIZER_CHOICES,
    PretrainSettings,
    model_config,
    pretrain_config,
    with_shape,
)
from roberta.training.pretraining import Pretrainer
from roberta.ui import downloads, registry, timelapse_view
from roberta.ui import pretrain_job as job
from roberta.ui.common import plain_errors, request_stop, start_stop, user_error
from roberta.ui.limits import current_limits
from roberta.ui.live import (
    EVAL_CHART_SECONDS,
    UPDATE_SECONDS,
    SendWhenChanged,
    duration,
    plot_value,
    pretrain_plots,
    probe_table,
    progress_html,
)
from roberta.ui.runs import form_handler, stream_run, unique_name, watch
from roberta.viz.curves import PretrainHistory

DEFAULTS = ONE_MINUTE_RUN


# --- what the page shows -------------------------------------------------------------------

@dataclass
class TrainView:
    """The page's state during one run, turned into the tuple of outputs on demand."""

    settings: PretrainSettings
    history: PretrainHistory = field(default_factory=PretrainHistory)
    status: str = ""
    step: int = 0
    elapsed: float | None = None
    eta: float | None = None
    probes: list[FillMaskResult] | None = None
    probe_step: int = 0
    model_name: str = ""
    timelapse: object = None  # the run's TimeLapse: its snapshots grow as it trains
    note: str = ""
    shown_at: float = 0.0
    shown_loss_points: int = 0
    ended: bool = False
    send: SendWhenChanged = field(default_factory=SendWhenChanged)  # skips what did not change

    def record(self, event: TrainEvent) -> None:
        self.history.record(event.kind, event.step, event.metrics)
        self.step, self.elapsed, self.eta = event.step, event.elapsed, event.eta
        self.ended = self.ended or event.kind in ("done", "stopped", "failed")
        if event.kind == "eval" and event.probes is not None:
            self.probes, self.probe_step = event.probes, event.step

    def due(self, event: TrainEvent) -> bool:
        """Redraw now? Always for the first loss point, evaluations and the end."""
        return (event.kind == "eval" or event.finished or (event.kind == "step" and
                self.shown_loss_points == 0) or time.monotonic() - self.shown_at >= UPDATE_SECONDS)

    def outputs(self, session=None, charts: bool = True) -> tuple:
        self.shown_at = time.monotonic()
        self.shown_loss_points = len(self.history.loss)
        plots = pretrain_plots(self.history, self.send, self.ended) if charts else \
            (gr.skip(),) * 5
        table = self.send("probes", (self.probe_step, id(self.probes)), lambda: probe_table(
            self.probes, self.settings.probes, self.probe_step), self.ended,
            EVAL_CHART_SECONDS)  # after evaluations
        tokens_per_s = self.history.tokens_per_s.last
        progress = progress_html(self.step, self.settings.max_steps, self.elapsed, self.eta,
                                 tokens_per_s, self.note)
        replay = timelapse_view.live_value(self.send, [self.timelapse], self.ended)
        return (self.status, progress, *plots, table, replay, self.model_name,
                gr.skip() if session is None else session)

    def show(self, status: str) -> tuple:
        self.status = status
        return self.outputs(charts=False)


# --- the events -----------------------------------------------------------------------------

def settings_from_form(form: dict) -> PretrainSettings:
    """The Train tab's form values as settings: the same names, but for the uploaded files
    (paths) and the masking radio (static or not)."""
    form = dict(form)
    files = form.pop("corpus_files") or []
    static = form.pop("masking_mode") == "static"
    return PretrainSettings(**form, upload_paths=[getattr(f, "name", f) for f in (
        [files] if isinstance(files, str) else files)], static_masking=static)


def start_training(form: dict, control: dict, session: dict):
    """Stream a pretraining run into the Train tab's outputs (see TrainView.outputs)."""
    with plain_errors("Checking the settings"):
        settings, warnings = job.validate(settings_from_form(form))
    for warning in warnings:
        gr.Warning(warning)
    view = TrainView(settings)
    view.history.planned_steps = settings.max_steps  # the empty charts span the run

    def run(stop_requested: threading.Event):
        with plain_errors("Preparing the training data"):
            trainer = yield from _prepare(settings, view, control, stop_requested)
        if trainer is None:  # stopped while preparing
            view.status = "Stopped before training began."
            yield view.outputs()
            return
        with plain_errors("Training"):
            yield from _train(trainer, settings, view, stop_requested, control, session)

    with plain_errors("Joining the training queue"):
        yield from stream_run(control, run, view.show)


def _prepare(settings: PretrainSettings, view: TrainView, control: dict,
             stop_requested: threading.Event):
    """Corpus → tokenizer → packed data → model → Pretrainer, saying what it is doing."""
    view.status = "Reading the corpus…"
    yield view.outputs()
    corpus = job.load_corpus(settings)
    if settings.tokenizer == "new":
        yield view.show(f"Training a {settings.vocab_size:,}-token byte-level BPE on "
                        f"{corpus.description} (done once per corpus, then cached)…")
    embedded = registry.embedded("mlm")
    tokenizer_key, tokenizer = job.get_tokenizer(settings, corpus,
                                             embedded.tokenizer if embedded else None)
    if stop_requested.is_set():
        return None
    yield view.show(f"Tokenizing {corpus.description} into {settings.seq_length}-token "
                    f"sequences (done once, then cached)…")
    data = job.get_data(settings, corpus, tokenizer_key, tokenizer)
    if stop_requested.is_set():
        return None
    model = job.build_model(settings, tokenizer)
    trainer = Pretrainer(model, tokenizer, data, pretrain_config(settings))
    control["trainer"], view.timelapse = trainer, trainer.timelapse
    baseline = trainer.unigram_baseline()
    view.history.unigram_accuracy = baseline["accuracy"]
    view.history.unigram_perplexity = baseline["perplexity"]
    n_params = sum(p.numel() for p in model.parameters())
    view.note = (f"{n_params / 1e6:.2f}M parameters, {len(data.train):,} training sequences, "
                 f"on {trainer.device} in {trainer.precision}")
    return trainer


def _train(trainer: Pretrainer, settings: PretrainSettings, view: TrainView,
           stop_requested: threading.Event, control: dict, session: dict):
    view.status = "Training…"
    last: TrainEvent | None = None
    for last in watch(trainer, stop_requested):
        view.record(last)
        if last.kind == "eval":
            acc = last.metrics.get("val_accuracy", 0.0)
            masked = last.metrics.get("val_mask_accuracy", 0.0)
            view.status = (f"Training… validation masked-token accuracy {acc:.1%}, "
                           f"{masked:.1%} where the input was `<mask>` "
                           f"(unigram baseline {view.history.unigram_accuracy:.1%})")
        if view.due(last):
            yield view.outputs()
    if last is None:
        raise user_error("The training run ended before it began.")
    if last.kind == "failed":
        gr.Warning(last.message)
    if trainer.step == 0:
        view.status = f"Stopped before the first step; no model was kept. {last.message}"
        yield view.outputs()
        return
    job.STEP_PACE.record(pace_key(settings.size, settings.num_layers, settings.hidden_size,
                                  settings.num_heads, settings.ffn_size),
                         settings.batch_size, settings.seq_length, trainer.step, last.elapsed)
    model: RobertaForMaskedLM = trainer.model.eval()
    taken = registry.choices(session, "mlm") + registry.choices(session, "classifier")
    name = unique_name(taken, "My model", f"{settings.size}, {trainer.step:,} steps")
    source = (f"trained here from scratch for {trainer.step:,} steps on "
              f"{'the bundled corpus' if settings.corpus == 'bundled' else 'your text'}")
    loaded = registry.LoadedModel(name, "mlm", model, trainer.tokenizer,
                                  registry.describe(model, source), trainer.timelapse)
    session = registry.add(session, loaded)
    control["last_model"] = loaded
    outcome = {"done": "Finished", "stopped": "Stopped",
               "failed": "Ended early"}.get(last.kind, "Ended")
    max_seconds = current_limits().max_run_seconds
    ending = (f" It reached this app's limit of {duration(max_seconds)} per run "
              f"(ROBERTA_LAB_MAX_RUN_SECONDS).") if last.kind == "stopped" and \
        last.elapsed > max_seconds else ""
    view.model_name = name
    h = view.history
    view.status = (
        f"{outcome} after {trainer.step:,} steps in {duration(last.elapsed)}: validation "
        f"accuracy **{h.val_mask_accuracy.last:.1%} where the input was `<mask>`**, "
        f"{h.val_accuracy.last:.1%} over all scored tokens (unigram baseline "
        f"{h.unigram_accuracy:.1%}). The model is now **{name}** in the "
        f"Fill-mask and Attention tabs (this browser session only); download it below."
        f"{ending}" + (f" {last.message}" if last.kind == "failed" else ""))
    view.eta = None
    yield view.outputs(session=session)


def stop_training(control: dict | None) -> str:
    """Ask this session's run to stop after the current step (or to leave the queue)."""
    return request_stop(control, "training run", "the model trained so far is kept.")


def download_model(control: dict | None) -> str:
    """A zip (Hugging Face format) of this session's last trained model: made on the first
    download and handed out again after (one export per model, not per click)."""
    loaded = (control or {}).get("last_model")
    if loaded is None:
        raise user_error("There is no trained model to download yet: press Start, and download "
                       "once the run has finished or been stopped.")
    export = control.setdefault("export", downloads.new_export())
    with plain_errors("Exporting the model"):
        return str(export.zip_for(loaded.model, loaded.tokenizer, loaded.name,
                                  loaded.description, loaded.timelapse))


def pace_key(size: str, num_layers=None, hidden_size=None, num_heads=None,
             ffn_size=None) -> str:
    """What a run's pace is kept under: the preset, or a custom size's whole shape."""
    if size != "custom":
        return str(size)
    return f"custom {num_layers}x{hidden_size}, {num_heads} heads, {ffn_size} FFN"


def steps_info(steps, size=DEFAULTS.size, batch_size=DEFAULTS.batch_size,
               seq_length=DEFAULTS.seq_length, num_layers=None, hidden_size=None,
               num_heads=None, ffn_size=None) -> str:
    """The line under Steps: what that many steps take on this host, as its own runs timed
    them (job.STEP_PACE), or how to find out; never a figure from another machine."""
    cap = f"this app's cap: {current_limits().max_steps:,}"
    try:
        steps, batch_size, seq_length = int(steps), int(batch_size), int(seq_length)
    except (TypeError, ValueError):
        return cap
    if steps <= 0 or batch_size <= 0 or seq_length <= 0:
        return cap
    per_step = job.STEP_PACE.seconds_per_step(
        pace_key(size, num_layers, hidden_size, num_heads, ffn_size), batch_size, seq_length)
    if per_step is None:
        return (f"How long {steps:,} steps take depends on this host: the progress line times "
                f"a run as it goes, and this line says it once a run of this size has finished "
                f"here ({cap})")
    return (f"{steps:,} steps: about {duration(steps * per_step)} on this host, as its last run "
            f"of this size was timed ({per_step * 1000:,.0f} ms a step, evaluations included; "
            f"{cap})")


def rate_for_size(size: str, hidden_size) -> float:
    """The peak learning rate shown for a size: the preset's width, or the custom one."""
    width = PRESETS[size]["hidden_size"] if size in PRESETS else hidden_size
    try:
        width = int(width)
    except (TypeError, ValueError):
        return gr.skip()
    return default_learning_rate(width) if width > 0 else gr.skip()


def describe_size(size: str, vocab_size, num_layers, hidden_size, num_heads, ffn_size,
                  seq_length) -> str:
    """One line under the size controls: the shape and the parameter count."""
    try:
        s = with_shape(PretrainSettings(
            size=size, vocab_size=int(vocab_size), seq_length=int(seq_length),
            num_layers=int(num_layers), hidden_size=int(hidden_size), num_heads=int(num_heads),
            ffn_size=int(ffn_size)))
        n = RobertaForMaskedLM.parameter_count(model_config(s, s.vocab_size))
    except SettingError as err:
        return str(job.in_words(err, job.LABEL_OF))
    except (TypeError, ValueError) as err:
        return str(err)
    cap = current_limits().max_parameters
    over = f" over this app's cap of {cap / 1e6:.0f}M" if n > cap else ""
    return (f"{s.num_layers} layers × {s.hidden_size} wide, {s.num_heads} heads, FFN "
            f"{s.ffn_size}: about **{n / 1e6:.2f}M parameters** with a {s.vocab_size:,}-token "
            f"vocabulary.{over}")


# --- the tab -------------------------------------------------------------------------------

INTRO = """Pretrain a small RoBERTa **from scratch** with masked-language modelling and watch
it learn: the loss falls, accuracy where the input was `<mask>` climbs far above the unigram
baseline (always guessing the commonest token), and the guesses for the probe sentences turn
from "the" into words that fit — within a minute on a laptop CPU, with the structured start."""

PLATEAU_EXPLAINED = """**Why the start matters: the masked-LM plateau.** To fill a `<mask>` a
model must look at the words next to it, and to do that its attention heads must first learn to
find their neighbours *by position*. From RoBERTa's random start they take thousands of steps to
learn that (BERT-base needed thousands of steps at batch 256). Until then the model sits on a
plateau: it guesses one frequent word ("the") at every `<mask>`, and its overall accuracy rises
only because 10% of the chosen tokens are left unchanged and can be copied. Pick RoBERTa's random
start and watch the `<mask>` line stay flat.

**What the structured start builds.** Before the first step, 32 of the hidden dimensions are
given a wave pattern that encodes position, and in the first layer two heads are wired to look
exactly one word to the left and one to the right and to copy those words into each position
(see the step-0 heads in the Attention tab). The position pattern is held fixed while the rest
learns. Every weight keeps RoBERTa's shapes and names, so the trained model is a standard
checkpoint; what the model still has to learn — which words fit between which — it starts
learning within the first few hundred steps. Details and measurements: `roberta/init.py`,
`bench/plateau.py`."""


def build_train_tab(session: gr.State) -> dict[str, gr.Component]:
    """The tab; returns its form: each setting's control, in /train's argument order."""
    control = downloads.export_state()  # this browser's run: stop flag, trainer, model, zip
    gr.Markdown(INTRO)
    form, buttons = _settings()
    outputs, download_button = _charts()
    run = _wire(form, buttons, outputs, control, session)
    # The zip is made when the run ends, so one click downloads this run's model.
    run.then(downloads.last_model_download, control, download_button, api_visibility="private")
    # A finished run has timed this host: the line under Steps says what a run takes here.
    pace = [form[name] for name in ("max_steps", "size", "batch_size", "seq_length",
                                    "num_layers", "hidden_size", "num_heads", "ffn_size")]
    run.then(_steps_update, pace, form["max_steps"], api_visibility="private", queue=False)
    # Stop answers in a toast (and to API callers), never in the status line: its answer could
    # arrive after the run's final status and overwrite it.
    stop_answer = gr.Textbox(visible=False, label="Stop")
    buttons[1].click(stop_training, control, stop_answer, api_name="stop_training",
                     concurrency_limit=None, show_progress="hidden")
    download_button.click(download_model, control, download_button, api_name="download_model",
                          concurrency_limit=2)
    job.prewarm_default_data()
    return form


def _settings() -> tuple[dict[str, gr.Component], tuple[gr.Button, gr.Button]]:
    """Every control of a run, with Start and Stop; the form in /train's argument order."""
    limits = current_limits()
    has_cuda = torch.cuda.is_available()
    embedded = registry.embedded("mlm")
    with gr.Row(equal_height=True):
        # No `precision=0` on whole-number fields: Gradio would round 2.5 to 2 without a word;
        # the form's check refuses it in a sentence instead.
        max_steps = gr.Number(DEFAULTS.max_steps, label="Steps", scale=3,
                              info=steps_info(DEFAULTS.max_steps), elem_id="train-steps")
        start_button = gr.Button("▶ Start", variant="primary", scale=1, size="lg",
                                 elem_id="train-start")
        stop_button = gr.Button("■ Stop", variant="stop", scale=1, size="lg",
                                interactive=False, elem_id="train-stop")

    with gr.Row(equal_height=True):
        init = gr.Radio(INIT_LABELS, value=DEFAULTS.init, label="Start from", scale=3,
                        elem_id="train-init",
                        info="the structured start gets past the masked-LM plateau within a "
                             "minute; RoBERTa's own random start sits on it for thousands of "
                             "steps")
        with gr.Accordion("Why? The plateau, and what the structured start builds",
                          open=False):
            gr.Markdown(PLATEAU_EXPLAINED)

    with gr.Accordion("Settings: corpus, tokenizer, model size, masking, optimisation, device",
                      open=False), gr.Row():
        with gr.Column():
            gr.Markdown("**Corpus**")
            corpus = gr.Radio(CORPUS_CHOICES, value=DEFAULTS.corpus, label="Text to learn from",
                              info=f"uploads up to {limits.max_upload_bytes / 1e6:g} MB in all")
            corpus_files = gr.File(label="Your .txt file(s): documents separated by blank lines",
                                   file_count="multiple", file_types=[".txt"],
                                   type="filepath", visible=False)
            pasted_text = gr.Textbox("", label="Your text: separate documents with a blank line",
                                     lines=8, visible=False)
            gr.Markdown("**Tokenizer**")
            tokenizer = gr.Radio(TOKENIZER_CHOICES, value=DEFAULTS.tokenizer, label="Tokenizer",
                                 info=None if embedded else
                                 "There is no embedded model yet: train a new BPE.")
            vocab_size = gr.Slider(512, 16384, value=DEFAULTS.vocab_size, step=256,
                                   label="Vocabulary size of the new BPE",
                                   info="smaller vocabularies learn faster but split words "
                                        "into more pieces")
        with gr.Column():
            gr.Markdown("**Model size**")
            size = gr.Dropdown(list(SIZE_CHOICES), value=DEFAULTS.size, label="Size preset")
            with gr.Row(visible=False) as custom_row:
                num_layers = gr.Number(DEFAULTS.num_layers, label="Layers")
                hidden_size = gr.Number(DEFAULTS.hidden_size, label="Hidden size")
                num_heads = gr.Number(DEFAULTS.num_heads, label="Attention heads")
                ffn_size = gr.Number(DEFAULTS.ffn_size, label="Feed-forward size")
            dropout = gr.Slider(0.0, 0.5, value=DEFAULTS.dropout, step=0.05, label="Dropout",
                                info="0 for one-minute runs: a tiny model underfits")
            size_info = gr.Markdown()
            gr.Markdown("**Masking**")
            rate = declared(PretrainSettings)["mlm_probability"]
            mlm_probability = gr.Slider(rate.minimum, rate.maximum, value=DEFAULTS.mlm_probability,
                                        step=0.01, label="Masking rate")
            with gr.Row():
                mask_fraction = gr.Slider(0.0, 1.0, value=DEFAULTS.mask_fraction, step=0.05,
                                          label="…of which become <mask>")
                random_fraction = gr.Slider(0.0, 1.0, value=DEFAULTS.random_fraction,
                                            step=0.05, label="…become a random token")
            masking_mode = gr.Radio(
                [("dynamic (RoBERTa: new masks every time)", "dynamic"),
                 ("static (BERT: masks fixed once, 10 copies)", "static")],
                value="dynamic", label="Masking")
            whole_word = gr.Checkbox(DEFAULTS.whole_word, label="Whole-word masking")
        with gr.Column():
            gr.Markdown("**Optimisation** — AdamW (β = 0.9, 0.98), linear warmup, then linear "
                        "decay to zero at the last step, gradient clipping at 1.0.")
            with gr.Row():
                learning_rate = gr.Number(
                    rate_for_size(DEFAULTS.size, 0), label="Peak learning rate", elem_id="train-lr",
                    info="set to the size's own when the size changes: 2e-3 × 128 / width "
                         "(micro 2e-3, tiny 1e-3)")
                warmup_steps = gr.Number(default_warmup(DEFAULTS.max_steps),
                                         label="Warmup steps",
                                         info="set when Steps change: 150, or a tenth of a "
                                              "shorter run")
            with gr.Row():
                batch_size = gr.Number(DEFAULTS.batch_size, label="Batch size")
                seq_length = gr.Number(DEFAULTS.seq_length, label="Sequence length (tokens)")
            hold_positions_steps = gr.Number(
                DEFAULTS.hold_positions_steps,
                label="Hold the structured start's position rows for (steps)",
                info="-1: the whole run (the default, the safest); 0: trainable from the "
                     "first step (with the 150-step warmup about as good, bench/plateau.py); "
                     "N: released after N steps")
            with gr.Row():
                seed = gr.Number(DEFAULTS.seed, label="Seed")
                eval_every = gr.Number(DEFAULTS.eval_every, label="Evaluate every (steps)")
            gr.Markdown("**Device**")
            with gr.Row():
                device = gr.Radio([d for d in DEVICE_CHOICES if d == "cpu" or has_cuda],
                                  value="cuda" if has_cuda else "cpu", label="Device")
                precision = gr.Radio(list(PRECISIONS), value=DEFAULTS.precision,
                                     label="Precision",
                                     info="auto: bf16 on GPUs and CPUs that support it, "
                                          "else fp32; fp16 only on CUDA")
            probes = gr.Textbox("\n".join(DEFAULTS.probes), lines=4,
                                label="Probe sentences, one per line, each with <mask>")
    form = dict(
        max_steps=max_steps, corpus=corpus, corpus_files=corpus_files, pasted_text=pasted_text,
        tokenizer=tokenizer, vocab_size=vocab_size, size=size, num_layers=num_layers,
        hidden_size=hidden_size, num_heads=num_heads, ffn_size=ffn_size, dropout=dropout,
        seq_length=seq_length, mlm_probability=mlm_probability, mask_fraction=mask_fraction,
        random_fraction=random_fraction, masking_mode=masking_mode, whole_word=whole_word,
        learning_rate=learning_rate, warmup_steps=warmup_steps, batch_size=batch_size,
        seed=seed, eval_every=eval_every, device=device, precision=precision, probes=probes,
        init=init, hold_positions_steps=hold_positions_steps)
    _follow(form, custom_row, size_info)
    return form, (start_button, stop_button)


def _steps_update(*values):
    return gr.update(info=steps_info(*values))


def _follow(form: dict[str, gr.Component], custom_row: gr.Row, size_info: gr.Markdown) -> None:
    """Show only the controls that apply; the rate and warmup follow the size and the run's
    length until the user sets them; the line under the size says what it means."""
    f, quiet = form, dict(queue=False, api_visibility="private")
    f["corpus"].change(lambda c: (gr.update(visible=c == "upload"), gr.update(
        visible=c == "pasted")), f["corpus"], [f["corpus_files"], f["pasted_text"]], **quiet)
    f["tokenizer"].change(lambda t: gr.update(visible=t == "new"), f["tokenizer"],
                          f["vocab_size"], **quiet)
    f["size"].change(lambda s: gr.update(visible=s == "custom"), f["size"], custom_row, **quiet)
    gr.on([f["size"].change, f["hidden_size"].change], rate_for_size,
          [f["size"], f["hidden_size"]], f["learning_rate"], **quiet)
    f["max_steps"].change(lambda steps: default_warmup(int(steps)) if steps and steps > 0 else
                          gr.skip(), f["max_steps"], f["warmup_steps"], **quiet)
    # The line under Steps follows the run's length and shape, and is read again on every page
    # load (a run finished meanwhile in another session has timed this host).
    pace = [f[name] for name in ("max_steps", "size", "batch_size", "seq_length", "num_layers",
                                 "hidden_size", "num_heads", "ffn_size")]
    gr.on([c.change for c in pace], _steps_update, pace, f["max_steps"], **quiet)
    if Context.root_block is not None:
        Context.root_block.load(_steps_update, pace, f["max_steps"], **quiet)
    shape = ["size", "vocab_size", "num_layers", "hidden_size", "num_heads", "ffn_size",
             "seq_length"]
    gr.on([f[name].change for name in shape], describe_size, [f[n] for n in shape], size_info,
          **quiet)
    size_info.value = describe_size(*(getattr(DEFAULTS, name) for name in shape))


def _charts() -> tuple[list, gr.DownloadButton]:
    """The run's outputs in TrainView.outputs' order (but the session), and the download."""
    status = gr.Markdown("Press **Start**.", label="Status", elem_id="train-status")
    progress = gr.HTML(progress_html(), label="Progress", elem_id="train-progress")
    empty = PretrainHistory(planned_steps=DEFAULTS.max_steps)
    with gr.Row():
        loss_plot = gr.Plot(plot_value(empty.loss_spec()), label="Loss", show_label=False,
                            elem_id="train-loss-plot")
        accuracy_plot = gr.Plot(plot_value(empty.accuracy_spec()), label="Accuracy",
                                show_label=False, elem_id="train-accuracy-plot")
    probe_results = gr.Dataframe(probe_table(None, DEFAULTS.probes),
                                 label="The model's top-5 guesses, refreshed at every evaluation",
                                 datatype=["markdown"] + ["str"] * 5, interactive=False,
                                 # shares of the width, so a phone shows every guess too
                                 column_widths=["35%"] + ["13%"] * 5,
                                 wrap=True, elem_id="train-probes")
    with gr.Row():
        perplexity_plot = gr.Plot(plot_value(empty.perplexity_spec()), show_label=False,
                                  label="Perplexity")
        lr_plot = gr.Plot(plot_value(empty.learning_rate_spec()), show_label=False,
                          label="Learning rate")
        speed_plot = gr.Plot(plot_value(empty.throughput_spec()), show_label=False,
                             label="Tokens per second")
    replay = timelapse_view.build_train_timelapse()
    with gr.Row(equal_height=True):
        model_name = gr.Textbox(label="Trained model (selectable in the other tabs)",
                                interactive=False, scale=3)
        download_button = downloads.download_button(scale=1, elem_id="train-download")
    outputs = [status, progress, loss_plot, accuracy_plot, perplexity_plot, lr_plot, speed_plot,
               probe_results, replay, model_name]
    return outputs, download_button


def _wire(form: dict[str, gr.Component], buttons: tuple[gr.Button, gr.Button], outputs: list,
          control: gr.State, session: gr.State) -> gr.events.Dependency:
    """Start streams start_training, its inputs derived from the form (then the two states)."""
    run = start_stop(*buttons, form_handler(start_training, list(form)),
                     [*form.values(), control, session], [*outputs, session], api_name="train",
                     concurrency_limit=None, show_progress="hidden")
    return run

