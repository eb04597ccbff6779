"""Fill-mask tab: the model's top guesses for every <mask>, as a table and a bar chart, with the
tokenization shown; beside the model picker, the import of a Hugging Face checkpoint
(roberta/ui/model_import.py, shared with the Model tab)."""

from __future__ import annotations

import re

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from roberta.inference import FillMaskResult, fill_mask
from roberta.token_text import merge_pieces, visible_token
from roberta.ui import registry
from roberta.ui.common import check_masked_text, markdown_literal, plain_errors, shown
from roberta.ui.heavy_lane import one_model, slots, takes_turn
from roberta.ui.lens_views import build_logit_lens, mask_clicked
from roberta.ui.model_import import build_import_panel
from roberta.ui.side_by_side import build_fill_mask_compare
from roberta.viz.attention import plotly_text

MASK = "<mask>"
EXAMPLES = [
    "The food was <mask> and the service was slow.",
    "The government announced new <mask> on Monday.",
    "This coffee tastes <mask>, I will buy it <mask>.",
    "The match ended in a <mask> after ninety minutes.",
]
RESULT_COLUMNS = ["mask", "rank", "token", "probability"]
TOKEN_COLOURS = {"<mask>": "#E69F00", "special": "#BBBBBB", "word start": "#56B4E9",
                 "inside a word": "#CDE8F6"}
MAX_CHART_MASKS = 8


def tokenization_spans(tokens: list[str], mask_positions: set[int]) -> list[tuple[str, str]]:
    """(token, kind) pairs for gr.HighlightedText; the tokens of a character split into bytes
    ("🍕 (1/4)" … "🍕 (4/4)", see roberta.token_text) as one span saying how many they are."""
    spans, i = [], 0
    for token, count in merge_pieces(tokens):
        if i in mask_positions:
            kind = "<mask>"
        elif token in ("<s>", "</s>", "<pad>", "<unk>"):
            kind = "special"
        elif token.startswith(" ") or i == 1:
            kind = "word start"
        else:
            kind = "inside a word"
        label = visible_token(token)
        spans.append((label if count == 1 else f"{label} ({count} tokens)", kind))
        i += count
    return spans


def results_table(result: FillMaskResult) -> pd.DataFrame:
    rows = [[m, rank, visible_token(c.token), round(c.probability, 4)]
            for m, prediction in enumerate(result.predictions, start=1)
            for rank, c in enumerate(prediction.candidates, start=1)]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def probability_axis(candidates) -> dict:
    """The x axis of one <mask>'s bars: 0 to a little past its best guess (a fixed 0–100%
    leaves a 3% guess a sliver), with ticks precise enough for small shares."""
    top = max((c.probability for c in candidates), default=0.0)
    end = min(1.0, max(top * 1.15, 0.01))
    return {"range": [0, end], "tickformat": ".0%" if end >= 0.05 else ".1%"}


def results_chart(result: FillMaskResult) -> go.Figure:
    shown = result.predictions[:MAX_CHART_MASKS]
    titles = [plotly_text(f"<mask> {m} (token {p.position})")
              for m, p in enumerate(shown, start=1)]
    figure = make_subplots(rows=len(shown), cols=1, subplot_titles=titles,
                           vertical_spacing=0.12 / max(1, len(shown) - 1) if len(shown) > 1
                           else 0.1)
    for row, prediction in enumerate(shown, start=1):
        candidates = prediction.candidates
        # Bars by rank (best on top) with the tokens as labels: two candidates may read alike.
        ranks = list(range(len(candidates)))
        figure.add_trace(go.Bar(
            x=[c.probability for c in candidates], y=ranks, orientation="h",
            marker_color="#E69F00", showlegend=False,
            text=[f"{c.probability:.1%}" for c in candidates], textposition="auto",
            customdata=[plotly_text(visible_token(c.token)) for c in candidates],
            hovertemplate="%{customdata}: %{x:.2%}<extra></extra>"), row=row, col=1)
        figure.update_xaxes(**probability_axis(candidates), row=row, col=1)
        figure.update_yaxes(tickmode="array", tickvals=ranks, autorange="reversed",
                            ticktext=[plotly_text(visible_token(c.token)) for c in candidates],
                            row=row, col=1)
    per_mask = 70 + 26 * len(shown[0].candidates)
    figure.update_layout(height=40 + per_mask * len(shown), margin=dict(l=10, r=10, t=40, b=10),
                         font=dict(size=14))
    return figure


