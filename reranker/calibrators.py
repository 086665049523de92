"""Post-hoc calibrators of scores, for comparison with the re-ranker's own calibration.

- **Temperature scaling**: ``p = sigmoid(logit(s) / T)`` with the single temperature ``T > 0``
  minimising the log loss of ``p`` against the correct bit (Guo et al. 2017, binary form).
- **Isotonic regression**: the non-decreasing step function of ``s`` minimising the squared
  error to the correct bit (pool adjacent violators; Zadrozny and Elkan 2002).

Both are fitted on one set of utterances and applied to another: :func:`cross_fit` produces
out-of-fold calibrated scores by splitting **utterances** into folds, so a calibrated curve is
never judged on the data it was fitted to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit, logit
from sklearn.isotonic import isotonic_regression

from reranker._validation import check_choice, check_unit_interval, references_needed
from reranker.errors import DataError, TrainingError
from reranker.tables import ScoredTable, score_table

__all__ = [
    "IsotonicCalibrator",
    "TemperatureCalibrator",
    "cross_fit",
    "fit_isotonic",
    "fit_temperature",
    "recalibrate",
    "utterance_folds",
]

FloatArray = NDArray[np.float64]
Method = Literal["temperature", "isotonic"]
METHODS: tuple[str, ...] = ("temperature", "isotonic")
_EPS = 1e-6
_LOG_T_BOUNDS = (-5.0, 5.0)


def _check(correct: ArrayLike, score: ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(correct, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise DataError(f"correct and score must have the same length, got {y.size} and {s.size}")
    if y.size == 0:
        raise DataError("cannot fit a calibrator on an empty sample")
    check_unit_interval(s, "score")
    check_unit_interval(y, "correct")
    return y, s


@dataclass(frozen=True)
class TemperatureCalibrator:
    """``p = sigmoid(logit(clip(s, 1e-6, 1 - 1e-6)) / temperature)``."""

    temperature: float

    def transform(self, score: ArrayLike) -> FloatArray:
        s = np.clip(np.asarray(score, dtype=np.float64), _EPS, 1.0 - _EPS)
        return expit(logit(s) / self.temperature)


def fit_temperature(correct: ArrayLike, score: ArrayLike) -> TemperatureCalibrator:
    """Fit the temperature minimising the mean log loss.

    .. math:: T^* = \\arg\\min_T -\\frac1N \\sum_i y_i \\log\\sigma(z_i/T) + (1-y_i)\\log\\sigma(-z_i/T)

    with ``z = logit(s)``; the search runs over ``log T`` in ``[-5, 5]`` (bounded Brent).

    Raises
    ------
    TrainingError
        If the search does not converge, or stops at a bound of its interval (the best
        temperature lies outside ``[e^-5, e^5]``, e.g. on a perfectly separable sample).
    """
    y, s = _check(correct, score)
    z = logit(np.clip(s, _EPS, 1.0 - _EPS))

    def loss(log_t: float) -> float:
        u = z * np.exp(-log_t)
        return float(-(y * log_expit(u) + (1.0 - y) * log_expit(-u)).mean())

    low, high = _LOG_T_BOUNDS
    res = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    if not res.success:
        raise TrainingError(f"temperature scaling did not converge: {res.message}")
    if min(res.x - low, high - res.x) < 1e-3:
        raise TrainingError(
            f"temperature scaling stopped at its bound T = {np.exp(res.x):.3g}: the best "
            f"temperature lies outside [{np.exp(low):.3g}, {np.exp(high):.3g}]"
        )
    return TemperatureCalibrator(float(np.exp(res.x)))


@dataclass(frozen=True)
class IsotonicCalibrator:
    """A non-decreasing step function: ``thresholds`` (sorted scores) and fitted ``values``.

    Scores between thresholds are linearly interpolated; scores outside are clipped.
    """

    thresholds: FloatArray
    values: FloatArray

    def transform(self, score: ArrayLike) -> FloatArray:
        s = np.asarray(score, dtype=np.float64)
        return np.interp(s, self.thresholds, self.values)


def fit_isotonic(correct: ArrayLike, score: ArrayLike) -> IsotonicCalibrator:
    """Fit the isotonic (non-decreasing) regression of the correct bit on the score.

    Equal scores are pooled first (their mean correct, weighted by count), then pool adjacent
    violators (:func:`sklearn.isotonic.isotonic_regression`) runs over the distinct scores.
    """
    y, s = _check(correct, score)
    uniq, inverse = np.unique(s, return_inverse=True)
    w = np.bincount(inverse).astype(np.float64)
    mean_y = np.bincount(inverse, weights=y) / w
    fitted = isotonic_regression(mean_y, sample_weight=w, increasing=True)
    return IsotonicCalibrator(uniq, fitted)


def cross_fit(
    correct: ArrayLike,
    score: ArrayLike,
    groups: ArrayLike,
    *,
    method: Method,
    n_folds: int = 2,
    seed: int = 0,
) -> FloatArray:
    """Out-of-fold calibrated scores: each fold of utterances is calibrated by the others.

    Parameters
    ----------
    correct, score : array-like of shape (n,)
    groups : array-like of shape (n,)
        Utterance of each row; folds never split an utterance.
    method : {"temperature", "isotonic"}
    n_folds : int, default 2
    seed : int, default 0
        Seed of the random assignment of utterances to folds.
    """
    y, s = _check(correct, score)
    g = np.asarray(groups)
    if g.shape != s.shape:
        raise DataError("groups must be as long as score")
    check_choice("method", method, METHODS)
    fold = utterance_folds(g, n_folds, seed=seed)
    fit = fit_temperature if method == "temperature" else fit_isotonic
    out = np.empty_like(s)
    for k in range(n_folds):
        test = fold == k
        calibrator = fit(y[~test], s[~test])
        out[test] = calibrator.transform(s[test])
    return out


def utterance_folds(groups: ArrayLike, n_folds: int, *, seed: int = 0) -> NDArray[np.int64]:
    """The fold of each row: utterances assigned at random (``seed``) to ``n_folds`` folds."""
    if n_folds < 2:
        raise DataError(f"n_folds must be at least 2, got {n_folds}")
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_groups < n_folds:
        raise DataError(f"need at least {n_folds} utterances to cross-fit, got {n_groups}")
    rng = np.random.default_rng(seed)
    return np.asarray((rng.permutation(n_groups) % n_folds)[codes], dtype=np.int64)


def recalibrate(scored: ScoredTable, method: Method, *, seed: int = 0) -> ScoredTable:
    """The table re-scored by a post-hoc calibrator, cross-fitted over two folds of utterances.

    Each utterance's scores are mapped by a calibrator fitted on the other fold's hypotheses
    (:func:`cross_fit`), so the calibrated curve is judged out of sample.
    """
    if scored.correct is None:
        raise DataError(references_needed("a calibrator"))
    score = cross_fit(scored.correct, scored.score, scored.codes, method=method, seed=seed)
    errors = (scored.semer, scored.correct) if scored.semer is not None else None
    return score_table(
        scored.hypotheses, np.clip(score, 0.0, 1.0), errors=errors, codes=scored.codes
    )
