from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve

from reranker.calibration import (
    ReliabilityStats,
    bin_indices,
    brier_loss,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_curve,
    smooth_ece,
)
from reranker.errors import DataError, RerankerError


def slow_ece(correct, score, n_bins=10):
    """Loop over bins exactly as docs/metrics.md#ece words it."""
    n = len(score)
    total, worst = 0.0, 0.0
    for b in range(n_bins):
        members = [k for k in range(n) if min(int(np.floor(score[k] * n_bins)), n_bins - 1) == b]
        if not members:
            continue
        acc = sum(correct[k] for k in members) / len(members)
        conf = sum(score[k] for k in members) / len(members)
        total += len(members) / n * abs(acc - conf)
        worst = max(worst, abs(acc - conf))
    return total, worst


def test_ece_hand_worked() -> None:
    # bin 0: scores 0.05, 0.05 correct 0, 1 -> |0.5 - 0.05| = 0.45, weight 2/4
    # bin 9: scores 0.95, 1.0 correct 1, 1 -> |1 - 0.975| = 0.025, weight 2/4
    correct = [0, 1, 1, 1]
    score = [0.05, 0.05, 0.95, 1.0]
    assert expected_calibration_error(correct, score) == pytest.approx(0.5 * 0.45 + 0.5 * 0.025)
    assert maximum_calibration_error(correct, score) == pytest.approx(0.45)
    assert brier_loss(correct, score) == pytest.approx((0.05**2 + 0.95**2 + 0.05**2 + 0) / 4)


def test_bin_index_rule_on_edges() -> None:
    idx, edges = bin_indices([0.0, 0.1, 0.3, 0.7, 0.99999, 1.0], n_bins=10)
    assert idx.tolist() == [0, 1, 3, 7, 9, 9]
    assert edges[0] == 0.0 and edges[-1] == 1.0 and len(edges) == 11


def test_ece_matches_slow_reference_on_random_data() -> None:
    rng = np.random.default_rng(0)
    for n_bins in (1, 3, 10, 15):
        score = np.round(rng.random(500), 2)  # rounding puts many scores exactly on edges
        correct = (rng.random(500) < score**2).astype(int)
        ece, mce = slow_ece(correct, score, n_bins)
        assert expected_calibration_error(correct, score, n_bins=n_bins) == pytest.approx(
            ece, abs=1e-12
        )
        assert maximum_calibration_error(correct, score, n_bins=n_bins) == pytest.approx(
            mce, abs=1e-12
        )


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_matches_sklearn_calibration_curve(strategy: str) -> None:
    rng = np.random.default_rng(1)
    score = rng.random(3000)
    correct = (rng.random(3000) < 0.2 + 0.6 * score).astype(int)
    curve = reliability_curve(correct, score, n_bins=10, strategy=strategy)
    prob_true, prob_pred = calibration_curve(correct, score, n_bins=10, strategy=strategy)
    nonempty = curve.count > 0
    np.testing.assert_allclose(curve.frac_correct[nonempty], prob_true, atol=1e-12)
    np.testing.assert_allclose(curve.mean_score[nonempty], prob_pred, atol=1e-12)
    assert curve.count.sum() == 3000


def test_quantile_bins_hold_equal_mass() -> None:
    score = np.linspace(0.001, 0.999, 1000)
    curve = reliability_curve(np.zeros(1000), score, n_bins=4, strategy="quantile")
    assert curve.count.tolist() == [250, 250, 250, 250]


def test_empty_bins_are_skipped() -> None:
    curve = reliability_curve([1, 0], [0.95, 0.91], n_bins=10)
    assert np.isnan(curve.frac_correct[:9]).all()
    assert curve.count.tolist() == [0] * 9 + [2]
    assert maximum_calibration_error([1, 0], [0.95, 0.91]) == pytest.approx(abs(0.5 - 0.93))


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_ece_of_perfectly_calibrated_sample_tends_to_zero(seed: int) -> None:
    rng = np.random.default_rng(seed)
    score = rng.random(100_000)
    correct = (rng.random(100_000) < score).astype(int)
    assert expected_calibration_error(correct, score) < 0.01
    assert smooth_ece(correct, score) < 0.02


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 1)), min_size=1, max_size=60),
    st.randoms(use_true_random=False),
    st.sampled_from(["uniform", "quantile"]),
)
def test_metrics_are_permutation_invariant(pairs, random, strategy) -> None:
    score = np.array([p[0] for p in pairs])
    correct = np.array([p[1] for p in pairs])
    perm = list(range(len(pairs)))
    random.shuffle(perm)
    for metric in (expected_calibration_error, maximum_calibration_error):
        a = metric(correct, score, strategy=strategy)
        b = metric(correct[perm], score[perm], strategy=strategy)
        assert a == pytest.approx(b, abs=1e-12)
        assert 0.0 <= a <= 1.0
    assert brier_loss(correct, score) == pytest.approx(brier_loss(correct[perm], score[perm]))


