"""Plotly figure builders for the dashboard, typed and testable without Streamlit.

Each builder takes plain tables (the ``to_frame()`` of a reliability curve, the outputs of
:mod:`reranker.utterances`, :mod:`reranker.contributions`, ...) and returns a
:class:`plotly.graph_objects.Figure` with hover details.
User text (utterances, domain names from uploads) only ever enters figures as data, which
plotly renders as text, never as HTML markup of ours.

Colours come from :mod:`reranker.palettes`: every series of a chart has its own colour-blind-safe
colour, and charts with more categories than the palette holds do without categorical colour
(small multiples, labels on an axis, or a heatmap of the quantity).
"""

from reranker.charts.devices import domain_distribution_figure, probe_figure
from reranker.charts.reliability import MAX_OVERLAID, reliability_figure
from reranker.charts.weights import (
    contributions_figure,
    device_weights_figure,
    weights_comparison_figure,
)

__all__ = [
    "MAX_OVERLAID",
    "contributions_figure",
    "device_weights_figure",
    "domain_distribution_figure",
    "probe_figure",
    "reliability_figure",
    "weights_comparison_figure",
]
