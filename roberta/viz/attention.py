"""Looking at attention: per-head statistics, attention rollout, and plotly figures of both.

Everything takes the (L, nh, T, T) probabilities of `roberta.inference.attention_maps` (rows are
queries, columns are keys; each row sums to 1, or to 0 for a switched-off head) and the readable
tokens. Axes are drawn by position with the tokens as tick labels, because a sentence often
repeats a token and plotly would merge repeated category names into one row.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

BOS_TOKEN, EOS_TOKEN = "<s>", "</s>"
SEQUENTIAL = "Blues"
SUMMARY_GAP = 0.1  # between the head-summary panels, as a fraction of the figure's width


@dataclass
class HeadSummary:
    """One (L, nh) grid per statistic, averaged over the query positions."""

    entropy: torch.Tensor  # bits; log2(T) means "looks everywhere equally"
    to_bos: torch.Tensor  # share of attention given to <s>
    to_eos: torch.Tensor  # share of attention given to </s>
    mean_distance: torch.Tensor  # expected |query - key| in tokens
    active: torch.Tensor  # bool: the head was switched on


def _check(attentions: torch.Tensor) -> torch.Tensor:
    if attentions.dim() != 4 or attentions.shape[-1] != attentions.shape[-2]:
        raise ValueError(f"attentions must be (layers, heads, T, T), got "
                         f"{tuple(attentions.shape)}")
    return attentions.detach().float().cpu()


def head_summary(attentions: torch.Tensor, tokens: list[str]) -> HeadSummary:
    """Entropy, attention to <s> and </s>, and mean attention distance of every head."""
    a = _check(attentions)  # (L, nh, T, T)
    T = a.shape[-1]
    active = a.sum(dim=-1).mean(dim=-1) > 0.5  # switched-off heads have all-zero rows
    entropy = -(a * torch.log2(a.clamp_min(1e-12))).sum(-1).mean(-1)
    position = torch.arange(T, dtype=torch.float32)
    distance = (position[:, None] - position[None, :]).abs()  # (T, T)
    mean_distance = (a * distance).sum(-1).mean(-1)

    def share_to(token: str) -> torch.Tensor:
        columns = [i for i, t in enumerate(tokens) if t == token]
        if not columns:
            return torch.zeros(a.shape[:2])
        return a[..., columns].sum(-1).mean(-1)

    nan = torch.tensor(float("nan"))
    return HeadSummary(
        entropy=torch.where(active, entropy, nan),
        to_bos=torch.where(active, share_to(BOS_TOKEN), nan),
        to_eos=torch.where(active, share_to(EOS_TOKEN), nan),
        mean_distance=torch.where(active, mean_distance, nan),
        active=active,
    )


def attention_rollout(attentions: torch.Tensor) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each output position draws on each
    input token through all layers. Each layer's attention is averaged over its switched-on
    heads, half of every row goes to the residual connection (identity), rows are renormalised,
    and the layers are multiplied from the bottom up. A layer whose heads are all off passes
    its input through unchanged. Returns (T, T), rows summing to 1."""
    a = _check(attentions)
    L, _, T, _ = a.shape
    eye = torch.eye(T)
    rollout = eye.clone()
    for layer in a:  # (nh, T, T), bottom layer first
        on = layer.sum(dim=-1).mean(dim=-1) > 0.5
        mixed = layer[on].mean(dim=0) if on.any() else eye
        mixed = 0.5 * mixed + 0.5 * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed @ rollout
    return rollout


# --- figures -------------------------------------------------------------------------------

