"""Model tab: the chosen model's config and parameters by component, the size presets, and
what RoBERTa changed from BERT."""

from __future__ import annotations

import re

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from roberta.config import PRESETS, RobertaConfig
from roberta.model import RobertaForMaskedLM
from roberta.ui import downloads, registry
from roberta.ui.common import markdown_literal, user_error
from roberta.ui.model_import import build_import_panel

CONFIG_MEANINGS = {
    "vocab_size": "tokens the byte-level BPE vocabulary has (roberta-base: 50,265)",
    "hidden_size": "width of every token's vector (C)",
    "num_hidden_layers": "encoder layers stacked (L)",
    "num_attention_heads": "heads per layer; each head is hidden_size / heads wide",
    "intermediate_size": "width of the feed-forward block inside each layer (usually 4C)",
    "hidden_act": "activation in the feed-forward block (the exact, erf GELU)",
    "max_position_embeddings": "position rows: longest text + 2, since positions start at "
                               "padding_idx + 1",
    "type_vocab_size": "token types: 1, RoBERTa has no sentence-pair segments",
    "layer_norm_eps": "LayerNorm epsilon (roberta-base: 1e-5)",
    "hidden_dropout_prob": "dropout on embeddings and sub-layer outputs while training",
    "attention_probs_dropout_prob": "dropout on attention weights while training",
    "classifier_dropout": "dropout in the classification head (None: hidden_dropout_prob)",
    "initializer_range": "standard deviation of the initial weights",
    "pad_token_id": "id of <pad>; also the position index padding gets",
    "bos_token_id": "id of <s>, which starts every sequence",
    "eos_token_id": "id of </s>, which ends every sequence",
    "num_labels": "classes of the classification head",
    "id2label": "class names",
}

WORD_EMBEDDINGS = "word embeddings"
TIED_WORD_EMBEDDINGS = "word embeddings (shared with the LM decoder)"

COMPONENTS = [  # (pattern on the parameter name, component), first match wins
    (r"embeddings\.word_embeddings", WORD_EMBEDDINGS),
    (r"embeddings\.position_embeddings", "position embeddings"),
    (r"embeddings\.", "token type embedding + embedding LayerNorm"),
    (r"attention\.self\.", "self-attention: query, key, value"),
    (r"attention\.output\.dense", "self-attention: output projection"),
    (r"intermediate\.dense|\.output\.dense", "feed-forward (two linear layers)"),
    (r"LayerNorm", "LayerNorms inside the layers"),
    (r"^lm_head\.", "masked-LM head: dense, LayerNorm, output bias"),
    (r"^classifier\.", "classification head: dense, out_proj"),
    (r"pooler\.", "pooler"),
]

# (what, BERT 2018, RoBERTa 2019, where it lives in this lab)
CHANGES_FROM_BERT = [
    ("Masking",
     "static: masks drawn once at preprocessing (duplicated ×10 with different masks)",
     "**dynamic**: a fresh mask every time a sequence is fed",
     "Masking tab; `roberta/masking.py`"),
    ("Next-sentence prediction", "second loss: is sentence B the real next one?",
     "**removed**: masked-LM loss only (no NSP head)", "`RobertaForMaskedLM` has one head"),
    ("Input format", "pairs of segments, 90% of steps on 128-token sequences",
     "**FULL-SENTENCES**: contiguous text packed to 512 tokens, crossing documents with a "
     "`</s>` separator", "`roberta/data.py` (`pack_full_sentences`)"),
    ("Batch size", "256 sequences × 1M steps",
     "**8K sequences** × 500K steps, higher learning rate",
     "Train tab: batch size (the command line adds `--grad-accum`)"),
    ("Data", "16 GB (books + Wikipedia)", "**160 GB** (+ CC-News, OpenWebText, Stories)",
     "bundled BBC News + food reviews (tiny, for a live demo)"),
    ("Tokenizer", "WordPiece, 30K units; characters it never saw become `[UNK]`",
     "**byte-level BPE**, 50K; every byte has a token, so nothing is unknown",
     "`roberta/tokenizer.py`; Fill-mask shows the tokens"),
    ("Positions", "ids 0 … 511",
     "ids start at **padding_idx + 1 = 2**, so 514 rows for 512 tokens",
     "`create_position_ids` in `roberta/model.py`"),
    ("Token types", "2 (sentence A / B)", "**1**: no segments", "`type_vocab_size = 1`"),
    ("Optimizer", "Adam β₂ = 0.999", "Adam **β₂ = 0.98** (stabler with large batches)",
     "`PretrainConfig.adam_betas`"),
    ("Special tokens", "`[CLS]`, `[SEP]`, `[MASK]`",
     "`<s>`, `</s>`, `<mask>` (which absorbs the space before it)",
     "type `<mask>`, not `[MASK]`"),
]


