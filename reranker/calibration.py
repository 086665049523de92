"""Calibration metrics: reliability curves, ECE, MCE, Brier, smooth ECE (docs/metrics.md).

Calibration compares a ``score`` in [0, 1] with the ``correct`` bit. With bins b holding n_b of
the N samples,

.. math::

    \\mathrm{ECE} = \\sum_b \\frac{n_b}{N} \\left| \\bar{y}_b - \\bar{s}_b \\right|, \\qquad
    \\mathrm{MCE} = \\max_{b: n_b > 0} \\left| \\bar{y}_b - \\bar{s}_b \\right|, \\qquad
    \\mathrm{Brier} = \\frac{1}{N} \\sum_i (s_i - y_i)^2 .

Equal-width bins (``strategy="uniform"``) put a score in bin ``min(floor(score * n_bins),
n_bins - 1)``; equal-mass bins (``strategy="quantile"``) cut at the empirical quantiles. Empty
bins are skipped. Every function also takes optional non-negative ``sample_weight`` (used by the
bootstrap, which resamples whole utterances).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from reranker._validation import STRATEGIES, check_choice
from reranker.bootstrap import bootstrap_intervals, utterance_keys, weight_chunks
from reranker.errors import DataError
from reranker.kernel_calibration import smooth_ece
from reranker.scored_pairs import bin_sums, check_pair

__all__ = [
    "MAX_BINS",
    "Interval",
    "ReliabilityCurve",
    "ReliabilityStats",
    "bin_indices",
    "brier_loss",
    "expected_calibration_error",
    "maximum_calibration_error",
    "reliability_curve",
    "smooth_ece",
]

Strategy = Literal["uniform", "quantile"]
FloatArray = NDArray[np.float64]


def _check_pair(
    correct: ArrayLike, score: ArrayLike, sample_weight: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(correct, score, weights)`` as float arrays, validated (for callers that need floats)."""
    pairs = check_pair(correct, score, sample_weight)
    return pairs.y_float(), pairs.s, pairs.weights()


MAX_BINS = 10_000
"""Most calibration bins accepted (more bins than this only split empty space)."""


def _check_bins(n_bins: int, strategy: str) -> None:
    if not isinstance(n_bins, int | np.integer) or not 1 <= n_bins <= MAX_BINS:
        raise DataError(f"n_bins must be an integer from 1 to {MAX_BINS}, got {n_bins!r}")
    check_choice("strategy", strategy, STRATEGIES)


def bin_indices(
    score: ArrayLike, *, n_bins: int = 10, strategy: Strategy = "uniform"
) -> tuple[NDArray[np.int64], FloatArray]:
    """Bin index of every score, and the bin edges (length ``n_bins + 1``).

    ``uniform``: bin ``min(floor(score * n_bins), n_bins - 1)``, edges ``k / n_bins``.
    ``quantile``: edges at the empirical quantiles of ``score`` (first edge 0, last 1); a score
    equal to an inner edge goes to the bin above it. Repeated edges give empty bins.
    """
    _check_bins(n_bins, strategy)
    s = np.asarray(score, dtype=np.float64).ravel()
    if strategy == "uniform":
        # truncation is floor for scores >= 0; a score of exactly 1 goes to the last bin
        idx = np.multiply(s, n_bins).astype(np.intp)
        np.minimum(idx, n_bins - 1, out=idx)
        return idx, np.linspace(0.0, 1.0, n_bins + 1)
    inner = (
        np.quantile(s, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]) if s.size else np.zeros(n_bins - 1)
    )
    idx = np.searchsorted(inner, s, side="right").astype(np.intp)
    edges = np.concatenate([[0.0], inner, [1.0]])
    return idx, edges


def _gaps(count: FloatArray, sum_s: FloatArray, sum_y: FloatArray) -> FloatArray:
    nonempty = count > 0
    gap = np.full(count.shape, np.nan)
    gap[nonempty] = np.abs(sum_y[nonempty] - sum_s[nonempty]) / count[nonempty]
    return gap


def _binned_sums(
    correct: ArrayLike,
    score: ArrayLike,
    sample_weight: ArrayLike | None,
    *,
    n_bins: int,
    strategy: Strategy,
) -> tuple[FloatArray, FloatArray, FloatArray, float] | None:
    """Checked pairs binned: per-bin weight, score sum, correct sum, and the total weight.

    ``None`` for a sample of zero total weight.
    """
    pairs = check_pair(correct, score, sample_weight)
    if pairs.total == 0:
        return None
    idx, _ = bin_indices(pairs.s, n_bins=n_bins, strategy=strategy)
    count, sum_s, sum_y = bin_sums(pairs, idx, n_bins, overwrite=True)
    return count, sum_s, sum_y, pairs.total


