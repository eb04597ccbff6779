"""Two models, one input, predictions in adjacent columns: Fill-mask and Sentiment each get a
"compare side by side" panel (e.g. the embedded model beside one trained in this session, or the
two models of an Experiments comparison).

API (gradio_client): `/fill_mask_compare` and `/classify_compare` take the text first; the two
models default to the first model on offer and the newest one of this session (or the next on
offer), so `client.predict("The <mask> was good.", api_name="/fill_mask_compare")` works.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from roberta.inference import classify, fill_mask
from roberta.ui import registry
from roberta.ui.common import check_masked_text, markdown_literal, plain_errors, user_error
from roberta.ui.heavy_lane import slots, takes_turn


def default_pair(session: dict | None, task: str) -> tuple[str | None, str | None]:
    """(first model on offer, newest model of this session — or the next one on offer)."""
    names = registry.choices(session, task)
    if not names:
        return None, None
    mine = [n for n in names if n not in (registry.EMBEDDED_NAMES[task],
                                          registry.STRUCTURED_START_NAME)]
    second = mine[-1] if mine else (names[1] if len(names) > 1 else None)
    return names[0], second if second != names[0] else None


def resolve_pair(session: dict | None, task: str, name_a: str | None, name_b: str | None):
    first, second = default_pair(session, task)
    name_a, name_b = name_a or first, name_b or second
    if name_b is None or name_a is None:
        raise user_error(f"Comparing needs two {registry.TASK_WORDS[task]}s, and this session "
                         f"has only one: train one (Train or Experiments tab) or import one.")
    if name_a == name_b:
        raise user_error(f"Both sides are “{name_a}”: choose two different models.")
    return registry.resolve(session, name_a, task), registry.resolve(session, name_b, task)


def both_models(task: str):
    """`takes_turn`'s argument for a comparison: the session's models on either side."""
    def models(arguments: dict) -> list:
        session = arguments.get("session")
        first, second = default_pair(session, task)
        return [registry.session_model(session, arguments.get(side) or default, task)
                for side, default in (("model_a", first), ("model_b", second))]
    return models


def _token(token: str) -> str:
    return token.replace(" ", "␣").replace("\n", "↵") or "∅"


@takes_turn(both_models("mlm"))
def compare_fill_mask(text: str, model_a: str | None = None, model_b: str | None = None,
                      top_k: float = 5, session: dict | None = None):
    """One row per (mask, rank): model A's guess and probability, then model B's."""
    text = check_masked_text(text)
    a, b = resolve_pair(session, "mlm", model_a, model_b)
    with plain_errors("Fill-mask"):
        results = [fill_mask(m.model, m.tokenizer, text, top_k=int(top_k)) for m in (a, b)]
    columns = ["mask", "rank", f"A: {a.name}", "A probability", f"B: {b.name}",
               "B probability"]
    # Two tokenizers may read a different number of masks (a long text's window) and offer fewer
    # candidates than top_k (a small vocabulary): line up what both have.
    pairs = list(zip(results[0].predictions, results[1].predictions, strict=False))
    rows = []
    for mask, (pa, pb) in enumerate(pairs, start=1):
        for rank, (ca, cb) in enumerate(zip(pa.candidates, pb.candidates, strict=False),
                                        start=1):
            rows.append([mask, rank, _token(ca.token), round(ca.probability, 4),
                         _token(cb.token), round(cb.probability, 4)])
    notes = [f"{len(results[i].predictions)} `<mask>` predicted by "
             f"*{markdown_literal(m.name)}*" for i, m in enumerate((a, b))]
    if len(results[0].predictions) != len(results[1].predictions):
        notes.append("The two tokenizers split the text differently, so only the masks both "
                     "read are lined up.")
    agree = sum(1 for pa, pb in pairs if pa.candidates[0].token == pb.candidates[0].token)
    summary = f"First guesses agree on {agree} of {len(pairs)} masks. " + "; ".join(notes) + "."
    return pd.DataFrame(rows, columns=columns), summary


@takes_turn(both_models("classifier"))
def compare_classify(text: str, model_a: str | None = None, model_b: str | None = None,
                     session: dict | None = None):
    """One row per class (the union of both models' labels): A's probability, then B's."""
    if not isinstance(text, str) or not text.strip():
        raise user_error("The text is empty: type or paste a review to classify.")
    a, b = resolve_pair(session, "classifier", model_a, model_b)
    with plain_errors("Classifying"):
        probabilities = [classify(m.model, m.tokenizer, [text])[0] for m in (a, b)]
    labels = list(dict.fromkeys([*probabilities[0], *probabilities[1]]))
    rows = [[label, *(round(p[label], 4) if label in p else None for p in probabilities)]
            for label in labels]
    table = pd.DataFrame(rows, columns=["class", f"A: {a.name}", f"B: {b.name}"])
    verdicts = [f"*{markdown_literal(m.name)}* says **{markdown_literal(max(p, key=p.get))}** "
                f"({max(p.values()):.0%})" for m, p in zip((a, b), probabilities, strict=True)]
    return table, " · ".join(verdicts)


def _selectors(session: gr.State, task: str):
    first, second = default_pair({}, task)
    a, _ = registry.model_selector(session, task, label="Model A")
    b, _ = registry.model_selector(session, task, label="Model B")
    b.value = second  # a different model from A, when there is one
    return a, b


def build_fill_mask_compare(session: gr.State, text: gr.Textbox) -> None:
    """Inside the Fill-mask tab: the tab's text, two models, their guesses side by side."""
    with gr.Accordion("Compare two models side by side", open=False):
        with gr.Row():
            model_a, model_b = _selectors(session, "mlm")
        button = gr.Button("Compare on this text", elem_id="fill-mask-compare")
        summary = gr.Markdown()
        table = gr.Dataframe(label="Top guesses per mask: model A, then model B",
                             interactive=False, elem_id="fill-mask-compare-table")
        top_k = gr.Number(5, visible=False, precision=0)
    button.click(compare_fill_mask, [text, model_a, model_b, top_k, session],
                 [table, summary], api_name="fill_mask_compare",
                 concurrency_limit=slots(4))


def build_classify_compare(session: gr.State, text: gr.Textbox) -> None:
    """Inside the Sentiment tab: the review text, two classifiers, side by side."""
    with gr.Accordion("Compare two classifiers side by side", open=False):
        with gr.Row():
            model_a, model_b = _selectors(session, "classifier")
        button = gr.Button("Compare on this text", elem_id="classify-compare")
        summary = gr.Markdown()
        table = gr.Dataframe(label="Class probabilities: classifier A, then classifier B",
                             interactive=False, elem_id="classify-compare-table")
    button.click(compare_classify, [text, model_a, model_b, session], [table, summary],
                 api_name="classify_compare", concurrency_limit=slots(4))