def filled_sentence(text: str, result: FillMaskResult) -> str:
    """Markdown of what the model read with each <mask> replaced by the first guess, in bold;
    "…" marks text before or after a long text's window (never echoed in full)."""
    first, last = result.window.chars
    before, after = ("… " if first > 0 else ""), (" …" if last < len(text) else "")
    text = text[first:last]
    guesses = iter(p.candidates[0].token for p in result.predictions)
    parts, end = [], 0
    for match in re.finditer(r"\s?<mask>", text):
        guess = next(guesses, None)
        if guess is None:  # cannot happen: every <mask> in the window is predicted
            break
        space = " " if guess.startswith(" ") else ""
        parts += [markdown_literal(text[end:match.start()]), space,
                  f"<b>{markdown_literal(guess.strip() or guess)}</b>"]
        end = match.end()
    return before + "".join(parts) + markdown_literal(text[end:]) + after


@takes_turn(one_model("mlm"))
def predict(text: str, model_name: str | None = None, top_k: int = 5,
            session: dict | None = None):
    """Everything the tab shows for one text: table, chart, tokenization, summary."""
    text = check_masked_text(text)
    loaded = registry.resolve(session, model_name, "mlm")
    with plain_errors("Fill-mask"):
        result = fill_mask(loaded.model, loaded.tokenizer, text, top_k=int(top_k))
    asked = text.count(MASK)
    notes = []
    if result.truncated:
        message = result.window.notice()
        lost = asked - len(result.predictions)
        if lost:
            verb = "was" if lost == 1 else "were"
            message += f" {lost} of its {asked} masks fell outside and {verb} not predicted."
        gr.Warning(shown(message))
        notes.append(f"⚠️ {markdown_literal(message)}")
    if len(result.predictions) > MAX_CHART_MASKS:
        notes.append(f"The chart shows the first {MAX_CHART_MASKS} masks; the table has all "
                     f"{len(result.predictions)}.")
    mask_positions = {p.position for p in result.predictions}
    summary = "\n\n".join([f"**First guesses:** {filled_sentence(text, result)}",
                           f"{len(result.tokens)} tokens, {len(result.predictions)} "
                           f"`<mask>` predicted with *{markdown_literal(loaded.name)}*.", *notes])
    return (results_table(result), results_chart(result),
            tokenization_spans(result.tokens, mask_positions), summary)


def build_fill_mask_tab(session: gr.State) -> None:
    gr.Markdown("Type a sentence with one or more `<mask>`: the model guesses the hidden "
                "tokens. This is the task RoBERTa was pretrained on.")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(value=EXAMPLES[0], label="Text", lines=2,
                              placeholder="The cat sat on the <mask>.")
            with gr.Row():
                predict_button = gr.Button("Predict", variant="primary", scale=2)
                top_k = gr.Slider(1, 20, value=5, step=1, label="Guesses per mask (top-k)",
                                  scale=3)
        with gr.Column(scale=2):
            model_name, model_info = registry.model_selector(session, "mlm")
            gr.Examples([[e] for e in EXAMPLES], inputs=[text], label="Examples")
            # The same import as the Model tab's; this one is also the API's /import_checkpoint.
            build_import_panel(session, model_name, model_info, "mlm",
                               api_name="import_checkpoint")
    summary = gr.Markdown()
    tokens = gr.HighlightedText(label="Tokenization (␣ = the token begins with a space; click "
                                      "a word to hide it behind <mask>)",
                                color_map=TOKEN_COLOURS, show_legend=True, combine_adjacent=False)
    with gr.Row():
        table = gr.Dataframe(headers=RESULT_COLUMNS, label="Top guesses per mask",
                             interactive=False, elem_id="fill-mask-results", scale=2)
        chart = gr.Plot(label="Probabilities", scale=3)
    redraw_lens = build_logit_lens(session, text, model_name)
    build_fill_mask_compare(session, text)  # two models' guesses in adjacent columns

    inputs = [text, model_name, top_k, session]
    outputs = [table, chart, tokens, summary]
    predict_button.click(predict, inputs, outputs, api_name="fill_mask",
                         concurrency_limit=slots(4))
    text.submit(predict, inputs, outputs, api_visibility="private", concurrency_limit=slots(4))
    # Click a word of the tokenization to hide it: it becomes <mask>, guessed again (the lens
    # too).
    clicked = tokens.select(mask_clicked, [text, model_name, session], text,
                            api_visibility="private", concurrency_limit=4)
    clicked.success(predict, inputs, outputs, api_visibility="private",
                    concurrency_limit=slots(4))
    clicked.success(*redraw_lens, api_visibility="private", concurrency_limit=slots(4),
                    show_progress="hidden")
