"""The utterance bootstrap: resampling weights and the interval they give.

Hypotheses of one utterance are not independent, so every confidence interval in the project
resamples whole **utterances** (docs/metrics.md#intervals). Two properties drive the design:

* **The same interval however the data is partitioned.** A classical bootstrap draws ``n``
  utterances with replacement, which needs all ``n`` utterance ids in one place and one random
  stream. The **Poisson bootstrap** instead gives each utterance an independent Poisson(1) count
  per resample. Here that count is a pure function of ``(utterance id, seed, resample index)``: the
  id is hashed to 64 bits (:func:`utterance_keys`), mixed with the seed and resample index by the
  SplitMix64 finaliser, and mapped through the Poisson(1) inverse CDF. Any engine, partitioning
  or chunking of the data therefore gives every utterance the same weights, and weighted
  sufficient statistics of separate partitions simply add up.
* **An interval that contains its own estimate.** Binned ECE and MCE are biased upward, so the
  percentile interval of their resamples can sit entirely above the estimate. The interval is the
  **bias-corrected percentile** (BC) interval of Efron (1981): with ``p0`` the share of resamples
  below the estimate (ties count half) and ``z0 = Φ⁻¹(p0)``, the bounds are the resample quantiles
  at ``Φ(2·z0 ± z)``, where ``z = Φ⁻¹((1 + confidence) / 2)``. BCa's acceleration term needs a
  jackknife pass per utterance, which neither partitions nor scales, so it is taken as zero.
  When the bias is so strong (``|z0| ≥ z``) that the corrected bounds still miss the estimate, the
  interval is widened to reach it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri

from reranker.errors import DataError

__all__ = [
    "bootstrap_interval",
    "bootstrap_intervals",
    "hashed_folds",
    "poisson_weights",
    "utterance_keys",
    "weight_chunks",
]

_U64 = np.uint64
_MASK64 = (1 << 64) - 1
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)

# Poisson(1) CDF up to 24; P(X > 24) < 1e-25, far below the 2**-53 resolution of the uniforms.
_POISSON_CDF = np.cumsum(np.exp(-1.0) / np.cumprod(np.r_[1.0, np.arange(1.0, 25.0)]))
_POISSON_CDF[-1] = 1.0


def _splitmix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64 finaliser: a bijective avalanche mix of 64-bit integers (wrapping arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _U64(30))) * _MIX1
    z = (z ^ (z >> _U64(27))) * _MIX2
    return z ^ (z >> _U64(31))


def utterance_keys(utterance_ids: ArrayLike) -> NDArray[np.uint64]:
    """A stable 64-bit key per utterance id (ids are compared as strings).

    The key depends on the id's text only: not on its position, the table it came from or the
    process computing it (pandas' SipHash-2-4 of the UTF-8 string with a fixed key).
    """
    ids = pd.Series(np.asarray(utterance_ids, dtype=object)).astype(str).to_numpy(dtype=object)
    return np.asarray(pd.util.hash_array(ids, categorize=True), dtype=np.uint64)


def hashed_folds(utterance_ids: ArrayLike, folds: int) -> NDArray[np.int64]:
    """Fold (0 .. folds-1) of each utterance id: its :func:`utterance_keys` key modulo ``folds``,
    so the folds depend on the ids only, never on row order or partitioning."""
    return (utterance_keys(utterance_ids) % np.uint64(folds)).astype(np.int64)


def _replicate_salts(n_boot: int, seed: int, start: int) -> NDArray[np.uint64]:
    index = np.arange(start, start + n_boot, dtype=np.uint64)
    base = _splitmix64(np.array([int(seed) & _MASK64], dtype=np.uint64))
    return _splitmix64(base ^ _splitmix64(index))


def poisson_weights(
    keys: ArrayLike, n_boot: int, *, seed: int = 0, start: int = 0
) -> NDArray[np.float64]:
    """Poisson(1) resampling counts of utterances for resamples ``start .. start + n_boot - 1``.

    Parameters
    ----------
    keys : array-like of uint64, shape (n,)
        :func:`utterance_keys` of the utterances.
    n_boot : int
        Number of resamples.
    seed : int, default 0
        Any integer (taken modulo 2**64).
    start : int, default 0
        Index of the first resample, so that resamples can be produced in chunks.

    Returns
    -------
    ndarray of shape (n_boot, n)
        ``W[b, i]``, the number of times utterance ``i`` is drawn in resample ``start + b``: a
        function of ``(keys[i], seed, start + b)`` only.
    """
    if n_boot < 0 or start < 0:
        raise DataError(f"n_boot and start must be non-negative, got {n_boot} and {start}")
    k = np.asarray(keys, dtype=np.uint64)
    salts = _replicate_salts(n_boot, seed, start)
    mixed = _splitmix64(k[None, :] ^ salts[:, None])
    uniform = (mixed >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return np.searchsorted(_POISSON_CDF, uniform, side="right").astype(np.float64)


def weight_chunks(
    keys: ArrayLike, n_boot: int, *, seed: int = 0, chunk: int = 16
) -> Iterator[tuple[int, NDArray[np.float64]]]:
    """Yield ``(start, W)``: :func:`poisson_weights` of ``chunk`` resamples at a time."""
    if chunk < 1:
        raise DataError(f"chunk must be at least 1, got {chunk}")
    k = np.asarray(keys, dtype=np.uint64)
    for start in range(0, n_boot, chunk):
        yield start, poisson_weights(k, min(chunk, n_boot - start), seed=seed, start=start)


def _bc_bounds(estimate: float, values: NDArray[np.float64], z: float) -> tuple[float, float]:
    n = values.size
    below = np.count_nonzero(values < estimate) + 0.5 * np.count_nonzero(values == estimate)
    p0 = min(max(below / n, 0.5 / n), 1.0 - 0.5 / n)
    z0 = float(ndtri(p0))
    levels = ndtr(np.array([2.0 * z0 - z, 2.0 * z0 + z]))
    low, high = np.quantile(values, levels)
    return min(float(low), estimate), max(float(high), estimate)


def bootstrap_interval(
    estimate: float, replicates: ArrayLike, *, confidence: float = 0.9
) -> tuple[float, float]:
    """Bias-corrected percentile interval of one estimate from its bootstrap resamples.

    Parameters
    ----------
    estimate : float
        The statistic on the full sample.
    replicates : array-like of shape (n_boot,)
        The statistic on each resample; ``nan`` resamples (e.g. an empty bin) are ignored.
    confidence : float in (0, 1), default 0.9

    Returns
    -------
    (low, high) : tuple of float
        ``nan`` where the estimate is ``nan`` or no resample is finite; otherwise
        ``low <= estimate <= high``.
    """
    low, high = bootstrap_intervals(
        [estimate], np.reshape(replicates, (-1, 1)), confidence=confidence
    )
    return float(low[0]), float(high[0])


def bootstrap_intervals(
    estimates: ArrayLike, replicates: ArrayLike, *, confidence: float = 0.9
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`bootstrap_interval` of ``k`` statistics at once.

    Parameters
    ----------
    estimates : array-like of shape (k,)
    replicates : array-like of shape (n_boot, k)
    confidence : float in (0, 1), default 0.9

    Returns
    -------
    (low, high) : ndarrays of shape (k,)
    """
    if not 0.0 < confidence < 1.0:
        raise DataError(f"confidence must lie in (0, 1), got {confidence}")
    est = np.asarray(estimates, dtype=np.float64).reshape(-1)
    reps = np.asarray(replicates, dtype=np.float64).reshape(-1, est.size)
    z = float(ndtri(0.5 + confidence / 2.0))
    low = np.full(est.size, np.nan)
    high = np.full(est.size, np.nan)
    for k, value in enumerate(est):
        col = reps[:, k][np.isfinite(reps[:, k])]
        if np.isfinite(value) and col.size:
            low[k], high[k] = _bc_bounds(float(value), col, z)
    return low, high
