"""Attention tab: bertviz's head and model views (offline), one head as a heatmap, every head
summarised, attention rollout, and switching heads off to see the predictions change."""

from __future__ import annotations

import math
import re

import gradio as gr
import pandas as pd
import torch

from roberta.inference import attention_maps, fill_mask
from roberta.ui import limits, registry
from roberta.ui.common import markdown_literal, plain_errors, shown, user_error
from roberta.ui.heavy_lane import one_model, slots, takes_turn
from roberta.ui.lens_views import build_neuron_view
from roberta.ui.limits import attention_tokens
from roberta.ui.page_export import html_download
from roberta.viz import attention as viz
from roberta.viz import bertviz_offline
from roberta.viz.head_roles import ROLE_SENTENCES, head_roles

EXAMPLE = "The food was <mask> and the service was slow."
MASK = "<mask>"
MAX_BERTVIZ_TOKENS = 64  # beyond this the views are too tall to read and slow to draw
# bertviz writes every weight into its page, ~15 bytes each per view: at most 150k weights
# (layers × heads × tokens²) keeps both views near 4 MB. The embedded 4 × 4 model at 64 tokens
# is 65k; roberta-base's 144 heads reach the cap at 32 tokens.
MAX_BERTVIZ_VALUES = 150_000
COMPARISON_COLUMNS = ["mask", "rank", "all heads on", "p (on)", "heads off", "p (off)"]
HEAD_NAME = re.compile(r"^\s*L(\d+)\s*H(\d+)\s*$", re.IGNORECASE)


def head_choices(layers: int, heads: int) -> list[str]:
    return [f"L{layer}H{head}" for layer in range(1, layers + 1) for head in range(1, heads + 1)]


def head_mask_from(heads_off: list[str] | None, layers: int, heads: int) -> torch.Tensor | None:
    """["L1H2", ...] -> (layers, heads) of 1 (on) / 0 (off), or None when all are on."""
    if not heads_off:
        return None
    mask = torch.ones(layers, heads)
    for name in heads_off:
        match = HEAD_NAME.match(str(name))
        if not match:
            raise user_error(f"“{name}” is not a head name: write heads as L<layer>H<head>, "
                             f"e.g. L1H2.")
        layer, head = int(match[1]), int(match[2])
        if not (1 <= layer <= layers and 1 <= head <= heads):
            raise user_error(f"There is no head {name}: this model has {layers} layers of "
                             f"{heads} heads.")
        mask[layer - 1, head - 1] = 0
    return mask


def _check_layer_head(layer: int, head: int, layers: int, heads: int) -> tuple[int, int]:
    layer, head = int(layer), int(head)
    if not 1 <= layer <= layers:
        raise user_error(f"This model has {layers} layers: choose a layer from 1 to {layers}.")
    if not 1 <= head <= heads:
        raise user_error(f"This model has {heads} heads per layer: choose a head from 1 to "
                         f"{heads}.")
    return layer, head


def _maps(text: str, model_name: str | None, heads_off, session):
    if not isinstance(text, str) or not text.strip():
        raise user_error("The text is empty: type a sentence.")
    loaded = registry.resolve(session, model_name, "mlm")
    config = loaded.model.config
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    head_mask = head_mask_from(heads_off, layers, heads)
    longest = attention_tokens(layers, heads)
    with plain_errors("Computing attention"):
        result = attention_maps(loaded.model, loaded.tokenizer, text, head_mask=head_mask,
                                max_length=longest)
    if result.truncated:
        notice = result.window.notice()
        if longest < config.max_sequence_length:
            notice += (f" (This tab reads at most {longest - 2:,} tokens with a model of "
                       f"{layers} layers × {heads} heads, to keep the maps to "
                       f"{limits.current_limits().max_attention_values:,} weights; the "
                       f"Fill-mask tab reads {config.max_sequence_length - 2:,}.)")
        gr.Warning(shown(notice))
    return loaded, head_mask, result


def comparison(loaded, text: str, head_mask: torch.Tensor | None, n_off: int):
    """Top-5 guesses for each <mask> with all heads on and with the chosen heads off."""
    if MASK not in text:
        return (pd.DataFrame(columns=COMPARISON_COLUMNS),
                "Put `<mask>` in the text to see how switching heads off changes the guesses.")
    with plain_errors("Fill-mask"):
        before = fill_mask(loaded.model, loaded.tokenizer, text, top_k=5)
        after = fill_mask(loaded.model, loaded.tokenizer, text, top_k=5, head_mask=head_mask)
    rows, lines = [], []
    for m, (on, off) in enumerate(zip(before.predictions, after.predictions, strict=True),
                                  start=1):
        for rank, (a, b) in enumerate(zip(on.candidates, off.candidates, strict=True), start=1):
            rows.append([m, rank, a.token.replace(" ", "␣"), round(a.probability, 4),
                         b.token.replace(" ", "␣"), round(b.probability, 4)])
        a, b = on.candidates[0], off.candidates[0]
        verdict = "same first guess" if a.token_id == b.token_id else "**first guess changed**"
        lines.append(f"`<mask>` {m}: “{markdown_literal(a.token.strip())}” "
                     f"{a.probability:.1%} → “{markdown_literal(b.token.strip())}” "
                     f"{b.probability:.1%} ({verdict})")
    if n_off == 0:
        heading = ("All heads are on, so both columns agree. Tick heads under *Switch heads "
                   "off* and press Show attention again.")
    else:
        heading = f"With {n_off} head{'s' if n_off > 1 else ''} switched off:"
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS), "\n\n".join([heading, *lines])


