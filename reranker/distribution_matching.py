"""Cross-domain score distribution matching, then one shared calibrator.

Wang et al. (NAACL 2021, industry track) name *score distribution matching* as a way to make the
scores of independently built domains comparable; their details are not public. This module is
this project's reading of the idea, offered as a post-hoc option next to the re-ranker's losses:

1. **Per-domain quantile mapping** onto one shared reference distribution. On the fitting data,
   each domain d has the empirical distribution function F_d of its scores; the reference is the
   distribution of all domains' scores pooled, with quantile function Q. A score s of domain d
   becomes ``Q(F_d(s))``: the score the pooled distribution has at the same quantile. After the
   mapping every domain's scores follow the same distribution (on the fitting data), so no domain
   wins the top-1 merely because its NLU is more confident. ``F_d`` is interpolated linearly
   between the domain's sorted scores; a domain unseen in fitting keeps the pooled F (identity).
2. **One shared calibrator** on the mapped scores: isotonic regression of the correct bit
   (:func:`reranker.calibrators.fit_isotonic`), so the matched scores are probabilities again.
   Note that the mapping keeps each domain's order but a shared calibrator cannot restore
   per-domain differences in accuracy at equal quantile: that is the price of matching
   distributions rather than learning per-domain weights (R2, R3).

Fit on one split (e.g. ``dev``), apply to another; :func:`rematch` cross-fits it over two folds
of utterances of one table (each fold matched and calibrated by a fit on the other), so it can be
judged on the same plots as the re-ranker's losses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reranker._validation import references_needed
from reranker.calibrators import IsotonicCalibrator, fit_isotonic, utterance_folds
from reranker.errors import DataError
from reranker.tables import ScoredTable, score_table

__all__ = ["DistributionMatcher", "cross_fit_matching", "fit_distribution_matching", "rematch"]

_GRID = 201
"""Quantile levels kept per domain (0, 0.005, ..., 1)."""


@dataclass(frozen=True)
class DistributionMatcher:
    """Per-domain quantiles, the pooled reference quantiles and the shared calibrator."""

    levels: NDArray[np.float64]
    domain_quantiles: Mapping[str, NDArray[np.float64]]
    reference_quantiles: NDArray[np.float64]
    calibrator: IsotonicCalibrator

    def matched(self, domains: ArrayLike, score: ArrayLike) -> NDArray[np.float64]:
        """``Q(F_d(s))``: each score mapped onto the reference distribution."""
        return _matched(
            self.levels, self.domain_quantiles, self.reference_quantiles, domains, score
        )

    def transform(self, domains: ArrayLike, score: ArrayLike) -> NDArray[np.float64]:
        """Matched, then calibrated scores in [0, 1]."""
        return np.clip(self.calibrator.transform(self.matched(domains, score)), 0.0, 1.0)


def _matched(
    levels: NDArray[np.float64],
    domain_quantiles: Mapping[str, NDArray[np.float64]],
    reference_quantiles: NDArray[np.float64],
    domains: ArrayLike,
    score: ArrayLike,
) -> NDArray[np.float64]:
    """Each score mapped through its domain's distribution function onto the reference
    quantiles (scores of a domain without quantiles are kept)."""
    d = np.asarray(domains, dtype=object)
    s = np.asarray(score, dtype=np.float64)
    out = s.copy()
    for name, quantiles in domain_quantiles.items():
        mask = d == name
        if mask.any():
            u = _cdf(quantiles, levels, s[mask])
            out[mask] = np.interp(u, levels, reference_quantiles)
    return out


def _cdf(
    quantiles: NDArray[np.float64], levels: NDArray[np.float64], s: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Empirical distribution function from sorted quantiles (ties: the middle of their levels)."""
    left = np.searchsorted(quantiles, s, side="left")
    right = np.searchsorted(quantiles, s, side="right")
    tied = right > left
    lo = np.clip(left - 1, 0, quantiles.size - 1)
    hi = np.clip(left, 0, quantiles.size - 1)
    span = quantiles[hi] - quantiles[lo]
    frac = np.where(span > 0, (s - quantiles[lo]) / np.where(span > 0, span, 1.0), 0.0)
    between = levels[lo] + frac * (levels[hi] - levels[lo])
    middle = (
        levels[np.clip(left, 0, levels.size - 1)] + levels[np.clip(right - 1, 0, levels.size - 1)]
    ) / 2
    out = np.where(tied, middle, between)
    out = np.where(right == 0, 0.0, out)
    return np.where(left >= quantiles.size, 1.0, out)


def fit_distribution_matching(
    domains: ArrayLike, score: ArrayLike, correct: ArrayLike
) -> DistributionMatcher:
    """Fit the per-domain quantile maps and the shared isotonic calibrator.

    Parameters
    ----------
    domains : array-like of str, shape (n,)
        Domain of each hypothesis.
    score : array-like of float in [0, 1], shape (n,)
        Scores to match (e.g. R0's ``domain_score * intent_score * slot_score``).
    correct : array-like of {0, 1}, shape (n,)
        The correct bit of each hypothesis.
    """
    d = np.asarray(domains, dtype=object)
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if not (d.shape == s.shape == y.shape) or s.ndim != 1 or s.size == 0:
        raise DataError(
            f"domains, score and correct must be equal-length and non-empty, got {d.size}, {s.size}, {y.size}"
        )
    if not (np.isfinite(s).all() and ((s >= 0) & (s <= 1)).all()):
        raise DataError("score must lie in [0, 1]")
    levels = np.linspace(0.0, 1.0, _GRID)
    per_domain = {str(name): np.quantile(s[d == name], levels) for name in np.unique(d)}
    reference = np.quantile(s, levels)
    calibrator = fit_isotonic(y, _matched(levels, per_domain, reference, d, s))
    return DistributionMatcher(levels, per_domain, reference, calibrator)


def cross_fit_matching(
    domains: ArrayLike,
    score: ArrayLike,
    correct: ArrayLike,
    groups: ArrayLike,
    *,
    n_folds: int = 2,
    seed: int = 0,
) -> NDArray[np.float64]:
    """Out-of-fold matched and calibrated scores: each fold of utterances by a fit on the others.

    Folds are those of :func:`reranker.calibrators.cross_fit` (same ``seed``, same utterances).
    """
    d = np.asarray(domains, dtype=object)
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    fold = utterance_folds(groups, n_folds, seed=seed)
    if fold.shape != s.shape:
        raise DataError("groups must be as long as score")
    out = np.empty_like(s)
    for k in range(n_folds):
        test = fold == k
        matcher = fit_distribution_matching(d[~test], s[~test], y[~test])
        out[test] = matcher.transform(d[test], s[test])
    return out


def rematch(scored: ScoredTable, *, seed: int = 0) -> ScoredTable:
    """The table re-scored by distribution matching of its scores, cross-fitted over two folds."""
    if scored.correct is None:
        raise DataError(references_needed("distribution matching"))
    domains = scored.hypotheses["domain"].astype(str).to_numpy(dtype=object)
    score = cross_fit_matching(domains, scored.score, scored.correct, scored.codes, seed=seed)
    errors = (scored.semer, scored.correct) if scored.semer is not None else None
    return score_table(scored.hypotheses, score, errors=errors, codes=scored.codes)
