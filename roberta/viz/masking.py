"""Showing what masking does to one sentence: per-epoch grids, coverage over epochs, and the
80/10/10 split measured over many draws.

All masks come from `roberta.masking` (the same code training uses), so what the Masking tab
shows is what the model is fed.
"""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from roberta.masking import (
    KEPT,
    MASKED,
    NOT_CHOSEN,
    RANDOM,
    DynamicMasker,
    MaskingConfig,
    StaticMaskedDataset,
    mask_statistics,
    maskable_positions,
)
from roberta.tokenizer import RobertaTokenizer

ACTION_NAMES = {NOT_CHOSEN: "not chosen", MASKED: "<mask>", RANDOM: "random token",
                KEPT: "kept (still predicted)"}
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
ACTION_COLOURS = {NOT_CHOSEN: "#F4F4F4", MASKED: "#E69F00", RANDOM: "#CC79A7", KEPT: "#56B4E9"}
SPECIAL_COLOUR = "#DDDDDD"


@dataclass
class MaskingRun:
    """One sentence masked epoch after epoch. Rows of `seen`/`record` are epochs."""

    title: str
    tokens: list[str]  # the original tokens, readable
    seen: list[list[str]]  # what the model is fed at each epoch, readable
    record: torch.Tensor  # (epochs, T) MaskAction codes
    row_labels: list[str]
    word_starts: list[bool] | None = None  # shown for whole-word masking


def _masker(tokenizer: RobertaTokenizer, config: MaskingConfig, seed: int) -> DynamicMasker:
    return DynamicMasker(mask_token_id=tokenizer.mask_token_id, vocab_size=tokenizer.vocab_size,
                         special_ids=tokenizer.special_ids, config=config, seed=seed,
                         word_start=tokenizer.word_start_mask() if config.whole_word else None)


def _readable(tokenizer: RobertaTokenizer, ids: list[int]) -> list[str]:
    return tokenizer.readable_tokens(tokenizer.convert_ids_to_tokens(ids))


def dynamic_run(tokenizer: RobertaTokenizer, ids: torch.Tensor, epochs: int,
                config: MaskingConfig, seed: int, title: str) -> MaskingRun:
    """RoBERTa: a fresh mask every time the sentence is fed to the model."""
    masker = _masker(tokenizer, config, seed)
    batches = [masker(ids, return_record=True) for _ in range(epochs)]
    word_starts = None
    if config.whole_word:
        starts = tokenizer.word_start_mask()[ids]
        word_starts = [bool(s) or i == 1 for i, s in enumerate(starts.tolist())]
    return MaskingRun(title, _readable(tokenizer, ids.tolist()),
                      [_readable(tokenizer, b.input_ids.tolist()) for b in batches],
                      torch.stack([b.record for b in batches]),
                      [f"epoch {e + 1}" for e in range(epochs)], word_starts)


def static_run(tokenizer: RobertaTokenizer, ids: torch.Tensor, epochs: int,
               config: MaskingConfig, seed: int, copies: int, title: str) -> MaskingRun:
    """BERT: masks drawn once at preprocessing (`copies` of them), reused epoch after epoch."""
    dataset = StaticMaskedDataset(ids[None], n_copies=copies, mask_token_id=tokenizer.mask_token_id,
                                  vocab_size=tokenizer.vocab_size,
                                  special_ids=tokenizer.special_ids, config=config, seed=seed)
    batches = [dataset.batch([0], epoch=e, return_record=True) for e in range(epochs)]
    return MaskingRun(title, _readable(tokenizer, ids.tolist()),
                      [_readable(tokenizer, b.input_ids[0].tolist()) for b in batches],
                      torch.stack([b.record[0] for b in batches]),
                      [f"epoch {e + 1} (copy {e % copies + 1})" for e in range(epochs)])


def coverage(record: torch.Tensor, maskable: torch.Tensor) -> list[float]:
    """record (epochs, [runs,] T): share of maskable tokens chosen at least once by epoch k."""
    chosen = (record != NOT_CHOSEN) & maskable
    ever = chosen.cumsum(dim=0) > 0
    n = maskable.sum(dim=-1).clamp_min(1)
    share = ever.sum(dim=-1) / n  # (epochs, [runs])
    return (share.mean(dim=-1) if share.dim() > 1 else share).tolist()


