"""Validated ``(correct, score, weight)`` arrays and their per-bin sums, for the calibration metrics.

Every calibration metric starts from the same three arrays and most reduce them to per-bin
counts, score sums and correct sums. Both steps run over tens of millions of scores, so they
are written to touch the data as few times as possible: validation is a min and a max per array
(a NaN fails both comparisons), and when ``correct`` holds only 0 and 1 (bool or integers, the
usual case) the bin index and the correct bit are packed into one key, ``2 * bin + correct``,
so a single unweighted and a single score-weighted ``np.bincount`` give all three sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reranker._validation import check_unit_interval
from reranker.errors import DataError

__all__ = ["ScoredPairs", "bin_sums", "check_pair"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ScoredPairs:
    """Validated calibration input.

    Attributes
    ----------
    y : ndarray
        The correct bit: ``uint8``/integer 0 and 1 when ``binary``, else float64 in [0, 1].
    s : ndarray of float64
        Scores in [0, 1].
    w : ndarray of float64 or None
        Non-negative weights; ``None`` means all ones.
    binary : bool
    """

    y: NDArray[np.generic]
    s: FloatArray
    w: FloatArray | None
    binary: bool

    @property
    def total(self) -> float:
        """Total weight (the number of pairs without weights)."""
        return float(self.s.size) if self.w is None else float(self.w.sum())

    def weights(self) -> FloatArray:
        """The weights as an array (ones without weights)."""
        return np.ones_like(self.s) if self.w is None else self.w

    def y_float(self) -> FloatArray:
        """The correct bit as float64."""
        return np.asarray(self.y, dtype=np.float64)


def _check_correct(correct: ArrayLike) -> tuple[NDArray[np.generic], bool]:
    y = np.asarray(correct).ravel()
    if y.dtype == np.bool_:
        return y.view(np.uint8), True
    if np.issubdtype(y.dtype, np.integer):
        check_unit_interval(y, "correct")
        return y, True
    y = np.asarray(y, dtype=np.float64)
    check_unit_interval(y, "correct")
    return y, False


def check_pair(
    correct: ArrayLike, score: ArrayLike, sample_weight: ArrayLike | None = None
) -> ScoredPairs:
    """Validate ``correct`` and ``score`` (in [0, 1], equal lengths) and optional weights."""
    s = np.asarray(score, dtype=np.float64).ravel()
    y, binary = _check_correct(correct)
    if y.shape != s.shape:
        raise DataError(f"correct and score must have the same length, got {y.size} and {s.size}")
    check_unit_interval(s, "score")
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64).ravel()
        if w.shape != s.shape or not (w.size == 0 or w.min() >= 0):
            raise DataError("sample_weight must be non-negative and as long as score")
    return ScoredPairs(y, s, w, binary)


def bin_sums(
    pairs: ScoredPairs, idx: NDArray[np.intp], n_bins: int, *, overwrite: bool = False
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per bin: total weight, weighted score sum and weighted correct sum.

    ``idx`` is the bin of each pair, in ``0 .. n_bins - 1``; with ``overwrite`` its memory may
    be reused.
    """
    y, s, w = pairs.y, pairs.s, pairs.w
    if w is None and pairs.binary:
        reuse = overwrite and idx.dtype == np.intp
        key = np.multiply(idx, 2, out=idx if reuse else None, dtype=np.intp)
        key += y
        by_bit = np.bincount(key, minlength=2 * n_bins).astype(np.float64)
        score_by_bit = np.bincount(key, weights=s, minlength=2 * n_bins).astype(np.float64)
        return (
            by_bit[0::2] + by_bit[1::2],
            score_by_bit[0::2] + score_by_bit[1::2],
            by_bit[1::2],
        )
    weights = [None, s, pairs.y_float()] if w is None else [w, w * s, w * pairs.y_float()]
    count, sum_s, sum_y = (
        np.bincount(idx, weights=v, minlength=n_bins).astype(np.float64) for v in weights
    )
    return count, sum_s, sum_y
