"""Figures and views of what a model does: plotly charts, attention analysis, bertviz offline."""