def switched_off_note(head_mask: torch.Tensor | None) -> str:
    """One line above the bertviz views naming the switched-off heads, which they draw blank
    (no attention to show), so a blank row does not look like a fault."""
    if head_mask is None or bool((head_mask != 0).all()):
        return ""
    off = [f"L{layer + 1}H{head + 1}"
           for layer, head in (head_mask == 0).nonzero().tolist()]
    return (f'<p class="heads-off-note">Blank below: {len(off)} head'
            f'{"s" if len(off) > 1 else ""} switched off ({", ".join(off)}), so there is no '
            f"attention to draw.</p>")


@takes_turn(one_model("mlm"))
def show_attention(text: str, model_name: str | None = None, layer: int = 1, head: int = 1,
                   heads_off: list[str] | None = None, session: dict | None = None):
    """All the views for one text."""
    loaded, head_mask, result = _maps(text, model_name, heads_off, session)
    L, nh, T = result.attentions.shape[0], result.attentions.shape[1], len(result.tokens)
    layer, head = _check_layer_head(layer, head, L, nh)
    bertviz_tokens = min(MAX_BERTVIZ_TOKENS, math.isqrt(MAX_BERTVIZ_VALUES // (L * nh)))
    if bertviz_tokens < T:
        why = ("" if bertviz_tokens == MAX_BERTVIZ_TOKENS else
               f" with a model of {L} layers × {nh} heads (it writes every weight into the page)")
        note = (f"<p>bertviz's views are drawn for texts of up to {bertviz_tokens} tokens{why}; "
                f"this one has {T}. The heatmaps below show all of it.</p>")
        head_view = model_view = note
    else:
        with plain_errors("Drawing bertviz"):
            head_view = bertviz_offline.head_view_html(result.attentions, result.tokens)
            model_view = bertviz_offline.model_view_html(result.attentions, result.tokens)
        off = switched_off_note(head_mask)
        head_view, model_view = off + head_view, off + model_view
    with plain_errors("Drawing attention"):
        single = viz.head_heatmap(result.attentions, result.tokens, layer, head)
        roles = head_roles(loaded.model, loaded.tokenizer, head_mask=head_mask)
        summary = viz.summary_figure(viz.head_summary(result.attentions, result.tokens), T,
                                     roles.labels)
        rollout = viz.rollout_heatmap(result.attentions, result.tokens)
    n_off = 0 if head_mask is None else int((head_mask == 0).sum())
    table, verdict = comparison(loaded, text, head_mask, n_off)
    return head_view, model_view, single, summary, rollout, table, verdict


@takes_turn(one_model("mlm"))
def show_head(text: str, model_name: str | None = None, layer: int = 1, head: int = 1,
              heads_off: list[str] | None = None, session: dict | None = None):
    """Just the heatmap of one head (the layer/head sliders)."""
    _, _, result = _maps(text, model_name, heads_off, session)
    layer, head = _check_layer_head(layer, head, *result.attentions.shape[:2])
    with plain_errors("Drawing attention"):
        return viz.head_heatmap(result.attentions, result.tokens, layer, head)


@takes_turn(one_model("mlm"))
def export_bertviz(text: str, model_name: str | None = None,
                   heads_off: list[str] | None = None, session: dict | None = None) -> list[str]:
    """bertviz's head and model views of `text` as two HTML files that open with no network."""
    _, _, result = _maps(text, model_name, heads_off, session)
    L, nh, T = result.attentions.shape[0], result.attentions.shape[1], len(result.tokens)
    if T * T * L * nh > MAX_BERTVIZ_VALUES or T > MAX_BERTVIZ_TOKENS:
        raise user_error(f"bertviz's views are drawn for at most {MAX_BERTVIZ_TOKENS} tokens and "
                         f"{MAX_BERTVIZ_VALUES:,} weights; this text has {T} tokens: shorten it.")
    with plain_errors("Saving bertviz"):
        return [html_download("bertviz-head-view", bertviz_offline.head_view_document(
                    result.attentions, result.tokens)),
                html_download("bertviz-model-view", bertviz_offline.model_view_document(
                    result.attentions, result.tokens))]


def _shape(session: dict | None, model_name: str | None) -> tuple[int, int]:
    try:
        config = registry.resolve(session, model_name, "mlm").model.config
    except gr.Error:
        return 12, 12
    return config.num_hidden_layers, config.num_attention_heads


def controls_for(model_name: str | None, layer: int, head: int, session: dict | None):
    """Slider ranges and head names for the chosen model. The heads already chosen stay (a
    name this model lacks is refused plainly when the views are drawn): answering with a value
    would overwrite heads typed while this answer was on its way."""
    layers, heads = _shape(session, model_name)
    return (gr.update(value=min(int(layer or 1), layers), label=f"Layer (1–{layers})"),
            gr.update(value=min(int(head or 1), heads), label=f"Head (1–{heads})"),
            gr.update(choices=head_choices(layers, heads)))


def build_attention_tab(session: gr.State) -> None:
    gr.Markdown(
        "Each layer has several attention **heads**; each head decides, for every token, how "
        "much to look at every other token. Lines and cells show those weights (each row sums "
        "to 1). Choose the model *Structured start, untrained (step 0)* to see the two heads the "
        "Train tab starts from: in layer 1, head 1 looks one token to the left and head 2 one "
        "to the right.")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(value=EXAMPLE, label="Text", lines=2)
            show_button = gr.Button("Show attention", variant="primary")
        with gr.Column(scale=2):
            model_name, _ = registry.model_selector(session, "mlm")
    layers, heads = _shape({}, model_name.value)
    with gr.Accordion("Switch heads off", open=False):
        gr.Markdown("A switched-off head contributes nothing to its layer's output. Press "
                    "*Show attention* to compare the fill-mask guesses with all heads on and "
                    "with these heads off.")
        # A multi-select scales from 8 heads to roberta-base's 144; custom values let a
        # program name heads of any model (head_mask_from checks them).
        heads_off = gr.Dropdown(head_choices(layers, heads), value=[], multiselect=True,
                                allow_custom_value=True, elem_id="heads-off",
                                label="Heads to switch off (L = layer, H = head)")
    gr.Markdown("### bertviz head view\nPick a layer; hover over a token to see where it "
                "looks. Colours are heads; double-click a colour to show one head only. "
                "(bertviz counts layers and heads from 0; the rest of this tab from 1.)")
    head_view = gr.HTML(elem_id="bertviz-head-view")
    with gr.Row():
        # Numbers, not sliders: a slider's range is fixed per page, but the model (and so the
        # number of layers and heads) can change; the callback checks the range.
        layer = gr.Number(value=1, minimum=1, precision=0, label=f"Layer (1–{layers})",
                          min_width=80)
        head = gr.Number(value=1, minimum=1, precision=0, label=f"Head (1–{heads})",
                         min_width=80)
    single = gr.Plot(label="One head")
    build_neuron_view(session, text, model_name, layer, head)
    gr.Markdown("### Every head at a glance\n**Entropy** low = the head focuses on few "
                "tokens. Heads that park their attention on **`<s>`/`</s>`** are often "
                "\"resting\". **Mean distance** small = the head looks at neighbours. "
                "Written on the first panel, each head's **role**, read from "
                f"{len(ROLE_SENTENCES)} fixed everyday sentences (the same for every model): "
                "*prev*/*next*/*self* when over half its attention goes to the token before/"
                "after/itself, *<s>*/*</s>* to the sentence's ends, *punct* to punctuation, "
                "*broad* when spread almost evenly; blank when none (roberta/viz/head_roles.py).")
    summary = gr.Plot(label="Layers × heads")
    gr.Markdown("### Attention rollout\nAttention of all layers combined, counting the "
                "residual connections (Abnar & Zuidema, 2020).")
    rollout = gr.Plot(label="Rollout")
    gr.Markdown("### Switching heads off: the fill-mask guesses before and after")
    verdict = gr.Markdown()
    table = gr.Dataframe(headers=COMPARISON_COLUMNS, interactive=False,
                         label="Top-5 guesses per <mask>")
    gr.Markdown("### bertviz model view\nEvery layer (rows) × head (columns); click a "
                "thumbnail to enlarge it. Wider than a phone: scroll it sideways.")
    model_view = gr.HTML(elem_id="bertviz-model-view")
    with gr.Row():
        save_button = gr.Button("Save both bertviz views as web pages", size="sm")
        saved = gr.File(label="bertviz views (HTML, open with no network)", file_count="multiple",
                        interactive=False, elem_id="bertviz-pages")

    inputs = [text, model_name, layer, head, heads_off, session]
    outputs = [head_view, model_view, single, summary, rollout, table, verdict]
    show_button.click(show_attention, inputs, outputs, api_name="attention",
                      concurrency_limit=slots(2))
    text.submit(show_attention, inputs, outputs, api_visibility="private",
                concurrency_limit=slots(2))
    save_button.click(export_bertviz, [text, model_name, heads_off, session], saved,
                      api_name="attention_pages", concurrency_limit=slots(2))
    layer.input(show_head, inputs, single, api_name="attention_head", concurrency_limit=slots(2),
                trigger_mode="always_last")
    head.input(show_head, inputs, single, api_visibility="private", concurrency_limit=slots(2),
               trigger_mode="always_last")
    model_name.change(controls_for, [model_name, layer, head, session],
                      [layer, head, heads_off], api_visibility="private", queue=False)