def test_sample_weights_equal_repeated_rows() -> None:
    rng = np.random.default_rng(2)
    score = rng.random(100)
    correct = (rng.random(100) < 0.5).astype(int)
    w = rng.integers(0, 4, size=100)
    rep = np.repeat(np.arange(100), w)
    for metric in (expected_calibration_error, maximum_calibration_error):
        assert metric(correct, score, sample_weight=w) == pytest.approx(
            metric(correct[rep], score[rep])
        )
    assert brier_loss(correct, score, sample_weight=w) == pytest.approx(
        brier_loss(correct[rep], score[rep])
    )


def test_smooth_ece_detects_miscalibration_and_fixed_bandwidth() -> None:
    rng = np.random.default_rng(3)
    score = rng.random(20_000)
    overconfident = (rng.random(20_000) < 0.5).astype(int)
    value = smooth_ece(overconfident, score)
    assert 0.15 < value < 0.3  # true L1 gap is 0.25, smoothing shrinks it a little
    assert smooth_ece(overconfident, score, bandwidth=0.05) > value - 0.05


def test_reliability_curve_bands_resample_whole_utterances() -> None:
    # Rows of one utterance share their resample weight: duplicating every row of an utterance
    # inside its group leaves the bands unchanged, while splitting the rows into separate
    # utterances narrows them.
    rng = np.random.default_rng(7)
    score = rng.random(400)
    correct = (rng.random(400) < score).astype(int)
    groups = np.repeat(np.arange(100), 4)
    grouped = reliability_curve(correct, score, groups=groups, n_boot=200, n_bins=2)
    doubled = reliability_curve(
        np.r_[correct, correct],
        np.r_[score, score],
        groups=np.r_[groups, groups],
        n_boot=200,
        n_bins=2,
    )
    assert np.allclose(grouped.low, doubled.low) and np.allclose(grouped.high, doubled.high)


def test_reliability_curve_bootstrap_interval_contains_estimate() -> None:
    rng = np.random.default_rng(4)
    score = rng.random(2000)
    correct = (rng.random(2000) < score).astype(int)
    groups = np.repeat(np.arange(500), 4)
    curve = reliability_curve(correct, score, groups=groups, n_boot=100, seed=0)
    ok = curve.count > 0
    assert (curve.low[ok] <= curve.frac_correct[ok] + 1e-12).all()
    assert (curve.high[ok] >= curve.frac_correct[ok] - 1e-12).all()
    assert (curve.high[ok] - curve.low[ok] < 0.3).all()
    frame = curve.to_frame()
    assert list(frame.columns)[:3] == ["bin_low", "bin_high", "count"]


def test_reliability_stats_merge_and_rebin() -> None:
    rng = np.random.default_rng(5)
    score = rng.random(5000)
    correct = (rng.random(5000) < score).astype(int)
    whole = ReliabilityStats.from_arrays(correct, score)
    parts = ReliabilityStats.from_arrays(
        correct[:1234], score[:1234]
    ) + ReliabilityStats.from_arrays(correct[1234:], score[1234:])
    np.testing.assert_allclose(parts.count, whole.count)
    np.testing.assert_allclose(parts.sum_score, whole.sum_score)
    assert parts.ece(10) == pytest.approx(expected_calibration_error(correct, score), abs=1e-12)
    direct = reliability_curve(correct, score, n_bins=20)
    np.testing.assert_allclose(parts.curve(20).frac_correct, direct.frac_correct)
    with pytest.raises(DataError, match="does not divide"):
        whole.curve(7)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"correct": [1, 0], "score": [0.5]}, "same length"),
        ({"correct": [1], "score": [1.2]}, "score must lie in"),
        ({"correct": [1], "score": [np.nan]}, "score must lie in"),
        ({"correct": [2], "score": [0.5]}, "correct must lie in"),
        ({"correct": [1], "score": [0.5], "n_bins": 0}, "n_bins"),
        ({"correct": [1], "score": [0.5], "strategy": "kmeans"}, "strategy"),
    ],
)
def test_calibration_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(RerankerError, match=match):
        expected_calibration_error(**kwargs)


def test_empty_sample_gives_nan() -> None:
    assert np.isnan(expected_calibration_error([], []))
    assert np.isnan(brier_loss([], []))


def slow_smooth_ece(correct, score, sigma, n_grid=4000):
    """Direct kernel sum over every sample (no score binning), midpoint rule on [0, 1]."""
    t = (np.arange(n_grid) + 0.5) / n_grid
    total = np.zeros(n_grid)
    for y, s in zip(correct, score, strict=True):
        k = sum(
            np.exp(-0.5 * ((t - s - 2 * j) / sigma) ** 2)
            + np.exp(-0.5 * ((t + s - 2 * j) / sigma) ** 2)
            for j in range(-2, 3)
        ) / (sigma * np.sqrt(2 * np.pi))
        total += k * (y - s)
    return float(np.abs(total / len(score)).mean())


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.3])
def test_smooth_ece_matches_direct_kernel_sum(sigma: float) -> None:
    rng = np.random.default_rng(6)
    score = rng.random(300)
    correct = (rng.random(300) < score**1.5).astype(int)
    fast = smooth_ece(correct, score, bandwidth=sigma, grid_size=1000)
    assert fast == pytest.approx(slow_smooth_ece(correct, score, sigma), rel=2e-2)