def roberta_vs_bert() -> str:
    rows = "\n".join(f"| **{what}** | {bert} | {roberta} | {here} |"
                     for what, bert, roberta, here in CHANGES_FROM_BERT)
    return ("### What RoBERTa changed from BERT\n\n"
            "RoBERTa (Liu et al., 2019, *A Robustly Optimized BERT Pretraining Approach*) keeps "
            "BERT's architecture — post-LayerNorm Transformer encoder, GELU, learned positions — "
            "and changes how it is trained. Where each change lives here:\n\n"
            "| | BERT (2018) | RoBERTa (2019) | In this lab |\n|---|---|---|---|\n" + rows)


def component_of(name: str) -> str:
    for pattern, component in COMPONENTS:
        if re.search(pattern, name):
            return component
    return "other"


def parameters_by_component(model) -> pd.DataFrame:
    """Parameters grouped by what they do; tied weights are counted once. Only a masked LM
    has a decoder for its word embeddings to share (a classifier has none)."""
    counts: dict[str, int] = {}
    head = getattr(model, "lm_head", None)
    words = model.roberta.embeddings.word_embeddings.weight
    tied = head is not None and head.decoder.weight is words
    for name, parameter in model.named_parameters():  # yields a tied tensor only once
        component = component_of(name)
        if component == WORD_EMBEDDINGS and tied:
            component = TIED_WORD_EMBEDDINGS
        counts[component] = counts.get(component, 0) + parameter.numel()
    total = sum(counts.values())
    rows = [[c, n, round(100 * n / total, 1)] for c, n in counts.items()]
    rows.append(["total", total, 100.0])
    return pd.DataFrame(rows, columns=["component", "parameters", "share %"])


def masked_lm_parameters(config: RobertaConfig) -> int:
    """Parameters of RobertaForMaskedLM with `config`, counted without building it."""
    return RobertaForMaskedLM.parameter_count(config)


def presets_table() -> pd.DataFrame:
    rows = []
    for name in PRESETS:
        c = RobertaConfig.preset(name)
        rows.append([name, c.num_hidden_layers, c.hidden_size, c.num_attention_heads,
                     c.intermediate_size, c.vocab_size, c.max_sequence_length,
                     f"{masked_lm_parameters(c) / 1e6:.2f}M"])
    return pd.DataFrame(rows, columns=["preset", "layers", "hidden", "heads", "FFN",
                                       "vocab", "max tokens", "parameters (masked LM)"])


def config_table(config: RobertaConfig) -> pd.DataFrame:
    rows = [[k, str(v), CONFIG_MEANINGS.get(k, "")] for k, v in config.to_dict().items()
            if k in CONFIG_MEANINGS]
    return pd.DataFrame(rows, columns=["field", "value", "what it means"])


def parameters_chart(table: pd.DataFrame) -> go.Figure:
    parts = table[table["component"] != "total"].sort_values("parameters")
    figure = go.Figure(go.Bar(x=parts["parameters"], y=parts["component"], orientation="h",
                              marker_color="#0072B2",
                              text=[f"{p:,} ({s}%)" for p, s in zip(parts["parameters"],
                                                                   parts["share %"],
                                                                   strict=True)],
                              textposition="auto"))
    figure.update_layout(title="Where the parameters are", height=120 + 34 * len(parts),
                         margin=dict(l=20, r=20, t=50, b=20), xaxis_title="parameters")
    return figure


