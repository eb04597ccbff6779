"""Inside one prediction (issue 35): the Fill-mask tab's logit lens and click-to-mask, and the
Attention tab's neuron view. Each tab's builder calls its section's builder with its own text
and model controls; the computations are roberta/lens.py's, the figures roberta/viz/lens.py's."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from roberta.inference import encode_window, mask_word
from roberta.lens import LENS_TOP_K, logit_lens, neuron_view
from roberta.token_text import merge_pieces, visible_token
from roberta.ui import registry
from roberta.ui.common import (
    check_masked_text,
    checked_number,
    markdown_literal,
    plain_errors,
    user_error,
)
from roberta.ui.heavy_lane import one_model, slots, takes_turn
from roberta.ui.limits import attention_tokens
from roberta.ui.page_export import html_download
from roberta.viz.lens import layer_names, lens_figure, neuron_figure

LENS_COLUMNS = ["layer", f"top {LENS_TOP_K} there", "rank of the answer", "p (answer)"]
NEURON_COLUMNS = ["position", "key", "q·k", "× 1/√hs", "weight"]
LENS_EXPLAINED = (
    "The **logit lens**: the masked-LM head applied to each layer's output at the `<mask>`. "
    "RoBERTa is post-LN: each layer's output has just passed a LayerNorm, the same kind of "
    "vector the head reads after the last layer, so the head is applied to it unchanged. The "
    "first row is the embeddings, the last the model's own answer. The head was trained on the "
    "last layer only: an earlier row shows what the head reads into that layer's vector, "
    "a hint of what the layer has worked out so far, not a prediction the model makes.")
NEURON_EXPLAINED = (
    "The **neuron view**: how one head turns a query token's vector and every key's into "
    "weights. q and each k are that head's slice of the layer's query and key projections; "
    "their element-wise product, summed over the dimensions, is the score q·k; scaled by "
    "1/√(head size) and passed through a softmax over the keys, it is the weight the head's row "
    "shows above.")


def _whole(value: object, label: str, minimum: int, default: int) -> int:
    """A whole-number field (None, a cleared field: `default`), or a plain message."""
    value = checked_number(value, label, minimum, whole=True)
    return default if value is None else int(value)


# --- Fill-mask: the logit lens and click-to-mask ----------------------------------------------

@takes_turn(one_model("mlm"))
def show_logit_lens(text: str, model_name: str | None = None, mask_number: int = 1,
                    session: dict | None = None):
    """The lens at the `mask_number`-th <mask> (from 1): heatmap, table, one line."""
    text = check_masked_text(text)
    number = _whole(mask_number, "Which <mask>", 1, 1)
    loaded = registry.resolve(session, model_name, "mlm")
    with plain_errors("The logit lens"):
        lens = logit_lens(loaded.model, loaded.tokenizer, text, mask_index=number - 1)
        figure = lens_figure(lens)
    names = layer_names(len(lens.layers) - 1)
    table = pd.DataFrame([[name, "  ".join(visible_token(t) for t in guess.tokens),
                           guess.answer_rank, round(guess.answer_probability, 4)]
                          for name, guess in zip(names, lens.layers, strict=True)],
                         columns=LENS_COLUMNS)
    first = lens.first_layer_with_answer_in_top(LENS_TOP_K)
    summary = (f"At `<mask>` {number} *{markdown_literal(loaded.name)}* answers "
               f"**{markdown_literal(visible_token(lens.answer))}**; that answer is in the top "
               f"{LENS_TOP_K} from the **{names[first]}** on.")
    return figure, table, summary


def token_of_span(tokens: list[str], span: int) -> int:
    """The first token of the `span`-th piece of the tokenization view (fill_mask_tab's
    tokenization_spans, where a character split over several tokens is one span)."""
    counts = [count for _, count in merge_pieces(tokens)]
    if not 0 <= span < len(counts):
        raise user_error("Click a token of the tokenization shown.")
    return sum(counts[:span])


def mask_clicked(text: str, model_name: str | None, session: dict | None,
                 selected: gr.SelectData) -> str:
    """The text with the clicked word (a span of the tokenization view) replaced by <mask>."""
    loaded = registry.resolve(session, model_name, "mlm")
    length = loaded.model.config.max_sequence_length
    with plain_errors("Masking a word"):
        encoding, _ = encode_window(loaded.tokenizer, text, length)
        index = token_of_span(loaded.tokenizer.readable_tokens(encoding.tokens),
                              int(selected.index))
        return mask_word(loaded.tokenizer, text, index, length)


def build_logit_lens(session: gr.State, text: gr.Textbox, model_name: gr.Dropdown) -> tuple:
    """The lens's section; returns (function, inputs, outputs) to draw it again (after a click
    hides a word)."""
    with gr.Accordion("Layer by layer: what each layer would guess (logit lens)",
                      open=False):
        gr.Markdown(LENS_EXPLAINED)
        with gr.Row():
            mask_number = gr.Number(value=1, minimum=1, precision=0, label="Which <mask>",
                                    min_width=80)
            button = gr.Button("Show the layers")
        summary = gr.Markdown()
        figure = gr.Plot(label="Logit lens", elem_id="logit-lens-plot")
        table = gr.Dataframe(headers=LENS_COLUMNS, interactive=False,
                             label="Each layer's top guesses, and the final answer's place")
    redraw = (show_logit_lens, [text, model_name, mask_number, session], [figure, table, summary])
    button.click(*redraw, api_name="logit_lens", concurrency_limit=slots(4))
    return redraw


# --- Attention: the neuron view ---------------------------------------------------------------

@takes_turn(one_model("mlm"))
def show_neuron_view(text: str, model_name: str | None = None, layer: int = 1, head: int = 1,
                     query_token: int = 1, session: dict | None = None):
    """One head's weights for one query token (0 = <s>), step by step."""
    layer, head = _whole(layer, "Layer", 1, 1), _whole(head, "Head", 1, 1)
    query = _whole(query_token, "Query token", 0, 1)
    loaded = registry.resolve(session, model_name, "mlm")
    config = loaded.model.config
    # The Attention tab's window (its heatmaps' positions), within the cap on its answers
    longest = attention_tokens(config.num_hidden_layers, config.num_attention_heads)
    with plain_errors("The neuron view"):
        view = neuron_view(loaded.model, loaded.tokenizer, text, layer, head, query, longest)
        figure = neuron_figure(view)
    scaled = view.scores * view.scale
    table = pd.DataFrame([[i, visible_token(token), round(float(s), 4), round(float(c), 4),
                           round(float(w), 4)]
                          for i, (token, s, c, w) in enumerate(zip(
                              view.tokens, view.scores, scaled, view.weights, strict=True))],
                         columns=NEURON_COLUMNS)
    strongest = int(view.weights.argmax())
    shown = [markdown_literal(visible_token(t)) for t in view.tokens]
    summary = (f"Layer {layer}, head {head}: **{shown[query]}** (position {query}) gives "
               f"{float(view.weights[strongest]):.0%} of its attention to "
               f"**{shown[strongest]}** (position {strongest}). Positions: "
               + ", ".join(f"{i} {token}" for i, token in enumerate(shown)))
    return figure, table, summary