def expected_calibration_error(
    correct: ArrayLike,
    score: ArrayLike,
    *,
    n_bins: int = 10,
    strategy: Strategy = "uniform",
    sample_weight: ArrayLike | None = None,
) -> float:
    """Expected calibration error: ``sum_b (n_b / N) |mean(correct)_b - mean(score)_b|``.

    Parameters
    ----------
    correct : array-like of shape (n,)
        1 where the prediction is correct, else 0 (fractions in [0, 1] are accepted).
    score : array-like of shape (n,)
        Confidence in [0, 1].
    n_bins : int, default 10
    strategy : {"uniform", "quantile"}, default "uniform"
        Equal-width or equal-mass bins (see :func:`bin_indices`).
    sample_weight : array-like, optional
        Non-negative weights (counts of a bootstrap resample).

    Returns
    -------
    float
        ECE in [0, 1]; ``nan`` for an empty sample.
    """
    binned = _binned_sums(correct, score, sample_weight, n_bins=n_bins, strategy=strategy)
    if binned is None:
        return float("nan")
    _count, sum_s, sum_y, total = binned
    return float(np.abs(sum_y - sum_s).sum() / total)


def maximum_calibration_error(
    correct: ArrayLike,
    score: ArrayLike,
    *,
    n_bins: int = 10,
    strategy: Strategy = "uniform",
    sample_weight: ArrayLike | None = None,
) -> float:
    """Maximum calibration error: ``max_b |mean(correct)_b - mean(score)_b|`` over non-empty bins."""
    binned = _binned_sums(correct, score, sample_weight, n_bins=n_bins, strategy=strategy)
    if binned is None:
        return float("nan")
    return float(np.nanmax(_gaps(*binned[:3])))


