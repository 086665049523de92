"""Reliability diagrams: curves against the diagonal, with per-bin counts below."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from numpy.typing import NDArray
from plotly.subplots import make_subplots

from reranker.charts._style import NEUTRAL, inert, legend_on_top
from reranker.palettes import REFERENCE, series_colors

__all__ = ["MAX_OVERLAID", "reliability_figure"]

MAX_OVERLAID = 8
"""More curves than this are drawn as small multiples (one panel each) even when overlaid."""
_PANELS_PER_ROW = 4


def _grid(n_panels: int) -> tuple[int, int]:
    """``(panel rows, columns)``: at most four panels per row, rows filled evenly."""
    if n_panels <= _PANELS_PER_ROW:
        return 1, max(1, n_panels)
    rows = math.ceil(n_panels / _PANELS_PER_ROW)
    return rows, math.ceil(n_panels / rows)


def _varying_widths(frames: Sequence[pd.DataFrame]) -> bool:
    """Whether any curve has bins of different widths (equal-mass bins)."""
    for f in frames:
        width = (f["bin_high"] - f["bin_low"]).to_numpy(dtype=np.float64)
        if width.size and width.max() > width.min() * 1.01:
            return True
    return False


def _heights(frame: pd.DataFrame, density: bool) -> NDArray[np.float64]:
    """Bar heights: the count, or with bins of varying width the count per 0.1 of score, so the
    area of a bar (not its height) is its count, as in any histogram of unequal bins."""
    count = frame["count"].to_numpy(dtype=np.float64)
    if not density:
        return count
    width = (frame["bin_high"] - frame["bin_low"]).to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(width > 0, count * 0.1 / width, 0.0)


def _count_axis(frames: Sequence[pd.DataFrame], density: bool) -> dict[str, object]:
    """One count axis for every panel: log when counts span more than a factor of 20.

    Log axes get explicit ticks (powers of ten, plus 2 and 5 times them when the range spans
    less than two decades), so every panel is labelled.
    """
    name = "count per 0.1" if density else "count"
    values = np.concatenate([np.zeros(0), *(_heights(f, density) for f in frames)])
    values = values[values > 0]
    if values.size == 0:
        return {"type": "linear", "title_text": name, "rangemode": "tozero"}
    low, high = float(values.min()), float(values.max())
    if high / low <= 20:
        return {"type": "linear", "title_text": name, "range": [0, high * 1.1]}
    lo_exp, hi_exp = math.floor(math.log10(low)), math.ceil(math.log10(high))
    mantissas = (1,) if hi_exp - lo_exp > 2 else (1, 2, 5)
    ticks = [m * 10.0**k for k in range(lo_exp, hi_exp + 1) for m in mantissas]
    ticks = [t for t in ticks if low / 2 <= t <= high * 1.6]
    return {
        "type": "log",
        "title_text": f"{name} (log)",
        "range": [math.log10(low / 2), math.log10(high * 1.6)],
        "tickvals": ticks,
        "tickformat": "~s",
    }


def _same_bins(frames: Sequence[pd.DataFrame]) -> bool:
    first = frames[0]
    return all(
        len(f) == len(first)
        and np.allclose(f["bin_low"], first["bin_low"])
        and np.allclose(f["bin_high"], first["bin_high"])
        for f in frames[1:]
    )


def _curve_traces(
    name: str, frame: pd.DataFrame, color: str, *, bands: bool, legend: bool
) -> list[go.Scatter]:
    label = inert(name)
    f = frame.loc[frame["count"].to_numpy() > 0]
    has_band = bands and bool(f["frac_correct_low"].notna().any())
    traces = []
    if has_band:
        traces.append(
            go.Scatter(
                x=np.r_[f["mean_score"], f["mean_score"][::-1]],
                y=np.r_[f["frac_correct_high"], f["frac_correct_low"][::-1]],
                fill="toself",
                fillcolor=color,
                opacity=0.18,
                line={"width": 0, "color": color},
                hoverinfo="skip",
                name=f"{label} interval",
                legendgroup=label,
                showlegend=False,
            )
        )
    custom = np.column_stack(
        [f["bin_low"], f["bin_high"], f["count"], f["frac_correct_low"], f["frac_correct_high"]]
    )
    interval = "<br>interval [%{customdata[3]:.3f}, %{customdata[4]:.3f}]" if has_band else ""
    traces.append(
        go.Scatter(
            x=f["mean_score"],
            y=f["frac_correct"],
            mode="lines+markers",
            name=label,
            legendgroup=label,
            showlegend=legend,
            line={"color": color},
            marker={"color": color},
            customdata=custom,
            hovertemplate=(
                f"<b>{label}</b><br>bin [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}})"
                "<br>mean score %{x:.3f}<br>fraction correct %{y:.3f}"
                + interval
                + "<br>count %{customdata[2]:,.0f}<extra></extra>"
            ),
        )
    )
    return traces


def _count_trace(
    name: str,
    frame: pd.DataFrame,
    color: str,
    *,
    slot: int,
    n_slots: int,
    steps: bool,
    density: bool,
) -> go.Bar | go.Scatter:
    """Per-bin counts of one curve: a bar per bin (``slot`` of ``n_slots`` side by side within
    the bin, never overlapping the next bin), or a step outline when curves have other bins."""
    label = inert(name)
    low = frame["bin_low"].to_numpy(dtype=np.float64)
    high = frame["bin_high"].to_numpy(dtype=np.float64)
    height = _heights(frame, density)
    custom = np.column_stack([low, high, frame["count"].to_numpy(dtype=np.float64)])
    hover = (
        f"<b>{label}</b><br>bin [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}})"
        "<br>count %{customdata[2]:,.0f}<extra></extra>"
    )
    common = {"name": f"{label} count", "legendgroup": label, "showlegend": False}
    if steps:
        y = np.where(height > 0, height, np.nan)
        return go.Scatter(
            x=np.r_[low, high[-1:]],
            y=np.r_[y, y[-1:]],
            mode="lines",
            line={"color": color, "shape": "hv", "width": 2},
            customdata=np.r_[custom, custom[-1:]],
            hovertemplate=hover,
            **common,
        )
    width = (high - low) * (0.92 if n_slots > 1 else 1.0) / n_slots
    return go.Bar(
        x=low + (high - low) * (0.04 if n_slots > 1 else 0.0) + width * (slot + 0.5),
        y=height,
        width=width,
        marker={"color": color, "line": {"color": "white", "width": 0.5}},
        opacity=0.75,
        customdata=custom,
        hovertemplate=hover,
        **common,
    )


def reliability_figure(
    curves: Mapping[str, pd.DataFrame],
    *,
    overlay: bool = True,
    bands: bool = True,
    title: str = "",
    x_title: str = "score (mean per bin)",
) -> go.Figure:
    """Reliability diagram(s) with the diagonal and per-bin counts below.

    Parameters
    ----------
    curves : mapping
        Name (``R0``, ``R2``, ``R2 + isotonic``, a device ...) -> a frame with the columns of
        :meth:`reranker.ReliabilityCurve.to_frame` (``bin_low, bin_high, count, mean_score,
        frac_correct, frac_correct_low, frac_correct_high``).
    overlay : bool
        All curves on one pair of axes (True) or one panel per curve (False, at most four
        panels per row). More than :data:`MAX_OVERLAID` curves are always drawn one per panel.
    bands : bool
        Draw the bootstrap interval of the fraction correct as a shaded band where present.

    Notes
    -----
    Every curve has its own colour (:func:`reranker.palettes.series_colors`). All count panels
    share one axis. Overlaid curves with the same bins get side-by-side bars inside each bin;
    with different bins (equal-mass bins of different scores) their counts are step outlines.
    With bins of varying width the panel shows the count per 0.1 of score, so that a bar's
    area is its count (equal-mass bins have equal counts by construction; their widths are
    what differs); hovering shows the count itself.
    """
    names = list(curves)
    colors = series_colors(names)
    overlay = overlay and colors is not None
    panels = 1 if overlay or not names else len(names)
    panel_rows, n_cols = _grid(panels)
    fig = make_subplots(
        rows=2 * panel_rows,
        cols=n_cols,
        row_heights=[0.72, 0.28] * panel_rows,
        vertical_spacing=0.06 if panel_rows == 1 else 0.1 / panel_rows,
        horizontal_spacing=0.05,
        subplot_titles=None if overlay else _panel_titles(names, panel_rows, n_cols),
    )
    frames = [curves[n] for n in names]
    density = _varying_widths(frames)
    _add_curves(fig, curves, colors, overlay=overlay, n_cols=n_cols, bands=bands, density=density)
    _style_reliability_axes(fig, panels, panel_rows, n_cols, _count_axis(frames, density), x_title)
    fig.update_layout(
        title=title or None,
        barmode="overlay",
        height=560 if panel_rows == 1 else 120 + 430 * panel_rows,
        margin={"l": 60, "r": 20, "b": 50},
        hovermode="closest",
    )
    legend_on_top(fig, 60 if overlay and not title else 90)
    return fig


def _add_curves(
    fig: go.Figure,
    curves: Mapping[str, pd.DataFrame],
    colors: Mapping[str, str] | None,
    *,
    overlay: bool,
    n_cols: int,
    bands: bool,
    density: bool,
) -> None:
    """Each curve's traces in its panel (all in the first when overlaid), counts below."""
    names = list(curves)
    steps = overlay and len(names) > 1 and not _same_bins([curves[n] for n in names])
    for i, name in enumerate(names):
        color = colors[name] if colors is not None else NEUTRAL
        row, col = (1, 1) if overlay else (2 * (i // n_cols) + 1, i % n_cols + 1)
        for trace in _curve_traces(
            name, curves[name], color, bands=bands, legend=colors is not None
        ):
            fig.add_trace(trace, row=row, col=col)
        slot, n_slots = (i, len(names)) if overlay else (0, 1)
        count = _count_trace(
            name, curves[name], color, slot=slot, n_slots=n_slots, steps=steps, density=density
        )
        fig.add_trace(count, row=row + 1, col=col)


def _panel_titles(names: Sequence[str], panel_rows: int, n_cols: int) -> list[str]:
    titles = [""] * (2 * panel_rows * n_cols)
    for i, name in enumerate(names):
        titles[2 * (i // n_cols) * n_cols + i % n_cols] = inert(name)
    return titles


def _style_reliability_axes(
    fig: go.Figure,
    panels: int,
    panel_rows: int,
    n_cols: int,
    count_axis: dict[str, object],
    x_title: str,
) -> None:
    for p in range(panel_rows * n_cols):
        row, col = 2 * (p // n_cols) + 1, p % n_cols + 1
        if p >= panels:  # an empty cell of the last row
            for r in (row, row + 1):
                fig.update_xaxes(visible=False, row=r, col=col)
                fig.update_yaxes(visible=False, row=r, col=col)
            continue
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"color": REFERENCE, "dash": "dash", "width": 1},
                name="perfect calibration",
                legendgroup="perfect calibration",
                showlegend=p == 0,
                hoverinfo="skip",
            ),
            row=row,
            col=col,
        )
        first = col == 1
        last_row = row == 2 * panel_rows - 1 or p + n_cols >= panels
        fig.update_xaxes(range=[0, 1], showticklabels=False, row=row, col=col)
        fig.update_yaxes(
            range=[0, 1.02],
            showticklabels=first,
            title_text="fraction correct" if first else None,
            row=row,
            col=col,
        )
        fig.update_xaxes(
            range=[0, 1],
            showticklabels=last_row,
            title_text=x_title if last_row else None,
            row=row + 1,
            col=col,
        )
        axis = dict(count_axis)
        if not first:
            axis["title_text"] = None
            axis["showticklabels"] = False
        fig.update_yaxes(row=row + 1, col=col, **axis)