def average_coverage(tokenizer: RobertaTokenizer, ids: torch.Tensor, epochs: int,
                     config: MaskingConfig, seed: int, copies: int,
                     runs: int = 400) -> tuple[list[float], list[float]]:
    """Coverage averaged over `runs` independent trainings of the sentence: (dynamic, static)."""
    many = ids.expand(runs, -1).contiguous()
    maskable = maskable_positions(many, tokenizer.special_ids)
    masker = _masker(tokenizer, dataclasses.replace(config, whole_word=False), seed + 1)
    dynamic = torch.stack([masker(many, return_record=True).record for _ in range(epochs)])
    dataset = StaticMaskedDataset(many, n_copies=copies, mask_token_id=tokenizer.mask_token_id,
                                  vocab_size=tokenizer.vocab_size,
                                  special_ids=tokenizer.special_ids,
                                  config=dataclasses.replace(config, whole_word=False),
                                  seed=seed + 2)
    static = torch.stack([dataset.epoch(e, return_record=True).record for e in range(epochs)])
    return coverage(dynamic, maskable), coverage(static, maskable)


@dataclass
class SplitMeasurement:
    draws: int
    chosen_fraction: float  # of maskable tokens
    masked_fraction: float  # of chosen
    random_fraction: float
    kept_fraction: float
    random_was_original: int  # random replacements that drew the original token by chance


def measure_split(tokenizer: RobertaTokenizer, ids: torch.Tensor, config: MaskingConfig,
                  seed: int, draws: int = 5000) -> SplitMeasurement:
    """Draw many masks of the sentence and count what happened to the chosen tokens."""
    many = ids.expand(draws, -1).contiguous()
    batch = _masker(tokenizer, config, seed + 3)(many, return_record=True)
    stats = mask_statistics(batch.record, maskable_positions(many, tokenizer.special_ids))
    same = int(((batch.record == RANDOM) & (batch.input_ids == many)).sum())
    return SplitMeasurement(draws, stats["chosen_fraction"], stats["masked_fraction"],
                            stats["random_fraction"], stats["kept_fraction"], same)


# --- figures and HTML ----------------------------------------------------------------------

def _shown(token: str) -> str:
    """A token as a cell shows it: spaces and line breaks made visible, never empty."""
    return token.replace(" ", "␣").replace("\n", "↵") or "∅"


def _cell_text(token: str) -> str:
    return html.escape(_shown(token))


def legend_html() -> str:
    items = "".join(
        f'<span class="mask-legend-item" style="background:{ACTION_COLOURS[a]}">'
        f"{html.escape(name)}</span>" for a, name in ACTION_NAMES.items())
    return (f'<div class="mask-legend">{items}<span class="mask-legend-item" '
            f'style="background:{SPECIAL_COLOUR}">special (never chosen)</span></div>')


# A grid wider than the page would be cut off (or hide behind a sideways scroll): long text
# wraps into blocks of columns, like a paragraph's lines. Widths are estimated in characters of
# the monospace font (a cell's padding and border count as about two).
BLOCK_CHARACTERS = 110
CELL_PADDING_CHARACTERS = 2


def column_blocks(widths: list[int], budget: int = BLOCK_CHARACTERS) -> list[range]:
    """Positions split into consecutive blocks whose cells' widths (in characters, padding
    added) sum to at most `budget`; a cell wider than the budget gets a block of its own."""
    blocks, start, used = [], 0, 0
    for i, width in enumerate(widths):
        width += CELL_PADDING_CHARACTERS
        if i > start and used + width > budget:
            blocks.append(range(start, i))
            start, used = i, 0
        used += width
    if start < len(widths):
        blocks.append(range(start, len(widths)))
    return blocks


def run_html(run: MaskingRun, special: list[bool]) -> str:
    """Tables: one row per epoch, one cell per position, coloured by what happened; a long
    sentence continues in a further table below (see column_blocks)."""
    widths = [max(len(_shown(t)) for t in [run.tokens[i], *(s[i] for s in run.seen)])
              for i in range(len(run.tokens))]
    label_width = max((len(label) for label in run.row_labels), default=0)
    tables = [_grid_html(run, special, block)
              for block in column_blocks(widths, max(20, BLOCK_CHARACTERS - label_width))]
    return (f'<div class="mask-run"><h4>{html.escape(run.title)}</h4>'
            + "".join(f'<div class="mask-scroll">{table}</div>' for table in tables)
            + "</div>")


