"""Figures of roberta/lens.py: the logit lens as a layers × candidates heatmap, and the neuron
view as the computation of one head's weights, step by step."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..lens import LensResult, NeuronView
from .attention import SEQUENTIAL, _labels, plotly_text

DIVERGING = "RdBu"


def layer_names(layers: int) -> list[str]:
    return ["embeddings", *(f"layer {i}" for i in range(1, layers)), f"layer {layers} (output)"]


def lens_figure(lens: LensResult) -> go.Figure:
    """Rows: the embeddings, then each layer (the model's own answer last); columns: the top-k
    there; colour and text: probability. The final answer's cells are marked ★."""
    names = layer_names(len(lens.layers) - 1)
    k = len(lens.layers[0].tokens)
    z = [g.probabilities for g in lens.layers]
    text = [[("★ " if t == lens.answer else "") + _labels([t])[0] + f"<br>{p:.0%}"
             for t, p in zip(g.tokens, g.probabilities, strict=True)] for g in lens.layers]
    figure = go.Figure(go.Heatmap(
        z=z, x=[f"guess {i}" for i in range(1, k + 1)], y=names, colorscale=SEQUENTIAL,
        zmin=0, zmax=max(max(row) for row in z) or 1, text=text, texttemplate="%{text}",
        hovertemplate="%{y}, %{x}: %{text}<extra></extra>",
        colorbar=dict(title="probability", tickformat=".0%")))
    figure.update_layout(
        title=plotly_text(f"What each layer would put at <mask> (★ = the model's answer, "
                          f"“{lens.answer.strip()}”)"),
        height=140 + 56 * len(lens.layers), margin=dict(l=10, r=10, t=60, b=10),
        yaxis=dict(autorange="reversed"), font=dict(size=13))
    return figure


def neuron_figure(view: NeuronView) -> go.Figure:
    """q and every key per dimension; q ⊙ k; the sum q·k scaled by 1/√hs; the softmax."""
    keys = _labels(view.tokens)
    query = keys[view.query_index]
    hs = view.query.numel()
    dims = list(range(1, hs + 1))
    reach = float(max(view.keys.abs().max(), view.query.abs().max())) or 1.0
    product_reach = float(view.products.abs().max()) or 1.0
    figure = make_subplots(
        rows=2, cols=4, row_heights=[0.12, 0.88], shared_yaxes=False, horizontal_spacing=0.06,
        vertical_spacing=0.07, column_widths=[0.32, 0.32, 0.18, 0.18],
        specs=[[{}, None, None, None], [{}, {}, {}, {}]],
        subplot_titles=[f"q of {query}", "k of each key", "q ⊙ k",
                        f"q·k × 1/√{hs}", "softmax: the weights"])
    figure.add_trace(go.Heatmap(z=[view.query.tolist()], x=dims, y=[query], colorscale=DIVERGING,
                                zmid=0, zmin=-reach, zmax=reach, showscale=False,
                                hovertemplate="q, dimension %{x}: %{z:.3f}<extra></extra>"),
                     row=1, col=1)
    rows = list(range(len(keys)))
    figure.add_trace(go.Heatmap(z=view.keys.tolist(), x=dims, y=rows, colorscale=DIVERGING,
                                zmid=0, zmin=-reach, zmax=reach, showscale=False,
                                hovertemplate="k of token %{y}, dimension %{x}: %{z:.3f}"
                                              "<extra></extra>"), row=2, col=1)
    figure.add_trace(go.Heatmap(z=view.products.tolist(), x=dims, y=rows, colorscale=DIVERGING,
                                zmid=0, zmin=-product_reach, zmax=product_reach,
                                showscale=False,
                                hovertemplate="q ⊙ k of token %{y}, dimension %{x}: "
                                              "%{z:.3f}<extra></extra>"), row=2, col=2)
    scaled = (view.scores * view.scale).tolist()
    figure.add_trace(go.Bar(x=scaled, y=rows, orientation="h", marker_color="#56B4E9",
                            customdata=keys, hovertemplate="%{customdata}: %{x:.3f}"
                                                           "<extra></extra>"), row=2, col=3)
    figure.add_trace(go.Bar(x=view.weights.tolist(), y=rows, orientation="h",
                            marker_color="#E69F00", customdata=keys,
                            hovertemplate="%{customdata}: %{x:.1%}<extra></extra>"),
                     row=2, col=4)
    for col in range(1, 5):
        figure.update_yaxes(tickmode="array", tickvals=rows, ticktext=keys if col == 1 else None,
                            showticklabels=col == 1, autorange="reversed", row=2, col=col)
    figure.update_xaxes(showticklabels=False, row=1, col=1)
    figure.update_xaxes(title_text="dimension", row=2, col=1)
    figure.update_xaxes(title_text="dimension", row=2, col=2)
    figure.update_xaxes(tickformat=".0%", range=[0, 1], row=2, col=4)
    figure.update_layout(
        title=f"Layer {view.layer}, head {view.head}: how {query} weighs every key",
        height=min(1400, 220 + 22 * len(keys)), showlegend=False,
        margin=dict(l=90, r=20, t=90, b=30))
    return figure
