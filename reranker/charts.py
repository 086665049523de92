"""Plotly figure builders for the dashboard, typed and testable without Streamlit.

Each builder takes plain tables (the ``to_frame()`` of a reliability curve, the outputs of
:mod:`reranker.utterances`, :mod:`reranker.contributions`, ...) and returns a :class:`plotly.graph_objects.Figure` with hover details.
User text (utterances, domain names from uploads) only ever enters figures as data, which
plotly renders as text, never as HTML markup of ours.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "PALETTE",
    "contributions_figure",
    "device_weights_figure",
    "domain_distribution_figure",
    "probe_figure",
    "reliability_figure",
    "weights_comparison_figure",
]

PALETTE: dict[str, str] = {
    "R0": "#7f7f7f",
    "R1": "#d62728",
    "R2": "#1f77b4",
    "R3": "#2ca02c",
    "R0 + temperature": "#bcbd22",
    "R0 + isotonic": "#17becf",
}
_EXTRA = ["#9467bd", "#8c564b", "#e377c2", "#ff7f0e", "#17becf", "#bcbd22", "#aec7e8", "#ffbb78"]


def _color(name: str, i: int) -> str:
    return PALETTE.get(name, _EXTRA[i % len(_EXTRA)])


def _text(value: object) -> str:
    """User text as inert plotly text (plotly labels accept a small HTML subset)."""
    return html.escape(str(value), quote=False)


def reliability_figure(
    curves: Mapping[str, pd.DataFrame],
    *,
    overlay: bool = True,
    bands: bool = True,
    title: str = "",
    x_title: str = "score (mean per bin)",
) -> go.Figure:
    """Reliability diagram(s) with the diagonal and per-bin counts as a histogram below.

    Parameters
    ----------
    curves : mapping
        Name (``R0``, ``R2``, ``R2 + isotonic``, a device ...) -> a frame with the columns of
        :meth:`reranker.ReliabilityCurve.to_frame` (``bin_low, bin_high, count, mean_score,
        frac_correct, frac_correct_low, frac_correct_high``).
    overlay : bool
        All curves on one pair of axes (True) or one column per curve (False).
    bands : bool
        Draw the bootstrap interval of the fraction correct as a shaded band where present.
    """
    names = list(curves)
    n_cols = 1 if overlay or not names else len(names)
    fig = make_subplots(
        rows=2,
        cols=n_cols,
        shared_xaxes=True,
        row_heights=[0.72, 0.28],
        vertical_spacing=0.06,
        horizontal_spacing=0.04,
        subplot_titles=None if overlay else [_text(n) for n in names],
    )
    for i, name in enumerate(names):
        frame = curves[name]
        col = 1 if overlay else i + 1
        color = _color(name, i)
        label = _text(name)
        nonempty = frame["count"].to_numpy() > 0
        f = frame.loc[nonempty]
        has_band = bands and f["frac_correct_low"].notna().any()
        if has_band:
            fig.add_trace(
                go.Scatter(
                    x=np.r_[f["mean_score"], f["mean_score"][::-1]],
                    y=np.r_[f["frac_correct_high"], f["frac_correct_low"][::-1]],
                    fill="toself",
                    fillcolor=color,
                    opacity=0.18,
                    line={"width": 0},
                    hoverinfo="skip",
                    name=f"{label} interval",
                    legendgroup=label,
                    showlegend=False,
                ),
                row=1,
                col=col,
            )
        custom = np.column_stack(
            [f["bin_low"], f["bin_high"], f["count"], f["frac_correct_low"], f["frac_correct_high"]]
        )
        fig.add_trace(
            go.Scatter(
                x=f["mean_score"],
                y=f["frac_correct"],
                mode="lines+markers",
                name=label,
                legendgroup=label,
                line={"color": color},
                customdata=custom,
                hovertemplate=(
                    f"<b>{label}</b><br>bin [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}})"
                    "<br>mean score %{x:.3f}<br>fraction correct %{y:.3f}"
                    + (
                        "<br>interval [%{customdata[3]:.3f}, %{customdata[4]:.3f}]"
                        if has_band
                        else ""
                    )
                    + "<br>count %{customdata[2]:,.0f}<extra></extra>"
                ),
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Bar(
                x=(frame["bin_low"] + frame["bin_high"]) / 2,
                y=frame["count"],
                width=(frame["bin_high"] - frame["bin_low"])
                * (
                    0.9
                    if overlay and len(names) == 1
                    else 0.8 / max(1, len(names) if overlay else 1)
                ),
                marker={"color": color},
                opacity=0.75,
                name=f"{label} count",
                legendgroup=label,
                showlegend=False,
                customdata=np.column_stack([frame["bin_low"], frame["bin_high"]]),
                hovertemplate=(
                    f"<b>{label}</b><br>bin [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}})"
                    "<br>count %{y:,.0f}<extra></extra>"
                ),
            ),
            row=2,
            col=col,
        )
    for col in range(1, n_cols + 1):
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"color": "black", "dash": "dash", "width": 1},
                name="perfect calibration",
                showlegend=col == 1,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(range=[0, 1], row=1, col=col)
        fig.update_yaxes(range=[0, 1], row=1, col=col)
        fig.update_xaxes(range=[0, 1], title_text=x_title, row=2, col=col)
    fig.update_yaxes(title_text="fraction correct", row=1, col=1)
    for col in range(1, n_cols + 1):
        fig.update_yaxes(type="log", dtick=1, row=2, col=col)
    fig.update_yaxes(title_text="count (log)", row=2, col=1)
    fig.update_layout(
        title=title or None,
        barmode="group" if overlay else "overlay",
        height=560,
        margin={"l": 60, "r": 20, "t": 50 if title or not overlay else 20, "b": 50},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hovermode="closest",
    )
    return fig


def contributions_figure(contributions: pd.DataFrame, labels: Mapping[int, str]) -> go.Figure:
    """Horizontal bars of each feature's contribution to each hypothesis's logit.

    ``contributions`` is the long frame of :func:`reranker.contributions.hypothesis_contributions`;
    ``labels`` maps its ``hypothesis`` positions to display labels.
    """
    fig = go.Figure()
    features = list(dict.fromkeys(contributions["feature"]))
    for i, feature in enumerate(features):
        part = contributions[contributions["feature"] == feature]
        fig.add_trace(
            go.Bar(
                y=[_text(labels.get(int(h), str(h))) for h in part["hypothesis"]],
                x=part["contribution"],
                orientation="h",
                name=_text(feature),
                marker={"color": _EXTRA[i % len(_EXTRA)]},
                customdata=np.column_stack([part["value"], part["weight"]]),
                hovertemplate=(
                    f"<b>{_text(feature)}</b><br>value %{{customdata[0]:.4g}}"
                    "<br>weight %{customdata[1]:.4g}<br>contribution %{x:.4g}<extra></extra>"
                ),
            )
        )
    totals = contributions.groupby("hypothesis", sort=False)["contribution"].sum()
    fig.add_trace(
        go.Scatter(
            x=totals.to_numpy(),
            y=[_text(labels.get(int(h), str(h))) for h in totals.index],
            mode="markers",
            marker={"symbol": "diamond", "size": 11, "color": "black"},
            name="logit z (sum)",
            hovertemplate="logit z = %{x:.4g}<extra></extra>",
        )
    )
    fig.add_vline(x=0, line={"color": "gray", "width": 1})
    fig.update_layout(
        barmode="relative",
        height=max(260, 70 * max(1, len(labels)) + 120),
        xaxis_title="contribution to the logit z = w·φ + b",
        yaxis={
            "autorange": "reversed",
            "categoryorder": "array",
            "categoryarray": [_text(v) for v in labels.values()],
        },
        margin={"l": 20, "r": 20, "t": 30, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def probe_figure(
    results: Mapping[str, pd.DataFrame], *, top: int = 5, title: str = ""
) -> go.Figure:
    """Side-by-side ranked hypotheses per device, calibrated scores as horizontal bars.

    ``results`` maps a device to a frame with ``domain, intent, slots, score`` sorted by rank;
    ``title`` (e.g. the probed text) is shown as plain text above the panels.
    """
    devices = list(results)
    fig = make_subplots(
        rows=1,
        cols=max(1, len(devices)),
        shared_yaxes=False,
        subplot_titles=[_text(d) for d in devices] or None,
        horizontal_spacing=0.06,
    )
    domains = sorted({str(d) for f in results.values() for d in f["domain"]})
    colors = {d: _EXTRA[i % len(_EXTRA)] for i, d in enumerate(domains)}
    for col, device in enumerate(devices, start=1):
        frame = results[device].head(top).reset_index(drop=True)
        ranks = [f"#{k + 1}" for k in range(len(frame))]
        intents = [
            str(i)[len(str(d)) + 1 :] if str(i).startswith(f"{d}.") else str(i)
            for d, i in zip(frame["domain"], frame["intent"], strict=True)
        ]
        labels = [
            f"{_text(d)} · {_text(i)}  {s:.2f}"
            for d, i, s in zip(frame["domain"], intents, frame["score"], strict=True)
        ]
        fig.add_trace(
            go.Bar(
                x=frame["score"],
                y=ranks,
                orientation="h",
                marker={"color": [colors[str(d)] for d in frame["domain"]]},
                customdata=np.array(
                    [
                        [_text(d), _text(i), _text(s)]
                        for d, i, s in zip(
                            frame["domain"], frame["intent"], frame["slots"], strict=True
                        )
                    ],
                    dtype=object,
                ),
                text=labels,
                textposition="outside",
                cliponaxis=False,
                hovertemplate=(
                    "%{y} %{customdata[0]} · %{customdata[1]}<br>slots: %{customdata[2]}"
                    "<br>score %{x:.3f}<extra></extra>"
                ),
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)
        fig.update_xaxes(range=[0, 1.9], tickvals=[0, 0.25, 0.5, 0.75, 1], row=1, col=col)
        fig.update_xaxes(title_text="calibrated score", row=1, col=col)
    fig.update_layout(
        title={"text": _text(title)} if title else None,
        height=140 + 45 * top,
        margin={"l": 20, "r": 20, "t": 80 if title else 40, "b": 40},
    )
    return fig


def domain_distribution_figure(distribution: pd.DataFrame) -> go.Figure:
    """Stacked bars: per device, the share of utterances each domain wins top-1.

    ``distribution`` has columns ``device, domain, count, share``.
    """
    fig = go.Figure()
    for i, (domain, part) in enumerate(distribution.groupby("domain", sort=True)):
        fig.add_trace(
            go.Bar(
                x=[_text(d) for d in part["device"]],
                y=part["share"],
                name=_text(domain),
                marker={"color": _EXTRA[i % len(_EXTRA)]},
                customdata=part[["count"]].to_numpy(),
                hovertemplate=(
                    f"<b>{_text(domain)}</b><br>device %{{x}}<br>share %{{y:.1%}}"
                    "<br>utterances %{customdata[0]:,}<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        barmode="stack",
        yaxis={"title": "share of top-1 hypotheses", "tickformat": ".0%"},
        xaxis_title="device",
        height=420,
        margin={"l": 60, "r": 20, "t": 30, "b": 40},
    )
    return fig


def device_weights_figure(weights: pd.DataFrame) -> go.Figure:
    """Heatmap of the learned device weights: domains by devices (``domain, device, weight``)."""
    table = weights.pivot(index="domain", columns="device", values="weight").sort_index()
    z = table.to_numpy(dtype=np.float64)
    bound = float(np.nanmax(np.abs(z))) if z.size and np.isfinite(z).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[_text(c) for c in table.columns],
            y=[_text(r) for r in table.index],
            colorscale="RdBu",
            zmid=0.0,
            zmin=-bound,
            zmax=bound,
            text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:+.2f}")(z) if z.size else None,
            texttemplate="%{text}",
            hovertemplate="domain %{y}<br>device %{x}<br>weight %{z:+.3f}<extra></extra>",
            colorbar={"title": "weight"},
        )
    )
    fig.update_layout(
        height=max(260, 40 * len(table.index) + 120),
        xaxis_title="device",
        yaxis={"title": "domain", "autorange": "reversed"},
        margin={"l": 60, "r": 20, "t": 30, "b": 40},
    )
    return fig


def weights_comparison_figure(
    features: Sequence[str], versions: Mapping[str, Sequence[float]]
) -> go.Figure:
    """Grouped bars of the weights of two (or more) versions of a domain, feature by feature."""
    fig = go.Figure()
    for i, (name, values) in enumerate(versions.items()):
        fig.add_trace(
            go.Bar(
                x=[_text(f) for f in features],
                y=list(values),
                name=_text(name),
                marker={"color": _EXTRA[i % len(_EXTRA)]},
                hovertemplate=f"<b>{_text(name)}</b><br>%{{x}}<br>weight %{{y:.4g}}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis_title="weight",
        height=380,
        margin={"l": 60, "r": 20, "t": 30, "b": 80},
    )
    return fig