def brier_loss(
    correct: ArrayLike, score: ArrayLike, *, sample_weight: ArrayLike | None = None
) -> float:
    """Brier score: ``mean((score - correct) ** 2)`` (lower is better)."""
    y, s, w = _check_pair(correct, score, sample_weight)
    total = w.sum()
    if total == 0:
        return float("nan")
    return float(np.dot(w, (s - y) ** 2) / total)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap confidence interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin reliability statistics.

    Attributes
    ----------
    edges : ndarray of shape (n_bins + 1,)
    count : ndarray of shape (n_bins,)
        Hypotheses per bin (weighted count if weights were given).
    mean_score, frac_correct : ndarray of shape (n_bins,)
        ``nan`` for empty bins.
    low, high : ndarray of shape (n_bins,)
        Bootstrap interval of ``frac_correct`` (``nan`` without bootstrap or for empty bins).
    """

    edges: FloatArray
    count: FloatArray
    mean_score: FloatArray
    frac_correct: FloatArray
    low: FloatArray
    high: FloatArray

    def to_frame(self) -> pd.DataFrame:
        """One row per bin: ``bin_low, bin_high, count, mean_score, frac_correct, low, high``."""
        return pd.DataFrame(
            {
                "bin_low": self.edges[:-1],
                "bin_high": self.edges[1:],
                "count": self.count,
                "mean_score": self.mean_score,
                "frac_correct": self.frac_correct,
                "frac_correct_low": self.low,
                "frac_correct_high": self.high,
            }
        )


def reliability_curve(
    correct: ArrayLike,
    score: ArrayLike,
    *,
    n_bins: int = 10,
    strategy: Strategy = "uniform",
    groups: ArrayLike | None = None,
    n_boot: int = 0,
    confidence: float = 0.9,
    seed: int = 0,
    sample_weight: ArrayLike | None = None,
) -> ReliabilityCurve:
    """Reliability curve: per bin, edges, count, mean score, fraction correct and its interval.

    Parameters
    ----------
    correct, score : array-like of shape (n,)
    n_bins : int, default 10
    strategy : {"uniform", "quantile"}
    groups : array-like of shape (n,), optional
        Utterance id of each row; with ``n_boot > 0`` the interval of each bin's fraction correct
        comes from resampling whole utterances (rows of one utterance are not independent).
    n_boot : int, default 0
        Bootstrap resamples; 0 leaves ``low``/``high`` as ``nan``.
    confidence : float, default 0.9
    seed : int, default 0
    """
    pairs = check_pair(correct, score, sample_weight)
    idx, edges = bin_indices(pairs.s, n_bins=n_bins, strategy=strategy)
    count, sum_s, sum_y = bin_sums(pairs, idx, n_bins, overwrite=n_boot <= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.where(count > 0, sum_s / np.where(count > 0, count, 1), np.nan)
        frac = np.where(count > 0, sum_y / np.where(count > 0, count, 1), np.nan)
    low = np.full(n_bins, np.nan)
    high = np.full(n_bins, np.nan)
    if n_boot > 0:
        y, w = pairs.y_float(), pairs.weights()
        keys = utterance_keys(np.arange(y.size) if groups is None else np.asarray(groups))
        fracs = np.full((n_boot, n_bins), np.nan)
        for start, boot in weight_chunks(keys, n_boot, seed=seed):
            for b, wb in enumerate(boot * w, start=start):
                c = np.bincount(idx, weights=wb, minlength=n_bins)
                sy = np.bincount(idx, weights=wb * y, minlength=n_bins)
                with np.errstate(invalid="ignore", divide="ignore"):
                    fracs[b] = np.where(c > 0, sy / np.where(c > 0, c, 1), np.nan)
        low, high = bootstrap_intervals(frac, fracs, confidence=confidence)
    return ReliabilityCurve(edges, count, mean_score, frac, low, high)


@dataclass(frozen=True)
class ReliabilityStats:
    """Mergeable sufficient statistics of a reliability diagram on ``n_fine`` equal-width bins.

    ``count``, ``sum_score`` and ``sum_correct`` per fine bin. Partial statistics of data
    partitions add up (``a + b``), and any equal-width binning whose bin count divides ``n_fine``
    can be read off without rescanning the scores (:meth:`curve`). Exact metrics at the coarse
    bins should still come from :func:`expected_calibration_error` on the raw scores, since a
    score on a bin boundary may round differently at the two resolutions.
    """

    count: FloatArray
    sum_score: FloatArray
    sum_correct: FloatArray

    @classmethod
    def from_arrays(
        cls, correct: ArrayLike, score: ArrayLike, *, n_fine: int = 1000
    ) -> ReliabilityStats:
        """Accumulate statistics in one pass."""
        pairs = check_pair(correct, score)
        idx, _ = bin_indices(pairs.s, n_bins=n_fine)
        return cls(*bin_sums(pairs, idx, n_fine, overwrite=True))

    @property
    def n_fine(self) -> int:
        return int(self.count.size)

    def __add__(self, other: ReliabilityStats) -> ReliabilityStats:
        if self.n_fine != other.n_fine:
            raise DataError(f"cannot merge statistics on {self.n_fine} and {other.n_fine} bins")
        return ReliabilityStats(
            self.count + other.count,
            self.sum_score + other.sum_score,
            self.sum_correct + other.sum_correct,
        )

    def curve(self, n_bins: int = 10) -> ReliabilityCurve:
        """The reliability curve on ``n_bins`` equal-width bins (``n_bins`` must divide ``n_fine``)."""
        if self.n_fine % n_bins:
            raise DataError(f"n_bins={n_bins} does not divide the {self.n_fine} fine bins")
        k = self.n_fine // n_bins
        count = self.count.reshape(n_bins, k).sum(axis=1)
        ss = self.sum_score.reshape(n_bins, k).sum(axis=1)
        sy = self.sum_correct.reshape(n_bins, k).sum(axis=1)
        safe = np.where(count > 0, count, 1)
        nan = np.full(n_bins, np.nan)
        return ReliabilityCurve(
            np.linspace(0.0, 1.0, n_bins + 1),
            count,
            np.where(count > 0, ss / safe, np.nan),
            np.where(count > 0, sy / safe, np.nan),
            nan,
            nan.copy(),
        )

    def ece(self, n_bins: int = 10) -> float:
        """ECE read off the fine statistics (equal-width bins)."""
        total = self.count.sum()
        if total == 0:
            return float("nan")
        c = self.curve(n_bins)
        gap = np.abs(np.nan_to_num(c.frac_correct) - np.nan_to_num(c.mean_score))
        return float((c.count * gap).sum() / total)
