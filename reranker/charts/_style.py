"""Styling shared by the chart builders: inert user text, the legend, the neutral colour."""

from __future__ import annotations

import html

import plotly.graph_objects as go

NEUTRAL = "#0072B2"
"""The one colour of charts whose categories are named by labels rather than by colour."""


def inert(value: object) -> str:
    """User text as inert plotly text (plotly labels accept a small HTML subset)."""
    return html.escape(str(value), quote=False)


def legend_on_top(fig: go.Figure, top_margin: int) -> None:
    """A horizontal legend at the very top of the figure, above any panel title."""
    fig.update_layout(
        legend={
            "orientation": "h",
            "yref": "container",
            "y": 1.0,
            "yanchor": "top",
            "x": 0,
            "xanchor": "left",
        },
        margin={"t": top_margin},
    )
