"""Plotly figure builders: structure, hover details, and user text kept inert."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

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


def test_user_text_is_escaped_in_every_figure_builder() -> None:
    # Domain, device and feature names come from users' files; plotly renders a subset of HTML
    # (links among it) in labels, so every builder must pass them as inert text.
    evil = '<a href="http://example.invalid/">x</a>'
    dist = pd.DataFrame({"device": [evil], "domain": [evil], "count": [3], "share": [1.0]})
    weights = pd.DataFrame({"domain": [evil], "device": [evil], "weight": [0.5]})
    contrib = pd.DataFrame(
        {
            "hypothesis": [0, 0],
            "domain": [evil, evil],
            "feature": [f"device={evil}", "bias"],
            "value": [1.0, 1.0],
            "weight": [0.5, -1.0],
            "contribution": [0.5, -1.0],
        }
    )
    figures = {
        "domain distribution": charts.domain_distribution_figure(dist),
        "device weights": charts.device_weights_figure(weights),
        "contributions": charts.contributions_figure(contrib, {0: evil}),
        "weights comparison": charts.weights_comparison_figure(
            [f"device={evil}", "bias"], {evil: [1.0, 2.0], "v2": [1.5, 2.0]}
        ),
    }
    for name, fig in figures.items():
        dumped = fig.to_json()
        assert "<a href" not in dumped and "\\u003ca href" not in dumped.lower(), name


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
    (heat,) = fig.data  # a heatmap of shares: no categorical colour at all
    assert isinstance(heat, go.Heatmap)
    assert list(heat.y) == ["Video", "Books"]  # most wins first
    assert list(heat.x) == ["echo_dot", "fire_tv"]
    assert heat.z[0][1] == 1.0 and heat.z[1][1] == 0.0 and heat.text[1][0] == "75%"
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
    assert [a.text for a in fig.layout.annotations] == ["#1 Video", "#2 Books"]
    totals = [t for t in fig.data if t.name == "logit z (sum)"]
    assert [list(t.x) for t in totals] == [[-1.2], [-1.5]]
    ups = [t for t in fig.data if t.name == "raises the score"]
    downs = [t for t in fig.data if t.name == "lowers it"]
    assert list(ups[1].y) == ["bias"] and list(ups[1].x) == [0.5]
    assert list(downs[0].y) == ["log_domain_score", "bias"]
    cmp = charts.weights_comparison_figure(["a", "bias"], {"v1": [1.0, 2.0], "v2": [1.5, 2.0]})
    assert [t.name for t in cmp.data] == ["v1", "v2"]


def _trace_color(trace: go.BaseTraceType) -> str | None:
    for color in (
        getattr(getattr(trace, "line", None), "color", None),
        getattr(getattr(trace, "marker", None), "color", None),
        getattr(trace, "fillcolor", None),
    ):
        if isinstance(color, str):
            return color.upper()
    return None


def assert_series_colors_distinct(fig: go.Figure) -> None:
    """Traces of one series (legend group) share a colour; two series never do."""
    by_series: dict[str, set[str]] = {}
    for trace in fig.data:
        color = _trace_color(trace)
        if color is None:
            continue
        series = trace.legendgroup or trace.name
        by_series.setdefault(series, set()).add(color)
    assert all(len(c) == 1 for c in by_series.values()), by_series
    colors = [next(iter(c)) for c in by_series.values()]
    assert len(colors) == len(set(colors)), by_series


def _contributions(n_features: int, n_hyps: int) -> pd.DataFrame:
    rng = np.random.default_rng(n_features)
    features = [*(f"feature_{k}" for k in range(n_features - 1)), "device=fire_tv", "bias"]
    rows = [
        {
            "hypothesis": h,
            "domain": f"D{h}",
            "feature": f,
            "value": 1.0,
            "weight": w,
            "contribution": w,
        }
        for h in range(n_hyps)
        for f, w in zip(features, rng.normal(size=len(features)), strict=True)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "names",
    [
        ["R0", "R1", "R2", "R3", "R2 + temperature", "R2 + isotonic"],
        ["echo_dot", "echo_show", "fire_tv"],
        [f"device {k}" for k in range(8)],
        ["R3", "R3 + temperature", "R3 + isotonic", "a", "b", "c", "d", "e"],
    ],
)
@pytest.mark.parametrize("overlay", [True, False])
def test_reliability_figure_gives_every_curve_its_own_colour(
    names: list[str], overlay: bool
) -> None:
    curves = {n: _curve(k, 10) for k, n in enumerate(names)}
    assert_series_colors_distinct(charts.reliability_figure(curves, overlay=overlay))


def test_reliability_figure_beyond_the_palette_uses_panels_not_repeated_colours() -> None:
    names = [f"device {k}" for k in range(12)]
    fig = charts.reliability_figure({n: _curve(k) for k, n in enumerate(names)}, overlay=True)
    assert [a.text for a in fig.layout.annotations] == names  # one titled panel per curve
    assert not [t for t in fig.data if t.showlegend and t.name != "perfect calibration"]


def test_other_figures_give_every_series_its_own_colour() -> None:
    fig = charts.contributions_figure(_contributions(11, 4), {h: f"#{h + 1}" for h in range(4)})
    assert_series_colors_distinct(fig)
    cmp = charts.weights_comparison_figure(["a", "b"], {"A: v1": [1, 2], "B: v2": [2, 1]})
    assert_series_colors_distinct(cmp)


@pytest.mark.parametrize("n_domains", [3, 8, 21])
def test_probe_figure_colours_identify_domains(n_domains: int) -> None:
    domains = [f"Domain{k}" for k in range(n_domains)]
    results = {
        f"device{k}": pd.DataFrame(
            {
                "domain": domains[k::3][:5],
                "intent": [f"{d}.x" for d in domains[k::3][:5]],
                "slots": "",
                "score": np.linspace(0.9, 0.1, len(domains[k::3][:5])),
            }
        )
        for k in range(3)
    }
    fig = charts.probe_figure(results)
    pairs = {
        (d, c)
        for trace, frame in zip(fig.data, results.values(), strict=True)
        for d, c in zip(frame["domain"], trace.marker.color, strict=True)
    }
    colors = {c for _, c in pairs}
    if len({d for d, _ in pairs}) <= 8:
        assert len(colors) == len(pairs)  # one colour per domain, never shared
    else:
        assert len(colors) == 1  # too many domains for colours: the labels name them


def test_reliability_count_panels_share_one_labelled_axis() -> None:
    rng = np.random.default_rng(0)
    curves = {}
    for name in ("R0", "R2", "R3"):
        s = rng.beta(0.5, 0.5 + len(name), 2000)
        y = (rng.random(2000) < s).astype(float)
        curves[name] = reliability_curve(y, s, strategy="quantile").to_frame()
    fig = charts.reliability_figure(curves, overlay=False)
    count_axes = [
        fig.layout[name]
        for name in fig.layout
        if name.startswith("yaxis")
        and fig.layout[name].title.text != "fraction correct"
        and fig.layout[name].range is not None
        and fig.layout[name].range[1] != 1.02
    ]
    assert len(count_axes) == 3
    assert len({tuple(a.range) for a in count_axes}) == 1
    titles = [a.title.text for a in count_axes if a.title.text]
    assert titles[0].startswith("count per 0.1")  # unequal bin widths: areas are counts
    assert len(titles) == 1  # labelled once, on the first column
    overlay = charts.reliability_figure(curves, overlay=True)
    steps = [t for t in overlay.data if t.name.endswith(" count")]
    assert all(isinstance(t, go.Scatter) and t.line.shape == "hv" for t in steps)


def test_reliability_count_bars_of_shared_bins_never_overlap() -> None:
    curves = {n: _curve(k) for k, n in enumerate(["R0", "R1", "R2"])}
    fig = charts.reliability_figure(curves, overlay=True)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    spans = sorted((x - w / 2, x + w / 2) for t in bars for x, w in zip(t.x, t.width, strict=True))
    assert all(a[1] <= b[0] + 1e-12 for a, b in itertools.pairwise(spans))
    rng = np.random.default_rng(0)
    s = rng.beta(0.3, 3.0, 5000)  # counts spanning orders of magnitude, as real n-best scores
    skewed = reliability_curve((rng.random(5000) < s).astype(float), s).to_frame()
    layout = charts.reliability_figure({"R0": skewed}).layout
    (axis,) = (layout[n] for n in layout if n.startswith("yaxis") and layout[n].type == "log")
    assert axis.tickvals  # a log count axis always has tick labels


@pytest.mark.parametrize(("rows", "cols", "titles"), [(1, 1, 1), (1, 3, 2), (2, 3, 5), (4, 3, 10)])
def test_contribution_panels_are_laid_out_as_make_subplots_lays_them_out(
    rows: int, cols: int, titles: int
) -> None:
    from plotly.subplots import make_subplots

    from reranker.charts.weights import _panel_grid

    spacing = 0.12 / max(1, rows - 1) if rows > 1 else 0.0
    ref = make_subplots(
        rows=rows, cols=cols, shared_yaxes=True, shared_xaxes="rows", horizontal_spacing=0.03,
        vertical_spacing=spacing, subplot_titles=[f"#{k}" for k in range(titles)],
    ).layout.to_plotly_json()  # fmt: skip
    ref.pop("template")
    got = _panel_grid(rows, cols, titles)
    for annotation, k in zip(got["annotations"], range(titles), strict=True):
        annotation["text"] = f"#{k}"
    assert got.keys() == ref.keys()
    for key, value in ref.items():
        if key == "annotations":
            for a, b in zip(got[key], value, strict=True):
                assert a.keys() == b.keys()
                assert all(a[k] == pytest.approx(b[k]) for k in a)
        else:
            assert got[key].keys() == value.keys()
            assert got[key]["domain"] == pytest.approx(value["domain"])
            assert {k: v for k, v in got[key].items() if k != "domain"} == {
                k: v for k, v in value.items() if k != "domain"
            }
