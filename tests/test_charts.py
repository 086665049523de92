"""Plotly figure builders: structure, hover details, and user text kept inert."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reranker import charts
from reranker.calibration import reliability_curve


def _curve(seed: int, n_boot: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = rng.random(500)
    y = (rng.random(500) < s).astype(float)
    return reliability_curve(y, s, groups=np.arange(500) // 2, n_boot=n_boot).to_frame()


def test_reliability_figure_overlay_has_curves_counts_and_diagonal() -> None:
    fig = charts.reliability_figure({"R0": _curve(0, 20), "R2": _curve(1, 20)})
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names.count("perfect calibration") == 1
    lines = [t for t in fig.data if t.name in ("R0", "R2")]
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    bands = [t for t in fig.data if getattr(t, "fill", None) == "toself"]
    assert len(lines) == 2 and len(bars) == 2 and len(bands) == 2
    assert all("fraction correct" in t.hovertemplate and "count" in t.hovertemplate for t in lines)
    assert sum(bars[0].y) == 500
    diagonal = next(t for t in fig.data if t.name == "perfect calibration")
    assert list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]


def test_reliability_figure_side_by_side_uses_one_column_per_curve() -> None:
    fig = charts.reliability_figure(
        {"R0": _curve(0), "R1": _curve(1), "R3": _curve(2)}, overlay=False
    )
    axes = {t.xaxis for t in fig.data}
    assert len(axes) == 6  # 3 curves x (curve, histogram)
    assert [t.name for t in fig.data].count("perfect calibration") == 3
    assert not [t for t in fig.data if getattr(t, "fill", None) == "toself"]  # no bootstrap


def test_reliability_figure_skips_empty_bins_in_the_line() -> None:
    frame = _curve(0)
    frame.loc[3, ["count", "mean_score", "frac_correct"]] = [0, np.nan, np.nan]
    fig = charts.reliability_figure({"R0": frame}, bands=False)
    line = next(t for t in fig.data if t.name == "R0")
    assert len(line.x) == int((frame["count"] > 0).sum())


def test_user_text_is_escaped_in_figures() -> None:
    evil = "<img src=x onerror=alert(1)>"
    results = {
        evil: pd.DataFrame(
            {"domain": [evil], "intent": ["Music.Play"], "slots": [evil], "score": [0.7]}
        )
    }
    fig = charts.probe_figure(results)
    dumped = fig.to_json()
    assert "<img" not in dumped
    assert "&lt;img" in dumped
    fig = charts.reliability_figure({evil: _curve(0)})
    assert "<img" not in fig.to_json()


def test_probe_figure_has_one_panel_per_device_sorted_by_rank() -> None:
    frame = pd.DataFrame(
        {
            "domain": ["Video", "Books", "Music"],
            "intent": ["Video.Play", "Books.Read", "Music.Play"],
            "slots": ["[title : x]", "", "[song : x]"],
            "score": [0.8, 0.15, 0.05],
        }
    )
    fig = charts.probe_figure({"fire_tv": frame, "echo_dot": frame.iloc[::-1]})
    assert len(fig.data) == 2
    assert list(fig.data[0].y) == ["#1", "#2", "#3"]
    assert fig.data[0].text[0] == "Video · Play  0.80"  # domain prefix of the intent dropped
    assert fig.data[1].text[0].startswith("Music · Play")
    assert list(fig.data[0].x) == [0.8, 0.15, 0.05]
    assert [a.text for a in fig.layout.annotations] == ["fire_tv", "echo_dot"]


def test_domain_distribution_and_device_weights_figures() -> None:
    dist = pd.DataFrame(
        {
            "device": ["echo_dot", "echo_dot", "fire_tv"],
            "domain": ["Books", "Video", "Video"],
            "count": [3, 1, 4],
            "share": [0.75, 0.25, 1.0],
        }
    )
    fig = charts.domain_distribution_figure(dist)
    assert fig.layout.barmode == "stack" and len(fig.data) == 2
    weights = pd.DataFrame(
        {
            "domain": ["Video", "Video", "Books", "Books"],
            "device": ["echo_dot", "fire_tv", "echo_dot", "fire_tv"],
            "weight": [-0.5, 1.5, 0.4, -0.2],
        }
    )
    heat = charts.device_weights_figure(weights)
    assert heat.data[0].zmid == 0 and heat.data[0].zmax == 1.5
    assert list(heat.data[0].y) == ["Books", "Video"]
    assert heat.data[0].z[1][1] == 1.5


def test_contributions_and_weights_comparison_figures() -> None:
    contrib = pd.DataFrame(
        {
            "hypothesis": [0, 0, 1, 1],
            "domain": ["Video", "Video", "Books", "Books"],
            "feature": ["log_domain_score", "bias", "log_domain_score", "bias"],
            "value": [-0.1, 1.0, -2.0, 1.0],
            "weight": [2.0, -1.0, 1.0, 0.5],
            "contribution": [-0.2, -1.0, -2.0, 0.5],
        }
    )
    fig = charts.contributions_figure(contrib, {0: "#1 Video", 1: "#2 Books"})
    assert fig.layout.barmode == "relative" and len(fig.data) == 3
    total = next(t for t in fig.data if t.name == "logit z (sum)")
    assert list(total.x) == [-1.2, -1.5]
    cmp = charts.weights_comparison_figure(["a", "bias"], {"v1": [1.0, 2.0], "v2": [1.5, 2.0]})
    assert [t.name for t in cmp.data] == ["v1", "v2"]