@takes_turn(one_model("mlm"))
def export_neuron_view(text: str, model_name: str | None = None, layer: int = 1, head: int = 1,
                       query_token: int = 1, session: dict | None = None) -> str:
    """The neuron view's chart as an HTML file with plotly inside (opens with no network)."""
    figure, _, _ = show_neuron_view(text, model_name, layer, head, query_token, session)
    with plain_errors("Saving the neuron view"):
        document = figure.to_html(include_plotlyjs=True, full_html=True)
    return html_download(f"neuron-view-L{int(layer or 1)}H{int(head or 1)}", document)


def build_neuron_view(session: gr.State, text: gr.Textbox, model_name: gr.Dropdown,
                      layer: gr.Number, head: gr.Number) -> None:
    gr.Markdown("### Neuron view: one head's computation, step by step\n" + NEURON_EXPLAINED
                + " Layer and head are the ones chosen above.")
    with gr.Row():
        query_token = gr.Number(value=1, minimum=0, precision=0, min_width=80,
                                label="Query token (its position; 0 = <s>)")
        button = gr.Button("Show the computation")
        save_button = gr.Button("Save as a web page", size="sm")
    summary = gr.Markdown()
    figure = gr.Plot(label="Neuron view")
    saved = gr.File(label="Neuron view (HTML, opens with no network)", interactive=False,
                    elem_id="neuron-view-page")
    table = gr.Dataframe(headers=NEURON_COLUMNS, interactive=False,
                         label="Every key: score, scaled score, weight")
    inputs = [text, model_name, layer, head, query_token, session]
    button.click(show_neuron_view, inputs, [figure, table, summary], api_name="neuron_view",
                 concurrency_limit=slots(2))
    save_button.click(export_neuron_view, inputs, saved, api_name="neuron_view_page",
                      concurrency_limit=slots(2))
