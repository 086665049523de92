"""Charts of re-ranker weights: feature contributions, device weights, versions compared."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reranker.charts._style import NEUTRAL, inert, legend_on_top
from reranker.palettes import NEGATIVE, POSITIVE, REFERENCE, series_colors

__all__ = ["contributions_figure", "device_weights_figure", "weights_comparison_figure"]


def contributions_figure(contributions: pd.DataFrame, labels: Mapping[int, str]) -> go.Figure:
    """Each feature's contribution to each hypothesis's logit: one panel per hypothesis.

    ``contributions`` is the long frame of :func:`reranker.contributions.hypothesis_contributions`;
    ``labels`` maps its ``hypothesis`` positions to display labels (ranked order). Features are
    on a shared vertical axis, so one term (``device=fire_tv``) reads across the panels (the
    panels of a row share their horizontal scale, at most three per row, best ranks first); a bar
    is blue when it raises the score and vermillion when it lowers it, and the last bar of each
    panel is the logit ``z`` itself. Features that contribute nothing to any hypothesis shown
    (the one-hot of another device) are left out.
    """
    frame = contributions.assign(hypothesis=contributions["hypothesis"].astype(int))
    hyps = [h for h in labels if h in set(frame["hypothesis"])]
    hyps += [h for h in dict.fromkeys(frame["hypothesis"]) if h not in hyps]
    used = frame.groupby("feature", sort=False)["contribution"].apply(lambda c: (c != 0).any())
    features = [f for f in dict.fromkeys(frame["feature"]) if used.get(f, False) or f == "bias"]
    axis_labels = [inert(f) for f in features] + [_TOTAL_LABEL]
    totals = frame.groupby("hypothesis")["contribution"].sum()
    n_cols = max(1, min(len(hyps), 3))
    panel_rows = max(1, math.ceil(len(hyps) / n_cols))
    layout = _panel_grid(panel_rows, n_cols, len(hyps))
    for annotation, h in zip(layout["annotations"], hyps, strict=True):
        annotation["text"] = inert(labels.get(h, str(h)))
    traces = []
    for i, h in enumerate(hyps):
        part = frame[frame["hypothesis"] == h].set_index("feature").reindex(features)
        axes = {"xaxis": f"x{_suffix(i)}", "yaxis": f"y{_suffix(i)}"}
        panel = _contribution_panel(part, float(totals[h]), axis_labels, first=i == 0)
        traces += [trace | axes for trace in panel]
    for i in range(panel_rows * n_cols):
        row = i // n_cols
        in_row = hyps[row * n_cols : (row + 1) * n_cols]
        bound = 1.1 * max(
            float(frame.loc[frame["hypothesis"].isin(in_row), "contribution"].abs().max()),
            float(totals[in_row].abs().max()) if in_row else 0.0,
            1e-9,
        )
        layout[f"yaxis{_suffix(i)}"].update(
            categoryorder="array", categoryarray=axis_labels, autorange="reversed"
        )
        x = layout[f"xaxis{_suffix(i)}"]
        # the zero line of every panel is its axis zero line (not one shape per panel)
        x.update(range=[-bound, bound], zeroline=True, zerolinecolor=REFERENCE, zerolinewidth=1)
        if row == panel_rows - 1:
            x["title"] = {"text": "contribution to the logit z = w·φ + b"}
    layout.update(
        barmode="overlay",
        height=90 + panel_rows * (24 * len(axis_labels) + 70),
        margin={"l": 20, "r": 20, "b": 50},
    )
    fig = go.Figure({"data": traces, "layout": layout})  # validated once, as a whole
    legend_on_top(fig, 70)
    return fig


def _suffix(panel: int) -> str:
    """Axis name suffix of a panel (row-major, as plotly numbers subplots)."""
    return "" if panel == 0 else str(panel + 1)


def _panel_grid(panel_rows: int, n_cols: int, n_titles: int) -> dict[str, Any]:
    """The layout of a grid of panels, as ``make_subplots`` lays it out (the horizontal axes of
    a row matched, the vertical axes of a row matched and labelled once, a title annotation
    above each of the first ``n_titles`` panels), written directly: building it through
    ``make_subplots`` takes longer than the rest of the page."""
    h_space = 0.03
    v_space = 0.12 / max(1, panel_rows - 1) if panel_rows > 1 else 0.0
    width = (1.0 - h_space * (n_cols - 1)) / n_cols
    height = (1.0 - v_space * (panel_rows - 1)) / panel_rows
    layout: dict[str, Any] = {"annotations": []}
    for i in range(panel_rows * n_cols):
        row, col = divmod(i, n_cols)
        x0, top = col * (width + h_space), 1.0 - row * (height + v_space)
        x: dict[str, Any] = {"anchor": f"y{_suffix(i)}", "domain": [x0, min(1.0, x0 + width)]}
        y: dict[str, Any] = {"anchor": f"x{_suffix(i)}", "domain": [max(0.0, top - height), top]}
        if col > 0:
            first = _suffix(row * n_cols)
            x["matches"], y["matches"], y["showticklabels"] = f"x{first}", f"y{first}", False
        layout[f"xaxis{_suffix(i)}"], layout[f"yaxis{_suffix(i)}"] = x, y
        if i < n_titles:
            layout["annotations"].append(
                {"font": {"size": 16}, "showarrow": False, "text": "", "x": x0 + width / 2}
                | {"xanchor": "center", "xref": "paper", "y": top, "yanchor": "bottom"}
                | {"yref": "paper"}
            )
    return layout


_TOTAL_LABEL = "logit z (sum)"


def _contribution_panel(
    part: pd.DataFrame, total: float, axis_labels: Sequence[str], *, first: bool
) -> list[dict[str, Any]]:
    """One hypothesis's panel: raising and lowering bars and the logit bar (its zero line is
    the axis zero line)."""
    out = []
    for sign, color, name in ((1, POSITIVE, "raises the score"), (-1, NEGATIVE, "lowers it")):
        keep = (part["contribution"] * sign > 0).to_numpy()
        out.append(
            {
                "type": "bar",
                "x": part["contribution"][keep].to_numpy(),
                "y": [axis_labels[int(k)] for k in np.flatnonzero(keep)],
                "orientation": "h",
                "marker": {"color": color},
                "name": name,
                "legendgroup": name,
                "showlegend": first,
                "customdata": np.column_stack([part["value"][keep], part["weight"][keep]]),
                "hovertemplate": (
                    "<b>%{y}</b><br>value %{customdata[0]:.4g}<br>weight %{customdata[1]:.4g}"
                    "<br>contribution %{x:+.4g}<extra></extra>"
                ),
            }
        )
    out.append(
        {
            "type": "bar",
            "x": [total],
            "y": [_TOTAL_LABEL],
            "orientation": "h",
            "marker": {"color": "#000000"},
            "name": _TOTAL_LABEL,
            "legendgroup": _TOTAL_LABEL,
            "showlegend": first,
            "hovertemplate": "logit z = %{x:+.4g}<extra></extra>",
        }
    )
    return out


def device_weights_figure(weights: pd.DataFrame) -> go.Figure:
    """Heatmap of the learned device weights: domains by devices (``domain, device, weight``)."""
    table = weights.pivot(index="domain", columns="device", values="weight").sort_index()
    z = table.to_numpy(dtype=np.float64)
    bound = float(np.nanmax(np.abs(z))) if z.size and np.isfinite(z).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[inert(c) for c in table.columns],
            y=[inert(r) for r in table.index],
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
        height=max(260, 26 * len(table.index) + 120),
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
    colors = series_colors(versions) or {}
    for name, values in versions.items():
        fig.add_trace(
            go.Bar(
                x=[inert(f) for f in features],
                y=list(values),
                name=inert(name),
                marker={"color": colors.get(name, NEUTRAL)},
                hovertemplate=f"<b>{inert(name)}</b><br>%{{x}}<br>weight %{{y:.4g}}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis_title="weight",
        height=380,
        margin={"l": 60, "r": 20, "b": 80},
    )
    legend_on_top(fig, 40)
    return fig
