"""Choosing a domain's L2 penalty λ by cross-validation grouped by utterance (``l2="auto"``).

A small domain trained with a fixed λ learns noise: on data where the device carries no
information, its device weights still wander far from zero. With ``l2="auto"`` each domain picks
its own λ from :data:`L2_GRID` (a log grid) by K-fold cross-validation in which every utterance
falls in exactly one fold (so the hypotheses of one utterance are never split between fitting and
scoring). Folds come from a hash of the utterance id (:func:`reranker.bootstrap.utterance_keys`),
so they do not depend on row order. Each candidate λ is fitted on K - 1 folds and scored on the
held-out fold by the domain's own loss, unpenalised (R1 expected SemER, R2 cross-entropy, or R3
= R1 + α·R2), averaged over held-out utterances; competitors (``scope="utterance"``) follow their
utterance into its fold. The λ with the lowest mean held-out loss wins; on a tie the larger λ
wins. The chosen λ, the grid and every CV score are recorded in the weights file.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning

from reranker.bootstrap import utterance_keys
from reranker.errors import DataError
from reranker.estimator import Competitors, DomainReranker
from reranker.losses import make_problem, objective
from reranker.options import AUTO

__all__ = ["AUTO", "L2_GRID", "choose_l2"]

L2_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
"""Candidate λ of ``l2="auto"``."""
FOLDS = 3


def _subset(competitors: Competitors | None, keep: set[Any]) -> Competitors | None:
    if competitors is None:
        return None
    groups = np.asarray(competitors.groups, dtype=object)
    mask = np.fromiter((g in keep for g in groups), dtype=bool, count=groups.size)
    return Competitors(
        groups[mask], np.asarray(competitors.z)[mask], np.asarray(competitors.semer)[mask]
    )


def _held_out_loss(
    model: DomainReranker,
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    groups: NDArray[np.object_],
    semer: NDArray[np.float64] | None,
    competitors: Competitors | None,
) -> float:
    comp: dict[str, Any] = {}
    if competitors is not None:
        comp = {
            "competitor_groups": competitors.groups,
            "competitor_z": competitors.z,
            "competitor_semer": competitors.semer,
        }
    problem = make_problem(X, y, groups, semer=semer, temperature=float(model.temperature), **comp)
    theta = np.r_[model.coef_, model.intercept_]
    value, _ = objective(theta, problem, loss=model.loss, alpha=float(model.alpha), l2=0.0)  # type: ignore[arg-type]
    return float(value)


def choose_l2(
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    groups: NDArray[np.object_],
    *,
    semer: NDArray[np.float64] | None,
    competitors: Competitors | None,
    params: dict[str, Any],
    grid: Sequence[float] = L2_GRID,
    folds: int = FOLDS,
) -> tuple[float, dict[str, Any]]:
    """Pick λ for one domain by utterance-grouped K-fold cross-validation.

    Parameters
    ----------
    X, y, groups, semer, competitors
        The domain's training rows, as for :meth:`DomainReranker.fit`.
    params : dict
        The other :class:`DomainReranker` options (``loss``, ``alpha``, ``scope``, ...).
    grid : sequence of float
    folds : int

    Returns
    -------
    l2 : float
        The chosen λ (the largest λ of the grid when there are fewer utterances than folds).
    report : dict
        ``{"folds", "grid", "cv_loss"}``: the mean held-out loss of each λ.
    """
    if folds < 2:
        raise DataError(f"folds must be >= 2, got {folds}")
    utts = np.asarray(groups, dtype=object)
    unique = np.unique(utts.astype(str))
    if unique.size < folds:
        return float(max(grid)), {"folds": folds, "grid": list(grid), "cv_loss": None}
    fold_of = dict(zip(unique, utterance_keys(unique) % np.uint64(folds), strict=True))
    fold = np.array([fold_of[str(g)] for g in utts], dtype=np.int64)
    options = {k: v for k, v in params.items() if k != "l2"}
    totals = np.zeros(len(grid))
    for k in range(folds):
        test = fold == k
        if not test.any() or test.all():
            continue
        train_keep = set(utts[~test].tolist())
        test_keep = set(utts[test].tolist())
        n_test = len(test_keep)
        for j, lam in enumerate(grid):
            model = DomainReranker(l2=float(lam), **options)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(
                    X[~test],
                    y[~test],
                    groups=utts[~test],
                    semer=None if semer is None else semer[~test],
                    competitors=_subset(competitors, train_keep),
                )
            loss = _held_out_loss(
                model,
                X[test],
                y[test],
                utts[test],
                None if semer is None else semer[test],
                _subset(competitors, test_keep),
            )
            totals[j] += loss * n_test
    cv = totals / unique.size
    best = max(range(len(grid)), key=lambda j: (-round(float(cv[j]), 12), grid[j]))
    return float(grid[best]), {
        "folds": folds,
        "grid": [float(g) for g in grid],
        "cv_loss": [float(v) for v in cv],
    }