def plotly_text(text: str) -> str:
    """Plotly reads text as HTML, so "<s>" would start strike-through: escape the brackets."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _labels(tokens: list[str]) -> list[str]:
    """Tokens as tick labels: spaces made visible so ' the' and 'the' look different."""
    return [plotly_text(t.replace(" ", "␣").replace("\n", "↵") or "∅") for t in tokens]


def _token_axis(tokens: list[str], title: str, tilt: bool) -> dict:
    return dict(title=title, tickmode="array", tickvals=list(range(len(tokens))),
                ticktext=_labels(tokens), tickangle=-45 if tilt and len(tokens) > 8 else 0)


def _matrix_figure(matrix: torch.Tensor, tokens: list[str], title: str,
                   hover_value: str) -> go.Figure:
    labels = _labels(tokens)
    hover = [[f"{labels[q]} → {labels[k]}: {hover_value} {matrix[q, k]:.3f}"
              for k in range(len(tokens))] for q in range(len(tokens))]
    figure = go.Figure(go.Heatmap(z=matrix.tolist(), colorscale=SEQUENTIAL, zmin=0,
                                  text=hover, hoverinfo="text",
                                  colorbar=dict(title=hover_value)))
    size = min(720, 220 + 26 * len(tokens))
    figure.update_layout(
        title=title, height=size, margin=dict(l=90, r=20, t=80, b=20),
        xaxis=_token_axis(tokens, "key: attended to", tilt=True),
        yaxis=dict(**_token_axis(tokens, "query: attending", tilt=False), autorange="reversed"),
    )
    return figure


def head_heatmap(attentions: torch.Tensor, tokens: list[str], layer: int,
                 head: int) -> go.Figure:
    """Attention of one head; `layer` and `head` count from 1, as the UI shows them."""
    a = _check(attentions)
    L, nh = a.shape[:2]
    if not (1 <= layer <= L and 1 <= head <= nh):
        raise ValueError(f"layer must be 1–{L} and head 1–{nh}, got layer {layer}, head {head}")
    matrix = a[layer - 1, head - 1]
    title = f"Layer {layer}, head {head}:<br>where each token (row) looks (columns)"
    if matrix.sum() == 0:
        title += " — this head is switched off"
    return _matrix_figure(matrix, tokens, title, "attention")


def rollout_heatmap(attentions: torch.Tensor, tokens: list[str]) -> go.Figure:
    return _matrix_figure(attention_rollout(attentions), tokens,
                          "Attention rollout: how much each token's final vector<br>draws on "
                          "each input token, through all layers", "share")


ROLE_SHORT = {"previous": "prev", "next": "next", "self": "self", "first": "&lt;s&gt;",
              "last": "&lt;/s&gt;", "punctuation": "punct", "broad": "broad", "mixed": "",
              "off": "off"}


def summary_figure(summary: HeadSummary, seq_len: int,
                   roles: list[list[str]] | None = None) -> go.Figure:
    """Four layers × heads grids side by side; `roles` ([layer][head], head_roles.py's labels)
    written on every cell of the first."""
    panels = [
        (summary.entropy, f"Entropy (bits;<br>uniform = {torch.log2(torch.tensor(seq_len)):.1f})",
         "Viridis", None),
        (summary.to_bos, plotly_text("Attention") + "<br>" + plotly_text("to <s>"), SEQUENTIAL,
         (0, 1)),
        (summary.to_eos, plotly_text("Attention") + "<br>" + plotly_text("to </s>"), SEQUENTIAL,
         (0, 1)),
        (summary.mean_distance, "Mean distance<br>(tokens)", "Viridis", None),
    ]
    L, nh = summary.entropy.shape
    # Each panel's colour scale sits in the gap after it, so the gaps are wide enough for a
    # scale and its numbers, and only the first panel repeats the layer numbers.
    # Two short lines per panel title, so four titles fit side by side on a phone (issue 33).
    figure = make_subplots(rows=1, cols=4, subplot_titles=[p[1] for p in panels],
                           horizontal_spacing=SUMMARY_GAP, shared_yaxes=True)
    figure.update_annotations(font_size=12)
    for column, (grid, _, scale, limits) in enumerate(panels, start=1):
        panel_end = column * (1 - 3 * SUMMARY_GAP) / 4 + (column - 1) * SUMMARY_GAP
        z = [[None if v != v else round(v, 3) for v in row] for row in grid.tolist()]
        hover = [[f"layer {li + 1}, head {hi + 1}: "
                  + ("switched off" if v is None else f"{v:.3f}")
                  + (f" ({roles[li][hi]})" if roles else "") for hi, v in enumerate(row)]
                 for li, row in enumerate(z)]
        labels = ([[ROLE_SHORT.get(r, r) for r in row] for row in roles]
                  if roles and column == 1 else None)
        figure.add_trace(go.Heatmap(
            z=z, x=list(range(1, nh + 1)), y=list(range(1, L + 1)), colorscale=scale,
            zmin=limits[0] if limits else None, zmax=limits[1] if limits else None,
            customdata=hover, hovertemplate="%{customdata}<extra></extra>",
            text=labels, texttemplate="%{text}" if labels else None,
            textfont=dict(size=10, color="white"),
            colorbar=dict(x=panel_end + 0.01, xanchor="left", len=0.9, thickness=10,
                          xpad=0, tickfont=dict(size=11))), row=1, col=column)
        figure.update_xaxes(title_text="head", dtick=1, row=1, col=column)
        figure.update_yaxes(title_text="layer" if column == 1 else None, dtick=1,
                            autorange="reversed", row=1, col=column)
    title = "Every head at a glance<br>(averaged over the query tokens)"
    if roles:
        title = ("Every head at a glance (averaged over the query tokens);<br>on the first "
                 "panel, each head's role on the fixed sentences")
    figure.update_layout(height=max(280, 160 + 30 * L), margin=dict(l=20, r=50, t=100, b=20),
                         title=title)
    return figure
