"""Smooth ECE against the exact kernel sum, at bandwidths far below any fixed grid's spacing."""

from __future__ import annotations

import numpy as np
import pytest

from reranker.calibration import smooth_ece


def exact_smooth_ece(correct, score, sigma, weight=None, n_t=None):
    """Every sample's reflected kernel summed at each t of a fine grid, trapezoid integral.

    The kernel is truncated at 9σ (exp(-40.5) ~ 2.6e-18 of its peak), images up to |k| = 2.
    """
    s = np.asarray(score, dtype=float)
    w = np.ones_like(s) if weight is None else np.asarray(weight, dtype=float)
    r = w * (np.asarray(correct, dtype=float) - s) / w.sum()
    n_t = n_t or int(max(4000, 60 / sigma))
    t = np.linspace(0.0, 1.0, n_t + 1)
    f = np.zeros_like(t)
    for k in range(-2, 3):
        for sign in (1.0, -1.0):
            img = sign * s + 2 * k
            order = np.argsort(img)
            img, rk = img[order], r[order]
            lo = np.searchsorted(img, t - 9 * sigma)
            hi = np.searchsorted(img, t + 9 * sigma)
            for j in np.flatnonzero(hi > lo):
                d = (t[j] - img[lo[j] : hi[j]]) / sigma
                f[j] += np.dot(np.exp(-0.5 * d * d), rk[lo[j] : hi[j]])
    a = np.abs(f) / (sigma * np.sqrt(2 * np.pi))
    return float((a.sum() - 0.5 * (a[0] + a[-1])) / n_t)


def _sample(n, seed, power=1.0):
    rng = np.random.default_rng(seed)
    s = rng.random(n)
    # ties, and scores on the ends of [0, 1]
    s[: n // 20] = 0.5
    s[n // 20 : n // 20 + 5] = [0.0, 0.0, 1.0, 1.0, 0.25]
    y = (rng.random(n) < s**power).astype(int)
    return y, s


@pytest.mark.parametrize("sigma", [0.002, 0.01, 0.05, 0.3, 1.0])
def test_smooth_ece_at_fixed_bandwidth_matches_the_exact_sum(sigma: float) -> None:
    y, s = _sample(3000, seed=1, power=1.3)
    assert smooth_ece(y, s, bandwidth=sigma) == pytest.approx(
        exact_smooth_ece(y, s, sigma), rel=2e-3
    )


def test_smooth_ece_fixed_point_matches_the_exact_sum() -> None:
    y, s = _sample(20000, seed=2)
    value = smooth_ece(y, s)
    # the fixed point: smECE at σ = value is value itself
    assert exact_smooth_ece(y, s, value) == pytest.approx(value, rel=2e-3)


def test_smooth_ece_weights_equal_repeated_rows() -> None:
    y, s = _sample(500, seed=3, power=2.0)
    w = np.random.default_rng(4).integers(0, 4, s.size)
    weighted = smooth_ece(y, s, sample_weight=w)
    repeated = smooth_ece(np.repeat(y, w), np.repeat(s, w))
    assert weighted == pytest.approx(repeated, rel=1e-9)
    assert smooth_ece(y, s, bandwidth=0.01, sample_weight=w) == pytest.approx(
        exact_smooth_ece(y, s, 0.01, weight=w), rel=2e-3
    )


def test_smooth_ece_grid_size_is_only_a_lower_bound() -> None:
    y, s = _sample(2000, seed=5, power=1.5)
    coarse = smooth_ece(y, s, bandwidth=0.004, grid_size=16)
    fine = smooth_ece(y, s, bandwidth=0.004, grid_size=2**16)
    assert coarse == pytest.approx(fine, rel=1e-3)