def architecture_text(name: str, model) -> str:
    c = model.config
    is_classifier = not hasattr(model, "lm_head")
    head = (f"classification head on <s>: dropout → dense → tanh → dropout → out_proj "
            f"({c.num_labels} classes)" if is_classifier else
            "masked-LM head: dense → GELU → LayerNorm → decoder tied to the word embeddings")
    # The class names come from the checkpoint: outside the code block (which shows text raw,
    # so escaping cannot be used there and a fence in a label would close it) and escaped.
    classes = (f"\n\nClasses: {', '.join(markdown_literal(label) for label in c.id2label.values())}"
               if is_classifier else "")
    return (f"### {markdown_literal(name)}\n"
            f"```\n"
            f"token ids (up to {c.max_sequence_length})\n"
            f" → embeddings: word ({c.vocab_size:,} × {c.hidden_size}) + position (from "
            f"padding_idx + 1) + type → LayerNorm → dropout\n"
            f" → {c.num_hidden_layers} × encoder layer:\n"
            f"      self-attention, {c.num_attention_heads} heads × "
            f"{c.hidden_size // c.num_attention_heads} dims → add & LayerNorm\n"
            f"      feed-forward {c.hidden_size} → {c.intermediate_size} (GELU) → "
            f"{c.hidden_size} → add & LayerNorm\n"
            f" → {head}\n```" + classes)


# The Model tab shows any model: masked LMs and classifiers in one picker.
TASKS = ("mlm", "classifier")


def all_choices(session: dict | None) -> list[str]:
    return registry.choices_for(session, TASKS)


def model_info(model_name: str | None = None, session: dict | None = None):
    """Architecture, config and parameter counts of one model (masked LM or classifier)."""
    available = all_choices(session)
    if not model_name:
        if not available:
            raise user_error(registry.missing_message("mlm"))
        model_name = available[0]
    if model_name not in available:  # neither task's: name every model, not one task's
        raise user_error(f"There is no model called “{model_name}” in this browser session. "
                         f"Choose one of: {', '.join(available)}.")
    task = registry.task_of(session, model_name, TASKS)
    loaded = registry.resolve(session, model_name, task)
    table = parameters_by_component(loaded.model)
    return (architecture_text(loaded.name, loaded.model), config_table(loaded.model.config),
            table, parameters_chart(table), registry.model_info(session, model_name, TASKS))


def model_info_or_missing(model_name: str | None, session: dict | None):
    """What the tab shows when it opens: the model, or what is missing (no error pop-up)."""
    if not all_choices(session):
        return "", None, None, None, registry.model_info(session, None, TASKS)
    return model_info(model_name, session)


def build_model_tab(session: gr.State) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            # The same picker as every tab's (registry.model_selector), offering both tasks;
            # its line under it says what the chosen model is, or what is missing.
            model_name, status = registry.model_selector(session, TASKS,
                                                         refresh_on_select=False)
        with gr.Column(scale=1):
            with gr.Row():
                show_button = gr.Button("Show", variant="primary")
                download_button = downloads.download_button("⬇ Download",
                                                            elem_id="model-download")
            # The same import as the Fill-mask tab's, feeding this tab's picker.
            build_import_panel(session, model_name, status, TASKS)
    exports = downloads.export_state()  # this browser tab's zip of the chosen model
    architecture = gr.Markdown()
    with gr.Row():
        parameters = gr.Dataframe(label="Parameters by component", interactive=False)
        chart = gr.Plot(label="Parameters")
    config = gr.Dataframe(label="Config", interactive=False, wrap=True)
    gr.Markdown("### Size presets\nThe shapes this lab can build (`RobertaConfig.preset`); "
                "`base` and `large` are the shapes of roberta-base and roberta-large.")
    gr.Dataframe(presets_table(), interactive=False)
    gr.Markdown(roberta_vs_bert())

    outputs = [architecture, config, parameters, chart, status]
    show_button.click(model_info, [model_name, session], outputs, api_name="model_info")
    # Choosing a model (or importing one: it is selected) shows it (Show stays for API callers
    # and to redraw).
    model_name.change(model_info_or_missing, [model_name, session], outputs,
                      api_visibility="private").then(
        downloads.selected_model_download, [model_name, session, exports], download_button,
        api_visibility="private")
    # Opening the tab: this session's models offered, then the chosen one shown.
    selected = registry.refresh_when_selected(session, model_name, status, TASKS)
    if selected is not None:
        selected.then(model_info_or_missing, [model_name, session], outputs,
                      api_visibility="private").then(
            downloads.selected_model_download, [model_name, session, exports], download_button,
            api_visibility="private")