def _grid_html(run: MaskingRun, special: list[bool], positions: range) -> str:
    head = ['<th class="mask-row-label"></th>']
    for i in positions:
        word = " mask-word-start" if run.word_starts and run.word_starts[i] else ""
        head.append(f'<th class="mask-token{word}">{_cell_text(run.tokens[i])}</th>')
    rows = []
    for label, seen, codes in zip(run.row_labels, run.seen, run.record.tolist(), strict=True):
        cells = [f'<th class="mask-row-label">{html.escape(label)}</th>']
        for i in positions:
            token, code = seen[i], codes[i]
            colour = SPECIAL_COLOUR if special[i] else ACTION_COLOURS[code]
            what = "special token" if special[i] else ACTION_NAMES[code]
            tip = f"{run.tokens[i]!r} → {token!r}: {what}"
            word = " mask-word-start" if run.word_starts and run.word_starts[i] else ""
            cells.append(f'<td class="mask-cell{word}" data-action="{code}" '
                         f'style="background:{colour}" title="{html.escape(tip)}">'
                         f"{_cell_text(token)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="mask-grid"><tr>{"".join(head)}</tr>' + "".join(rows) + "</table>"


MASKING_CSS = """
.mask-grid {border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 14px;}
.mask-grid th, .mask-grid td {border: 1px solid #ccc; padding: 3px 6px; white-space: pre;
  text-align: center; color: #111;}
.mask-grid th.mask-token {background: #fafafa; font-weight: 600;}
.mask-grid .mask-row-label {text-align: right; font-weight: 400; color: #555; background: #fff;}
.mask-grid .mask-word-start {border-left: 3px solid #333;}
.mask-scroll {overflow-x: auto; margin-bottom: 8px;}
.mask-legend {display: flex; gap: 8px; flex-wrap: wrap; margin: 6px 0;}
.mask-legend-item {padding: 2px 8px; border: 1px solid #ccc; border-radius: 4px; color: #111;
  font-family: ui-monospace, monospace;}
"""


def coverage_figure(epochs: int, shown: dict[str, list[float]],
                    averaged: dict[str, list[float]], runs: int) -> go.Figure:
    x = list(range(1, epochs + 1))
    colours = {"dynamic": "#E69F00", "static": "#0072B2"}
    figure = go.Figure()
    for name, values in shown.items():
        figure.add_trace(go.Scatter(x=x, y=values, mode="lines+markers", name=f"{name}: above",
                                    line=dict(color=colours[name], width=3)))
    for name, values in averaged.items():
        figure.add_trace(go.Scatter(x=x, y=values, mode="lines",
                                    name=f"{name}: average of {runs} runs",
                                    line=dict(color=colours[name], dash="dash")))
    figure.update_layout(
        title="Coverage: share of the tokens the model has had to predict at least once",
        xaxis_title="epoch", yaxis=dict(title="tokens covered", range=[0, 1.02],
                                        tickformat=".0%"),
        height=380, margin=dict(l=20, r=20, t=60, b=20), legend=dict(orientation="h", y=-0.2))
    return figure


def split_figure(config: MaskingConfig, measured: SplitMeasurement) -> go.Figure:
    names = ["chosen (of maskable tokens)", "→ &lt;mask&gt;", "→ random token", "→ kept"]
    configured = [config.mlm_probability, config.mask_fraction, config.random_fraction,
                  config.keep_fraction]
    observed = [measured.chosen_fraction, measured.masked_fraction, measured.random_fraction,
                measured.kept_fraction]
    figure = go.Figure([
        go.Bar(name="configured", x=names, y=configured, marker_color="#BBBBBB",
               text=[f"{v:.1%}" for v in configured], textposition="outside"),
        go.Bar(name=f"measured over {measured.draws:,} draws", x=names, y=observed,
               marker_color="#E69F00", text=[f"{v:.1%}" for v in observed],
               textposition="outside"),
    ])
    figure.update_layout(barmode="group", yaxis=dict(tickformat=".0%", range=[0, 1.1]),
                         title="The split, measured: the last three are shares of the chosen "
                               "tokens", height=380, margin=dict(l=20, r=20, t=60, b=20),
                         legend=dict(orientation="h", y=-0.2))
    return figure
