"""Masking tab: one sentence through N epochs, dynamic (RoBERTa) beside static (BERT), every
position coloured by what happened to it; coverage over epochs; the 80/10/10 split measured;
whole-word beside sub-word. Needs only a tokenizer (the chosen masked LM's)."""

from __future__ import annotations

import dataclasses

import gradio as gr
import torch

from roberta.masking import MaskingConfig
from roberta.settings import SettingError, declared, naming
from roberta.ui import registry
from roberta.ui.common import plain_errors, shown, user_error
from roberta.ui.runs import in_words
from roberta.viz import masking as viz

EXAMPLE = "Unbelievably, the archaeologists rediscovered the forgotten manuscripts yesterday."
MAX_TOKENS = 48  # a grid wider than this stops being readable
MAX_EPOCHS = 40
AVERAGE_RUNS = 400
SPLIT_DRAWS = 5000


def mask_pattern(text: str, epochs: int = 8,
                 mlm_probability: float = MaskingConfig.mlm_probability,
                 mask_fraction: float = MaskingConfig.mask_fraction,
                 random_fraction: float = MaskingConfig.random_fraction,
                 static_copies: int = 1, seed: int = 0, model_name: str | None = None,
                 session: dict | None = None):
    """Grids, coverage and split for one sentence."""
    if not isinstance(text, str) or not text.strip():
        raise user_error("The text is empty: type a sentence to mask.")
    epochs, static_copies, seed = int(epochs), int(static_copies), int(seed)
    if not 1 <= epochs <= MAX_EPOCHS:
        raise user_error(f"Epochs must be between 1 and {MAX_EPOCHS}.")
    if static_copies < 1:
        raise user_error("Static copies must be at least 1 (BERT used 1; the RoBERTa paper's "
                         "static baseline used 10).")
    tokenizer = registry.resolve(session, model_name, "mlm").tokenizer
    try:
        config = MaskingConfig(mlm_probability=float(mlm_probability),
                               mask_fraction=float(mask_fraction),
                               random_fraction=float(random_fraction))
    except SettingError as err:
        raise user_error(str(in_words(err, naming(MaskingConfig)))) from None
    with plain_errors("Masking"):
        encoding = tokenizer.encode(text, max_length=MAX_TOKENS)
        if encoding.truncated:
            gr.Warning(shown(f"Only the first {MAX_TOKENS - 2} tokens are shown; the rest of "
                             f"the text was cut."))
        ids = torch.tensor(encoding.ids)
        special = [i in tokenizer.special_ids for i in encoding.ids]
        if all(special):
            raise user_error("The text has no ordinary tokens to mask.")
        dynamic = viz.dynamic_run(tokenizer, ids, epochs, config, seed,
                                  "Dynamic masking (RoBERTa): a new mask every epoch")
        static = viz.static_run(tokenizer, ids, epochs, config, seed, static_copies,
                                f"Static masking (BERT): {static_copies} mask"
                                f"{'s' if static_copies > 1 else ''} drawn once, then reused")
        whole_word = viz.dynamic_run(tokenizer, ids, epochs,
                                     dataclasses.replace(config, whole_word=True), seed,
                                     "Whole-word masking (dynamic): a word's pieces go "
                                     "together; a thick line marks where a word starts")
        maskable = ~torch.tensor(special)
        covered = {"dynamic": viz.coverage(dynamic.record, maskable),
                 "static": viz.coverage(static.record, maskable)}
        averaged_dynamic, averaged_static = viz.average_coverage(
            tokenizer, ids, epochs, config, seed, static_copies, AVERAGE_RUNS)
        split = viz.measure_split(tokenizer, ids, config, seed, SPLIT_DRAWS)
        split_words = viz.measure_split(tokenizer, ids,
                                        dataclasses.replace(config, whole_word=True), seed,
                                        SPLIT_DRAWS)

    legend = viz.legend_html()
    grids = legend + viz.run_html(dynamic, special) + viz.run_html(static, special)
    words = legend + viz.run_html(whole_word, special) + viz.run_html(
        dataclasses.replace(dynamic, title="Sub-word masking (dynamic), same seed"), special)
    coverage = viz.coverage_figure(epochs, covered,
                                   {"dynamic": averaged_dynamic, "static": averaged_static},
                                   AVERAGE_RUNS)
    n_maskable = int(maskable.sum())
    summary = (
        f"**{n_maskable} maskable tokens** (of {len(ids)}; `<s>` and `</s>` are never chosen). "
        f"After {epochs} epochs the dynamic mask has asked the model about "
        f"**{covered['dynamic'][-1]:.0%}** of them, the static one about "
        f"**{covered['static'][-1]:.0%}** — on average {averaged_dynamic[-1]:.0%} vs "
        f"{averaged_static[-1]:.0%}.\n\n"
        f"Measured over {split.draws:,} draws: {split.chosen_fraction:.1%} of tokens chosen "
        f"(target {config.mlm_probability:.0%}); of those {split.masked_fraction:.1%} became "
        f"`<mask>`, {split.random_fraction:.1%} a random token and {split.kept_fraction:.1%} "
        f"stayed (target {config.mask_fraction:.0%} / {config.random_fraction:.0%} / "
        f"{config.keep_fraction:.0%}). {split.random_was_original} random draws happened to "
        f"pick the original token.\n\n"
        f"Whole-word masking chose {split_words.chosen_fraction:.1%} of the tokens: the rate "
        f"is per token in both modes, but whole words are chosen together."
    )
    return grids, coverage, viz.split_figure(config, split), words, summary


