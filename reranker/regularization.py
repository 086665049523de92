"""Penalties chosen by cross-validation grouped by utterance: ``l2="auto"`` and the device penalty.

A small domain trained with a fixed λ learns noise: on data where the device carries no
information, its device weights still wander far from zero. Two penalties are chosen per domain
by K-fold cross-validation in which every utterance falls in exactly one fold (so the hypotheses
of one utterance are never split between fitting and scoring). Folds come from a hash of the
utterance id (:func:`reranker.bootstrap.utterance_keys`), so they do not depend on row order.
Each candidate is fitted on K - 1 folds and scored on the held-out fold by the domain's own loss,
unpenalised (R1 expected SemER, R2 cross-entropy, or R3 = R1 + α·R2), averaged over held-out
utterances; competitors (``scope="utterance"``) follow their utterance into its fold.

- ``l2="auto"`` (:func:`choose_l2`): λ of every weight from :data:`L2_GRID`; the λ with the
  lowest mean held-out loss wins, the larger λ on a tie.
- The **device penalty** (:func:`choose_device_l2`, ``device_l2="auto"``, the default of every
  training entry point): with λ fixed, the device one-hot weights get their own penalty
  λ_dev ≥ λ from :data:`DEVICE_L2_GRID`. The held-out utterances are cut into :data:`BLOCKS`
  blocks per fold. By the one-standard-error rule the **largest** λ_dev whose mean held-out loss
  exceeds the best candidate's by at most one standard error of that *difference* wins: a device
  preference is kept only when held-out data clearly supports it. The standard error is paired:
  every candidate is scored on the same held-out utterances, so it is the spread over blocks of
  the candidate's loss minus the best one's, not the spread of the losses themselves (which is
  dominated by some utterances being harder than others, and silenced real device preferences).

A penalty λ_dev on some weights and λ on the others is fitted exactly by scaling those features
by :math:`s = \\sqrt{λ/λ_{dev}}` and penalising every weight by λ (the scaled weight is the
weight divided by s), then multiplying their weights by s back. The choices, the grids and every
CV score are recorded in the weights file (``options``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning

from reranker._validation import check_choice
from reranker.bootstrap import utterance_keys
from reranker.errors import ParameterError
from reranker.estimator import Competitors, DomainReranker
from reranker.features import DEVICE_PREFIX
from reranker.losses import make_problem, objective
from reranker.options import AUTO

__all__ = [
    "AUTO",
    "BLOCKS",
    "DEVICE_L2_GRID",
    "L2_GRID",
    "choose_device_l2",
    "choose_l2",
    "fit_penalised",
    "fit_with_device_penalty",
]

L2_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
"""Candidate λ of ``l2="auto"``."""
DEVICE_L2_GRID: tuple[float, ...] = (1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0)
"""Candidate penalties of the device weights (those below the domain's λ are skipped)."""
ONE_SE = "one standard error"
"""The device penalty's rule (the other: ``"minimum"``, the lowest mean held-out loss)."""
RULES = (ONE_SE, "minimum")
FOLDS = 3
BLOCKS = 5
"""Blocks of held-out utterances per fold, for the standard error of the one-SE rule."""

Fit = Callable[[float, NDArray[np.bool_]], DomainReranker]


def _subset(competitors: Competitors | None, keep: set[Any]) -> Competitors | None:
    if competitors is None:
        return None
    groups = np.asarray(competitors.groups, dtype=object)
    mask = np.fromiter((g in keep for g in groups), dtype=bool, count=groups.size)
    return Competitors(
        groups[mask], np.asarray(competitors.z)[mask], np.asarray(competitors.semer)[mask]
    )


@dataclass(frozen=True)
class _Rows:
    """A domain's training rows, as for :meth:`DomainReranker.fit`."""

    X: NDArray[np.float64]
    y: NDArray[np.int64]
    groups: NDArray[np.object_]
    semer: NDArray[np.float64] | None
    competitors: Competitors | None

    def take(self, mask: NDArray[np.bool_]) -> _Rows:
        keep = set(self.groups[mask].tolist())
        semer = None if self.semer is None else self.semer[mask]
        return _Rows(
            self.X[mask], self.y[mask], self.groups[mask], semer, _subset(self.competitors, keep)
        )

    def fit(self, model: DomainReranker) -> DomainReranker:
        return model.fit(
            self.X, self.y, groups=self.groups, semer=self.semer, competitors=self.competitors
        )


def _held_out_loss(model: DomainReranker, rows: _Rows) -> float:
    comp: dict[str, Any] = {}
    if rows.competitors is not None:
        comp = {
            "competitor_groups": rows.competitors.groups,
            "competitor_z": rows.competitors.z,
            "competitor_semer": rows.competitors.semer,
        }
    problem = make_problem(
        rows.X,
        rows.y,
        rows.groups,
        semer=rows.semer,
        temperature=float(model.temperature),
        **comp,
    )
    theta = np.r_[model.coef_, model.intercept_]
    value, _ = objective(theta, problem, loss=model.loss, alpha=float(model.alpha), l2=0.0)  # type: ignore[arg-type]
    return float(value)


def _assignments(
    groups: NDArray[np.object_], folds: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Fold and block of each row, from the hash of its utterance id; and the utterance count."""
    unique = np.unique(groups.astype(str))
    keys = utterance_keys(unique)
    fold_of = dict(zip(unique, (keys % np.uint64(folds)).astype(np.int64), strict=True))
    block_of = dict(
        zip(unique, ((keys // np.uint64(folds)) % np.uint64(BLOCKS)).astype(np.int64), strict=True)
    )
    fold = np.array([fold_of[str(g)] for g in groups], dtype=np.int64)
    block = np.array([block_of[str(g)] for g in groups], dtype=np.int64)
    return fold, block, int(unique.size)


@dataclass(frozen=True)
class _Scores:
    """Held-out losses of the candidates: the mean over utterances and each block's mean."""

    mean: NDArray[np.float64]
    per_block: NDArray[np.float64]
    weight: NDArray[np.float64]

    def paired_se(self, reference: int) -> NDArray[np.float64]:
        """Standard error of each candidate's mean loss minus the ``reference`` candidate's.

        Every candidate is scored on the same held-out utterances, so what makes one block
        harder than another cancels in the difference; its spread over blocks is what is left.
        """
        diff = self.per_block - self.per_block[reference]
        centre = diff @ self.weight
        spread = ((diff - centre[:, None]) ** 2) @ self.weight
        return np.sqrt(spread / max(1, self.weight.size - 1))


def _cross_validate(rows: _Rows, fit: Fit, grid: Sequence[float], folds: int) -> _Scores:
    """Mean held-out loss of each candidate, and its loss on every block of held-out utterances."""
    fold, block, n_utt = _assignments(rows.groups, folds)
    sums = np.zeros((len(grid), folds * BLOCKS))
    sizes = np.zeros(folds * BLOCKS)
    for k in range(folds):
        test = fold == k
        if not test.any() or test.all():
            continue
        parts = [(b, rows.take(test & (block == b))) for b in range(BLOCKS)]
        parts = [(b, part) for b, part in parts if part.y.size]
        for b, part in parts:
            sizes[k * BLOCKS + b] = np.unique(part.groups.astype(str)).size
        for j, value in enumerate(grid):
            with warnings.catch_warnings():  # a candidate's convergence is not the final fit's
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = fit(float(value), ~test)
            for b, part in parts:
                sums[j, k * BLOCKS + b] = _held_out_loss(model, part) * sizes[k * BLOCKS + b]
    used = sizes > 0
    return _Scores(sums.sum(axis=1) / n_utt, sums[:, used] / sizes[used], sizes[used] / n_utt)


def _cv_rows(
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    groups: NDArray[np.object_],
    semer: NDArray[np.float64] | None,
    competitors: Competitors | None,
    folds: int,
) -> _Rows | None:
    """The rows a penalty search cross-validates; None when there are fewer utterances than folds."""
    if folds < 2:
        raise ParameterError(f"folds must be >= 2, got {folds}")
    utts = np.asarray(groups, dtype=object)
    if np.unique(utts.astype(str)).size < folds:
        return None
    return _Rows(X, y, utts, semer, competitors)


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
    rows = _cv_rows(X, y, groups, semer, competitors, folds)
    if rows is None:
        return float(max(grid)), {"folds": folds, "grid": list(grid), "cv_loss": None}
    options = {k: v for k, v in params.items() if k not in ("l2", "device_l2")}

    def fit(lam: float, train: NDArray[np.bool_]) -> DomainReranker:
        return rows.take(train).fit(DomainReranker(l2=lam, **options))

    cv = _cross_validate(rows, fit, grid, folds).mean
    best = max(range(len(grid)), key=lambda j: (-round(float(cv[j]), 12), grid[j]))
    return float(grid[best]), {
        "folds": folds,
        "grid": [float(g) for g in grid],
        "cv_loss": [float(v) for v in cv],
    }


def fit_with_device_penalty(
    model: DomainReranker,
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    groups: NDArray[np.object_],
    *,
    semer: NDArray[np.float64] | None,
    competitors: Competitors | None,
    device: NDArray[np.bool_],
    device_l2: float,
) -> DomainReranker:
    """Fit ``model`` with penalty ``device_l2`` on the weights of the ``device`` columns.

    The other weights keep ``model.l2``; with ``model.l2 == 0`` or no device column this is a
    plain fit. ``coef_`` applies to the raw features, as always.
    """
    lam = float(model.l2)
    if lam <= 0 or not device.any() or device_l2 == lam:
        return _Rows(X, y, groups, semer, competitors).fit(model)
    s = np.ones(X.shape[1])
    s[device] = np.sqrt(lam / float(device_l2))
    _Rows(X * s, y, groups, semer, competitors).fit(model)
    model.coef_ = model.coef_ * s
    model.intercept_ = float(model.intercept_)
    return model


def choose_device_l2(
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    groups: NDArray[np.object_],
    *,
    semer: NDArray[np.float64] | None,
    competitors: Competitors | None,
    params: dict[str, Any],
    device: NDArray[np.bool_],
    grid: Sequence[float] = DEVICE_L2_GRID,
    folds: int = FOLDS,
    rule: str = ONE_SE,
) -> tuple[float, dict[str, Any]]:
    """Pick the device penalty λ_dev ≥ λ of one domain (``params["l2"]``, a number).

    The candidates are λ and the values of ``grid`` above it; the largest candidate whose mean
    held-out loss exceeds the lowest by at most one (paired) standard error of the difference
    wins (``rule="minimum"``: the lowest mean held-out loss).

    Returns
    -------
    device_l2 : float
        The chosen penalty (the largest candidate when there are fewer utterances than folds).
    report : dict
        ``{"folds", "blocks", "grid", "cv_loss", "cv_se", "rule"}``; ``cv_se`` is the standard
        error of each candidate's mean held-out loss minus the best candidate's.
    """
    check_choice("rule", rule, RULES)
    lam = float(params["l2"])
    candidates = [lam, *sorted(float(g) for g in grid if g > lam)]
    report: dict[str, Any] = {
        "folds": folds,
        "blocks": BLOCKS,
        "grid": candidates,
        "rule": rule,
        "cv_loss": None,
        "cv_se": None,
    }
    rows = _cv_rows(X, y, groups, semer, competitors, folds)
    if rows is None:
        return candidates[-1], report
    options = {k: v for k, v in params.items() if k != "device_l2"}

    def fit(value: float, train: NDArray[np.bool_]) -> DomainReranker:
        part = rows.take(train)
        return fit_with_device_penalty(
            DomainReranker(**options),
            part.X,
            part.y,
            part.groups,
            semer=part.semer,
            competitors=part.competitors,
            device=device,
            device_l2=value,
        )

    scores = _cross_validate(rows, fit, candidates, folds)
    cv = scores.mean
    best = int(np.argmin(cv))
    se = scores.paired_se(best)
    margin = se if rule == ONE_SE else np.zeros_like(se)
    chosen = max(j for j in range(len(candidates)) if cv[j] <= cv[best] + margin[j] + 1e-12)
    report["cv_loss"] = [float(v) for v in cv]
    report["cv_se"] = [float(v) for v in se]
    return candidates[chosen], report


def fit_penalised(
    params: dict[str, Any],
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    groups: NDArray[np.object_],
    *,
    semer: NDArray[np.float64] | None,
    competitors: Competitors | None,
    features: Sequence[str],
) -> tuple[DomainReranker, dict[str, Any]]:
    """Fit one domain's re-ranker, choosing its penalties first where they are ``"auto"``.

    ``params`` are :class:`DomainReranker` options plus, optionally, ``device_l2`` (a number,
    ``"auto"``, or absent or None: the same as ``l2``); ``features`` names the columns of ``X``
    (device columns start with ``device=``). Returns the fitted model and the options to record:
    ``l2``, ``device_l2`` (when given) and, for each penalty chosen by cross-validation, its
    search (``l2_search``, ``device_l2_search``).
    """
    options = dict(params)
    device_l2 = options.pop("device_l2", None)
    record: dict[str, Any] = {}
    if options["l2"] == AUTO:
        options["l2"], record["l2_search"] = choose_l2(
            X, y, groups, semer=semer, competitors=competitors, params=options
        )
    device = np.array([str(f).startswith(DEVICE_PREFIX) for f in features], dtype=bool)
    if device_l2 == AUTO:
        device_l2 = options["l2"]
        if device.any() and options["l2"] > 0:
            device_l2, record["device_l2_search"] = choose_device_l2(
                X, y, groups, semer=semer, competitors=competitors, params=options, device=device
            )
    record["l2"] = float(options["l2"])
    if device_l2 is not None:
        record["device_l2"] = float(device_l2)
    device_l2 = options["l2"] if device_l2 is None else device_l2
    model = fit_with_device_penalty(
        DomainReranker(**options),
        X,
        y,
        groups,
        semer=semer,
        competitors=competitors,
        device=device,
        device_l2=float(device_l2),
    )
    return model, record
