"""Per-bin sums of the calibration metrics against a slow loop, for every kind of input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reranker.calibration import bin_indices, reliability_curve
from reranker.errors import DataError
from reranker.scored_pairs import bin_sums, check_pair


def slow_bin_sums(correct, score, weight, n_bins):
    """One bin at a time, with the rule of docs/metrics.md#ece written out."""
    count, sum_s, sum_y = np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins)
    for y, s, w in zip(correct, score, weight, strict=True):
        b = min(int(np.floor(s * n_bins)), n_bins - 1)
        count[b] += w
        sum_s[b] += w * s
        sum_y[b] += w * float(y)
    return count, sum_s, sum_y


# scores on and next to bin edges, 0 and 1, ties
_score = st.one_of(
    st.sampled_from([0.0, 1.0, 0.1, 0.3, 0.7, 0.5, np.nextafter(0.3, 0), 0.9999999999]),
    st.floats(0.0, 1.0),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), _score, st.floats(0.0, 3.0)), max_size=40),
    st.sampled_from(["bool", "int8", "int64", "float", "fraction"]),
    st.booleans(),
    st.integers(1, 12),
)
def test_bin_sums_match_slow_loop(rows, kind, weighted, n_bins) -> None:
    y = np.array([r[0] for r in rows], dtype=np.int64)
    s = np.array([r[1] for r in rows], dtype=np.float64)
    w = np.array([r[2] for r in rows]) if weighted else np.ones(len(rows))
    if kind == "fraction":
        y = y * 0.75
    correct = y.astype({"bool": bool, "int8": np.int8, "int64": np.int64}.get(kind, float))
    pairs = check_pair(correct, s, w if weighted else None)
    assert pairs.binary == (kind in ("bool", "int8", "int64"))
    idx, _ = bin_indices(s, n_bins=n_bins)
    got = bin_sums(pairs, idx, n_bins, overwrite=True)
    want = slow_bin_sums(y, s, w, n_bins)
    for g, v in zip(got, want, strict=True):
        np.testing.assert_allclose(g, v, rtol=1e-12, atol=1e-12)


def test_reliability_curve_same_for_bool_int_and_float_correct() -> None:
    rng = np.random.default_rng(5)
    s = rng.random(5000)
    y = rng.random(5000) < s
    curves = [reliability_curve(c, s, n_bins=7) for c in (y, y.astype(int), y.astype(float))]
    for c in curves[1:]:
        np.testing.assert_allclose(c.count, curves[0].count, rtol=0, atol=0)
        np.testing.assert_allclose(c.mean_score, curves[0].mean_score, rtol=1e-13)
        np.testing.assert_allclose(c.frac_correct, curves[0].frac_correct, rtol=1e-13)


@pytest.mark.parametrize(
    ("correct", "score", "weight", "match"),
    [
        ([0, 2], [0.1, 0.2], None, "correct must lie in"),
        ([0, -1], [0.1, 0.2], None, "correct must lie in"),
        ([0.0, np.nan], [0.1, 0.2], None, "correct must lie in"),
        ([0, 1], [0.1, np.nan], None, "score must lie in"),
        ([0, 1], [0.1, 1.5], None, r"score must lie in \[0, 1\], got 1.5"),
        ([0, 1], [0.1], None, "same length"),
        ([0, 1], [0.1, 0.2], [1.0, np.nan], "sample_weight"),
        ([0, 1], [0.1, 0.2], [1.0, -1.0], "sample_weight"),
        ([0, 1], [0.1, 0.2], [1.0], "sample_weight"),
    ],
)
def test_check_pair_rejects(correct, score, weight, match) -> None:
    with pytest.raises(DataError, match=match):
        check_pair(correct, score, weight)
