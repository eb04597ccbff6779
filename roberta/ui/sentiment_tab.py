"""Sentiment tab: classify and explain, then fine-tune a masked LM into a classifier live.

Fine-tuning streams the validation accuracy beside two honest yardsticks: TF-IDF + logistic
regression trained on the same split, and always answering the commonest class. The embedded
classifier says positive or negative (four domains, trained by the recipe). The bundled task
for live fine-tuning, always offline, is "was this Amazon fine-food review 5 stars, or below?",
so its labels say exactly that (`great (5 stars)` / `other (below 5 stars)`); the multi-domain
mix (scored per domain after the run) and IMDB's reviews are offered too where their archives
are already in the cache (the app never downloads).

Classify shows the class probabilities and, per token, how much it pushed the prediction
(integrated gradients, roberta.inference.token_attributions) as a gr.HighlightedText, and under
it a faithfulness check of those colours (roberta.faithfulness.deletion_check): the predicted
class's probability after deleting the 3 most attributed tokens, against deleting 3 random ones.

API (gradio_client): `/finetune` takes the number of steps first (the rest default: the first
masked LM on offer, the bundled reviews); `/classify` takes the text first (default model: the
first classifier on offer); `/stop_finetuning` stops this session's fine-tuning run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import gradio as gr
import torch

from roberta.faithfulness import deletion_check, deletion_line
from roberta.inference import classification_reading, classify, token_attributions
from roberta.training.engine import TrainEvent
from roberta.training.finetuning import Finetuner, classifier_from
from roberta.ui import downloads, registry
from roberta.ui import finetune_job as job
from roberta.ui.common import (
    markdown_literal,
    plain_errors,
    request_stop,
    shown,
    start_stop,
    user_error,
)
from roberta.ui.finetune_job import FinetuneSettings
from roberta.ui.heavy_lane import one_model, slots, takes_turn
from roberta.ui.live import UPDATE_SECONDS, plot_value, progress_html
from roberta.ui.runs import form_handler, stream_run, unique_name, watch
from roberta.ui.side_by_side import build_classify_compare
from roberta.viz.curves import FinetuneHistory

DEFAULTS = FinetuneSettings()
EXAMPLES = [
    "This movie was awful: the plot made no sense and I nearly walked out.",
    "A wonderful film with a brilliant cast. I would happily watch it again.",
    "Absolutely the best coffee I have ever had. I order it every month!",
    "The tea was fine, but it arrived late and the box was damaged.",
    "The nurse was kind and explained everything twice.",
    "My bus was late again and nobody told us why.",
]


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

    def record(self, event: TrainEvent) -> None:
        self.history.record(event.kind, event.step, event.metrics)
        self.step, self.elapsed, self.eta = event.step, event.elapsed, event.eta

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

    def show(self, status: str) -> tuple:
        self.status = status
        return self.outputs()


def start_finetuning(form: dict, control: dict, session: dict):
    """Stream a fine-tuning run: status, progress, accuracy curve, loss curve, results. `form`
    holds the FinetuneSettings fields the tab shows (build_sentiment_tab's mapping)."""
    form["csv_file"] = getattr(form.get("csv_file"), "name", form.get("csv_file"))
    with plain_errors("Checking the settings"):
        settings = job.validate(FinetuneSettings(**form))
        data_key, data, description = job.load_dataset(settings)
    base = registry.resolve(session, settings.base_model, "mlm")
    with plain_errors("Checking the settings"):
        job.check_memory(settings, base.model.config)
    view = FinetuneView(settings.max_steps)
    view.history.planned_steps = settings.max_steps  # the empty charts span the run

    def run(stop_requested: threading.Event):
        yield view.show(f"Tokenizing {markdown_literal(description)}…")
        with plain_errors("Preparing fine-tuning"):
            config = job.finetune_config(settings)
            tfidf = job.tfidf_in_background(data_key, data, config)
            torch.manual_seed(settings.seed)
            model = classifier_from(base.model, data.label_names, settings.dropout)
            trainer = Finetuner(model, base.tokenizer, data, config, tfidf=tfidf)
        control["trainer"] = trainer
        view.history.majority_accuracy = job.majority_accuracy(data.train_labels)
        view.note = (f"{len(trainer.train_split):,} training and {len(trainer.val_split):,} "
                     f"validation examples, {len(data.label_names)} classes, on "
                     f"{trainer.device} in {trainer.precision}")
        view.status = (f"Fine-tuning {markdown_literal(base.name)} on "
                       f"{markdown_literal(description)}…")
        last = None
        with plain_errors("Fine-tuning"):
            for last in watch(trainer, stop_requested):
                view.record(last)
                if view.history.baseline_accuracy is None and tfidf.done() \
                        and tfidf.exception() is None:
                    view.history.baseline_accuracy = trainer.baseline()["accuracy"]
                if last.kind == "eval":
                    view.status = (f"Fine-tuning… validation accuracy "
                                   f"{last.metrics['val_accuracy']:.1%}")
                if view.due(last):
                    yield view.outputs()
            yield from _finish(trainer, last, view, base, session, control,
                               per_domain=settings.dataset == "domains")

    with plain_errors("Joining the training queue"):
        yield from stream_run(control, run, view.show, what="fine-tuning run")


def _finish(trainer: Finetuner, last: TrainEvent | None, view: FinetuneView, base,
            session: dict, control: dict, per_domain: bool = False):
    if last is None or trainer.step == 0:
        view.status = "Stopped before the first step; no classifier was kept."
        yield view.outputs()
        return
    report = last.metrics  # the best checkpoint's test scores, beside the baseline's
    view.history.baseline_accuracy = report.get("baseline_accuracy",
                                                view.history.baseline_accuracy)
    model = trainer.model.eval()
    taken = registry.choices(session, "classifier") + registry.choices(session, "mlm")
    name = unique_name(taken, "My classifier", f"from {base.name}, {trainer.step:,} steps")
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
    if per_domain:
        final = view.status
        yield view.show(f"{final} Scoring it on each domain…")
        with plain_errors("Scoring each domain"):
            table = job.domain_scores(model, trainer.tokenizer, trainer.max_length)
        view.status = final
        view.result += ("\n\n**Per domain** (the classifier kept, beside TF-IDF + logistic "
                        "regression fitted on the same rows):\n\n" + table)
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


# Integrated gradients cost a forward and a backward pass per step and window: a long text gets
# fewer steps per window (never under 4), so its highlight comes back in seconds, not a minute.
ATTRIBUTION_PASSES = 64


def attribution_steps(windows: int) -> int:
    return max(4, min(16, ATTRIBUTION_PASSES // windows))


@takes_turn(one_model("classifier"))
def classify_text(text: str, model_name: str | None = None, session: dict | None = None):
    """Class probabilities, per-token attribution, and a sentence saying what they mean."""
    if not isinstance(text, str) or not text.strip():
        raise user_error("The text is empty: type or paste a review to classify.")
    loaded = registry.resolve(session, model_name, "classifier")
    with plain_errors("Classifying"):
        probabilities = classify(loaded.model, loaded.tokenizer, [text])[0]
        reading = classification_reading(loaded.model, loaded.tokenizer, text)
        attributions = token_attributions(loaded.model, loaded.tokenizer, text,
                                          steps=attribution_steps(reading.windows))
        tokens, scores, target = attributions
        faithfulness = faithfulness_line(loaded, text, attributions, probabilities)
    predicted = loaded.model.config.id2label[target]
    label = markdown_literal(predicted)  # labels and names come from checkpoints and CSVs
    explanation = (f"Predicted **{label}** ({probabilities[predicted]:.0%}) by "
                   f"*{markdown_literal(loaded.name)}*. Highlighted: how much each token pushed "
                   f"the prediction towards “{label}” (red) or away from it (purple), by "
                   f"integrated gradients from a baseline of `<pad>` embeddings.")
    if reading.read.cut:  # past the window cap: say so where it cannot be missed
        gr.Warning(shown(reading.notice()))
        explanation += f"\n\n⚠️ {markdown_literal(reading.notice())}"
    elif reading.windows > 1:
        explanation += f"\n\n{markdown_literal(reading.notice())}"
    explanation += f"\n\n**Faithfulness check.** {markdown_literal(faithfulness)}"
    return probabilities, attribution_spans(tokens, scores), explanation


def faithfulness_line(loaded, text: str, attributions, probabilities: dict[str, float]) -> str:
    """The deletion check of the attributions just shown (reused, not computed again), as one
    plain line; a text too short or too long to check gets a sentence saying so, never an
    error: the classification above it stands either way."""
    try:
        check = deletion_check(loaded.model, loaded.tokenizer, text,
                               attributions=attributions, probabilities=probabilities)
    except ValueError as err:  # too few tokens to delete three and keep one
        return str(err)
    return deletion_line(check)


# --- the tab -----------------------------------------------------------------------------

INTRO = """Classify a text with a **positive / negative** classifier and see which words carried
the decision — then fine-tune one yourself, live, beside a classical baseline. The embedded
classifier was fine-tuned by the recipe on four domains at once (movie reviews, drug reviews,
tweets, newspaper editorials); its card, in the Model tab, scores it on each of them and on
three it never saw, beside TF-IDF + logistic regression trained on the same texts. It has two
classes, so a factual sentence should land near 50% — watch how rarely it does."""

FINETUNE_INTRO = """Fine-tune a masked language model into a classifier. **Several domains**
trains on a small balanced mix of four and, after the run, scores it on each domain (and on
three it never trained on) beside TF-IDF + logistic regression fitted on the same rows. The
bundled task asks a narrower question: *was this Amazon fine-food review given 5 stars, or
fewer?* — so its labels are “great (5 stars)” and “other (below 5 stars)”. A model pretrained
for a minute has little to transfer: fine-tuning the embedded model (or one you trained longer)
does better."""


def build_sentiment_tab(session: gr.State) -> dict[str, gr.Component]:
    """The tab; returns the fine-tuning form, the mapping from each setting to its control,
    whose order is the /finetune endpoint's argument order. Classify comes first: it is what a
    room tries first, with its own sentences."""
    control = downloads.export_state()  # the run, its classifier and that model's zip
    gr.Markdown(INTRO)
    gr.Markdown("### 1 · Classify and explain")
    classifier, classifier_info = _classifying(session)
    gr.Markdown("### 2 · Fine-tune")
    gr.Markdown(FINETUNE_INTRO)
    form, buttons, outputs, classifier_name, download_button = _finetuning(session)
    run = start_stop(*buttons, form_handler(start_finetuning, list(form)),
                     [*form.values(), control, session], [*outputs, session],
                     api_name="finetune", concurrency_limit=None, show_progress="hidden")
    # The zip is made when the run ends, so one click downloads the new classifier.
    run.then(downloads.last_model_download, control, download_button, api_visibility="private")
    # Stop answers in a toast (and to API callers), never in the status line: its answer could
    # arrive after the run's final status and overwrite it.
    stop_answer = gr.Textbox(visible=False, label="Stop")
    buttons[1].click(stop_finetuning, control, stop_answer, api_name="stop_finetuning",
                     concurrency_limit=None, show_progress="hidden")
    # A classifier fine-tuned here is offered, and chosen, under Classify at once.
    classifier_name.change(select_new_classifier, [session, classifier_name, classifier],
                           [classifier, classifier_info], queue=False, api_visibility="private")
    return form


def _finetuning(session: gr.State):
    """The form (in /finetune's argument order), Start and Stop, the run's outputs (in
    FinetuneView.outputs' order, but the session) and the new classifier's name."""
    has_cuda = torch.cuda.is_available()
    with gr.Row():
        with gr.Column(scale=2):
            base_model, _ = registry.model_selector(session, "mlm",
                                                    label="Start from this masked LM")
            max_steps = gr.Number(DEFAULTS.max_steps, precision=0, label="Steps")
            dataset = gr.Radio(job.dataset_choices(), value=DEFAULTS.dataset, label="Data")
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
                device = gr.Radio([d for d in job.DEVICE_CHOICES if d == "cpu" or has_cuda],
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
    dataset.change(lambda d: (gr.update(visible=d == "csv"), gr.update(visible=d == "csv")),
                   dataset, [csv_file, column_row], queue=False, api_visibility="private")
    form = dict(max_steps=max_steps, dataset=dataset, csv_file=csv_file,
                text_column=text_column, label_column=label_column, base_model=base_model,
                learning_rate=learning_rate, warmup_steps=warmup_steps, batch_size=batch_size,
                seq_length=seq_length, eval_every=eval_every, seed=seed, device=device)
    outputs = [status, progress, accuracy_plot, loss_plot, results, classifier_name]
    return form, (start_button, stop_button), outputs, classifier_name, download_button


def _classifying(session: gr.State) -> tuple[gr.Dropdown, gr.Markdown]:
    """Classify and explain: text in, class probabilities and token attributions out."""
    with gr.Row():
        with gr.Column(scale=2):
            classifier, classifier_info = registry.model_selector(session, "classifier",
                                                                  label="Classifier")
            text = gr.Textbox(EXAMPLES[0], lines=3, label="Text to classify")
            classify_button = gr.Button("Classify", variant="primary")
            gr.Examples([[e] for e in EXAMPLES], inputs=[text], label="Examples")
        with gr.Column(scale=3):
            probabilities = gr.Label(label="Class probabilities", num_top_classes=10)
            attributions = gr.HighlightedText(
                label="Token attribution (red: towards the predicted class; purple: away)",
                show_legend=True, combine_adjacent=False, elem_id="sentiment-attribution")
            explanation = gr.Markdown()
    build_classify_compare(session, text)  # two classifiers' probabilities side by side

    classify_inputs = [text, classifier, session]
    classify_outputs = [probabilities, attributions, explanation]
    classify_button.click(classify_text, classify_inputs, classify_outputs,
                          api_name="classify", concurrency_limit=slots(4))
    text.submit(classify_text, classify_inputs, classify_outputs, api_visibility="private",
                concurrency_limit=slots(4))
    return classifier, classifier_info
