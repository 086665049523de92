"""The utterance bootstrap: hashed Poisson weights and the bias-corrected interval."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr, ndtri
from scipy.stats import poisson

from reranker.bootstrap import (
    bootstrap_interval,
    bootstrap_intervals,
    poisson_weights,
    utterance_keys,
    weight_chunks,
)
from reranker.errors import DataError


def test_utterance_keys_depend_on_the_id_text_only() -> None:
    a = utterance_keys(["u1", "u2", "u3"])
    b = utterance_keys(["u3", "u1"])
    assert a.dtype == np.uint64
    assert (b == a[[2, 0]]).all()
    assert len(set(a.tolist())) == 3
    # ids are compared as strings: the integer 7 and the string "7" are one utterance
    assert utterance_keys([7])[0] == utterance_keys(["7"])[0]


def test_poisson_weights_do_not_depend_on_partitioning_or_chunking() -> None:
    keys = utterance_keys([f"utt-{i}" for i in range(1000)])
    full = poisson_weights(keys, 50, seed=11)
    # any subset of utterances (a partition) gets the same weights for the same resamples
    part = np.flatnonzero(np.arange(1000) % 7 == 3)
    assert (poisson_weights(keys[part], 50, seed=11) == full[:, part]).all()
    # resamples produced in chunks, from any start, are the same resamples
    chunks = np.vstack([w for _, w in weight_chunks(keys, 50, seed=11, chunk=7)])
    assert (chunks == full).all()
    assert (poisson_weights(keys, 10, seed=11, start=40) == full[40:]).all()
    assert not (poisson_weights(keys, 50, seed=12) == full).all()


def test_poisson_weights_follow_poisson_one() -> None:
    keys = utterance_keys(np.arange(20_000))
    w = poisson_weights(keys, 20, seed=0).ravel()
    assert w.mean() == pytest.approx(1.0, abs=0.01)
    assert w.var() == pytest.approx(1.0, abs=0.02)
    observed = np.bincount(w.astype(int), minlength=6)[:6] / w.size
    assert observed == pytest.approx(poisson.pmf(np.arange(6), 1.0), abs=0.004)
    # resamples are independent of each other: correlation of two rows is near zero
    rows = poisson_weights(keys, 2, seed=5)
    assert abs(np.corrcoef(rows)[0, 1]) < 0.03


def _slow_bc(estimate: float, values: list[float], confidence: float) -> tuple[float, float]:
    """Efron's bias-corrected percentile interval, written out step by step."""
    finite = sorted(v for v in values if np.isfinite(v))
    n = len(finite)
    below = sum(1.0 for v in finite if v < estimate) + 0.5 * sum(1 for v in finite if v == estimate)
    p0 = min(max(below / n, 0.5 / n), 1 - 0.5 / n)
    z0 = ndtri(p0)
    z = ndtri(0.5 + confidence / 2)
    lo = float(np.quantile(finite, ndtr(2 * z0 - z)))
    hi = float(np.quantile(finite, ndtr(2 * z0 + z)))
    return min(lo, estimate), max(hi, estimate)


def test_bootstrap_interval_is_the_percentile_interval_without_bias() -> None:
    values = np.arange(1.0, 100.0)  # median 50: no bias at estimate 50
    low, high = bootstrap_interval(50.0, values, confidence=0.9)
    assert (low, high) == pytest.approx(tuple(np.quantile(values, [0.05, 0.95])))


def test_bootstrap_interval_corrects_an_upward_bias() -> None:
    # Replicates mostly above the estimate (as for binned ECE): the percentile interval misses it,
    # the bias-corrected one is shifted down towards it and contains it.
    rng = np.random.default_rng(0)
    values = 0.05 + 0.01 * rng.standard_normal(500)
    estimate = 0.035
    plain = np.quantile(values, [0.05, 0.95])
    assert plain[0] > estimate
    low, high = bootstrap_interval(estimate, values)
    assert low <= estimate <= high
    assert high < plain[1]
    assert (low, high) == pytest.approx(_slow_bc(estimate, list(values), 0.9))


@settings(max_examples=200, deadline=None)
@given(
    estimate=st.floats(-10, 10),
    values=st.lists(st.floats(-10, 10) | st.just(float("nan")), min_size=1, max_size=60),
    confidence=st.floats(0.5, 0.99),
)
def test_bootstrap_interval_contains_its_estimate_and_matches_the_slow_one(
    estimate: float, values: list[float], confidence: float
) -> None:
    low, high = bootstrap_interval(estimate, values, confidence=confidence)
    if not any(np.isfinite(values)):
        assert np.isnan(low) and np.isnan(high)
        return
    assert low <= estimate <= high
    assert (low, high) == pytest.approx(_slow_bc(estimate, values, confidence), abs=1e-12)


def test_bootstrap_intervals_by_column_and_bad_confidence() -> None:
    rng = np.random.default_rng(1)
    reps = rng.random((100, 3))
    low, high = bootstrap_intervals([0.5, np.nan, 0.2], reps)
    assert np.isnan(low[1]) and np.isnan(high[1])
    assert (low[0], high[0]) == bootstrap_interval(0.5, reps[:, 0])
    with pytest.raises(DataError, match="confidence"):
        bootstrap_interval(0.5, reps[:, 0], confidence=1.0)
