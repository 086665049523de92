"""Charts per device: a probed sentence's ranking and which domain wins on each device."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reranker.charts._style import NEUTRAL, inert
from reranker.palettes import SEQUENTIAL, series_colors

__all__ = ["domain_distribution_figure", "probe_figure"]


def probe_figure(
    results: Mapping[str, pd.DataFrame],
    *,
    top: int = 5,
    title: str = "",
    x_title: str = "score",
) -> go.Figure:
    """Side-by-side ranked hypotheses per device, scores as horizontal bars.

    ``results`` maps a device to a frame with ``domain, intent, slots, score`` sorted by rank;
    ``title`` (e.g. the probed text) is shown as plain text above the panels; ``x_title``
    names the score (say "calibrated score" only for a loss trained to be calibrated). Each
    domain has its own colour when eight colours suffice; otherwise bars are one colour and the
    labels name the domains.
    """
    devices = list(results)
    fig = make_subplots(
        rows=1,
        cols=max(1, len(devices)),
        shared_yaxes=False,
        subplot_titles=[inert(d) for d in devices] or None,
        horizontal_spacing=0.06,
    )
    shown = [f.head(top) for f in results.values()]
    domains = sorted({str(d) for f in shown for d in f["domain"]})
    colors = series_colors(domains) or dict.fromkeys(domains, NEUTRAL)
    for col, device in enumerate(devices, start=1):
        frame = results[device].head(top).reset_index(drop=True)
        fig.add_trace(_ranking_bars(frame, colors), row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
        fig.update_xaxes(range=[0, 1.9], tickvals=[0, 0.25, 0.5, 0.75, 1], row=1, col=col)
        fig.update_xaxes(title_text=inert(x_title), row=1, col=col)
    fig.update_layout(
        title={"text": inert(title)} if title else None,
        height=140 + 45 * top,
        margin={"l": 20, "r": 20, "t": 80 if title else 40, "b": 40},
    )
    return fig


def _ranking_bars(frame: pd.DataFrame, colors: Mapping[str, str]) -> go.Bar:
    """One device's ranked hypotheses as horizontal bars labelled with domain, intent and score."""
    ranks = [f"#{k + 1}" for k in range(len(frame))]
    intents = [
        str(i)[len(str(d)) + 1 :] if str(i).startswith(f"{d}.") else str(i)
        for d, i in zip(frame["domain"], frame["intent"], strict=True)
    ]
    labels = [
        f"{inert(d)} · {inert(i)}  {s:.2f}"
        for d, i, s in zip(frame["domain"], intents, frame["score"], strict=True)
    ]
    hover = [
        [inert(d), inert(i), inert(s)]
        for d, i, s in zip(frame["domain"], frame["intent"], frame["slots"], strict=True)
    ]
    return go.Bar(
        x=frame["score"],
        y=ranks,
        orientation="h",
        marker={"color": [colors[str(d)] for d in frame["domain"]]},
        customdata=np.array(hover, dtype=object),
        text=labels,
        textposition="outside",
        cliponaxis=False,
        hovertemplate=(
            "%{y} %{customdata[0]} · %{customdata[1]}<br>slots: %{customdata[2]}"
            "<br>score %{x:.3f}<extra></extra>"
        ),
        showlegend=False,
    )


def domain_distribution_figure(distribution: pd.DataFrame) -> go.Figure:
    """Heatmap: per device (column), the share of its utterances each domain (row) wins top-1.

    ``distribution`` has columns ``device, domain, count, share``. Domains are sorted by their
    overall number of wins, and each cell is labelled with its share, so any number of domains
    reads without a colour legend.
    """
    shares = distribution.pivot(index="domain", columns="device", values="share").fillna(0.0)
    counts = distribution.pivot(index="domain", columns="device", values="count").fillna(0)
    order = counts.sum(axis=1).sort_values(ascending=False, kind="stable").index
    shares, counts = shares.loc[order], counts.loc[order]
    z = shares.to_numpy(dtype=np.float64)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[inert(c) for c in shares.columns],
            y=[inert(r) for r in shares.index],
            colorscale=SEQUENTIAL,
            zmin=0.0,
            zmax=float(z.max()) if z.size else 1.0,
            text=np.vectorize(lambda v: f"{v:.0%}" if v > 0 else "")(z) if z.size else None,
            texttemplate="%{text}",
            customdata=counts.to_numpy(dtype=np.float64),
            hovertemplate=(
                "domain %{y}<br>device %{x}<br>share of top-1 %{z:.1%}"
                "<br>utterances %{customdata:,.0f}<extra></extra>"
            ),
            colorbar={"title": "share", "tickformat": ".0%"},
        )
    )
    fig.update_layout(
        height=max(260, 26 * len(shares.index) + 120),
        xaxis={"title": "device", "side": "top"},
        yaxis={"title": "domain", "autorange": "reversed"},
        margin={"l": 60, "r": 20, "t": 60, "b": 20},
    )
    return fig