def build_masking_tab(session: gr.State) -> None:
    gr.Markdown(
        "RoBERTa's first change to BERT: **dynamic masking**. BERT masked its data once, "
        "before training, so every epoch showed the model the same blanks; RoBERTa draws a new "
        "mask each time a sequence is fed. Of the chosen tokens (15%), 80% become `<mask>`, 10% "
        "a random token and 10% stay as they are — the model must predict all of them.")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(value=EXAMPLE, label="Sentence", lines=2)
            run_button = gr.Button("Mask it", variant="primary")
            summary = gr.Markdown()
        with gr.Column(scale=2):
            model_name, _ = registry.model_selector(session, "mlm",
                                                    label="Tokenizer of the model")
            with gr.Row():
                epochs = gr.Slider(1, MAX_EPOCHS, value=8, step=1, label="Epochs")
                rate = declared(MaskingConfig)["mlm_probability"]
                mlm_probability = gr.Slider(rate.minimum, rate.maximum,
                                            value=MaskingConfig.mlm_probability, step=0.01,
                                            label="Masking rate")
            with gr.Row():
                mask_fraction = gr.Slider(0.0, 1.0, value=MaskingConfig.mask_fraction, step=0.05,
                                          label="→ <mask>")
                random_fraction = gr.Slider(0.0, 1.0, value=MaskingConfig.random_fraction,
                                            step=0.05, label="→ random token")
            with gr.Row():
                static_copies = gr.Slider(1, 10, value=1, step=1, label="Static copies",
                                          info="BERT: 1; the paper's static baseline: 10")
                seed = gr.Number(value=0, precision=0, label="Seed")
    grids = gr.HTML(label="Dynamic vs static", elem_id="masking-grids",
                    css_template=viz.MASKING_CSS)
    with gr.Row():
        coverage = gr.Plot(label="Coverage over epochs")
        split = gr.Plot(label="The 80/10/10 split, measured")
    words = gr.HTML(label="Whole-word vs sub-word", elem_id="masking-words",
                    css_template=viz.MASKING_CSS)

    inputs = [text, epochs, mlm_probability, mask_fraction, random_fraction, static_copies,
              seed, model_name, session]
    outputs = [grids, coverage, split, words, summary]
    run_button.click(mask_pattern, inputs, outputs, api_name="mask_pattern",
                     concurrency_limit=2)
    text.submit(mask_pattern, inputs, outputs, api_visibility="private", concurrency_limit=2)
