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
  λ_dev ≥ λ from :data:`DEVICE_L2_GRID`. The K-fold split is repeated :data:`SPLITS` times
  (split s hashes the id salted with s) and each utterance's held-out loss is averaged over the
  splits. The device terms are **kept** only when the largest candidate's mean held-out loss
  exceeds the best candidate's by more than :data:`KEEP` (2) standard errors of that
  *difference*; then, by the one-standard-error rule, the largest λ_dev within one standard
  error of the best wins, otherwise the largest λ_dev (device terms silenced). The standard
  error is paired: every candidate is scored on the same utterances, so it is the spread over
  utterances of the candidate's loss minus the best one's. Splits are repeated because in a
  small domain one split's luck decides the choice (a DateTime domain of 58 SLURP devel
  utterances: the device terms' held-out gain was 0.038 with one split, 0.007 to 0.038 over
  five); the keep test is separate from the one-standard-error choice because chance patterns
  sit near one standard error (so one standard error alone keeps some of them) while a stricter
  margin for the choice also shrinks real preferences. A domain whose rows come from one device
  has nothing to choose (its device weight duplicates the bias): it takes the largest candidate
  without cross-validation.

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
from reranker.bootstrap import hashed_folds
from reranker.errors import ParameterError
from reranker.estimator import Competitors, DomainReranker
from reranker.features import DEVICE_PREFIX
from reranker.losses import make_problem, utterance_losses
from reranker.options import AUTO

__all__ = [
    "AUTO",
    "DEVICE_L2_GRID",
    "L2_GRID",
    "SPLITS",
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
KEEP = 2.0
"""Standard errors by which the device terms' held-out gain must exceed zero to be kept."""
FOLDS = 3
SPLITS = 3
"""K-fold splits of the device penalty's cross-validation, each utterance's held-out losses
averaged over them (``l2="auto"`` uses one split)."""

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


def _utterance_losses(
    model: DomainReranker, rows: _Rows
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Unpenalised loss of ``model`` on each utterance of ``rows``, and a row of each utterance."""
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
    return utterance_losses(theta, problem, loss=model.loss, alpha=float(model.alpha))  # type: ignore[arg-type]


def _folds(ids: NDArray[np.object_], folds: int, split: int) -> NDArray[np.int64]:
    """Fold of each utterance id in split ``split`` (split 0: the hash of the id itself, the
    others: the hash of the id salted with the split's number)."""
    names = ids if split == 0 else np.array([f"{split}\x1f{u}" for u in ids], dtype=object)
    return hashed_folds(names, folds)


@dataclass(frozen=True)
class _Scores:
    """Held-out loss of every candidate on every utterance, averaged over the splits."""

    per_utterance: NDArray[np.float64]

    @property
    def mean(self) -> NDArray[np.float64]:
        """Mean held-out loss of each candidate over the utterances."""
        return self.per_utterance.mean(axis=1)

    def paired_se(self, reference: int) -> NDArray[np.float64]:
        """Standard error of each candidate's mean loss minus the ``reference`` candidate's.

        Every candidate is scored on the same held-out utterances, so what makes one utterance
        harder than another cancels in the difference; its spread over utterances is what is
        left.
        """
        diff = self.per_utterance - self.per_utterance[reference]
        n = diff.shape[1]
        return diff.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(diff.shape[0])


def _cross_validate(
    rows: _Rows, fit: Fit, grid: Sequence[float], folds: int, splits: int = 1
) -> _Scores | None:
    """Held-out loss of each candidate on each utterance, averaged over ``splits`` K-fold
    splits; None when no split scored any utterance (every utterance hashed to one fold)."""
    ids = np.unique(rows.groups.astype(str)).astype(object)
    index = np.searchsorted(ids, rows.groups.astype(str))
    losses = np.zeros((len(grid), ids.size))
    counts = np.zeros(ids.size)
    for split in range(splits):
        fold = _folds(ids, folds, split)[index]
        for k in range(folds):
            test = fold == k
            if not test.any() or test.all():
                continue
            part, held = rows.take(test), index[test]
            for j, value in enumerate(grid):
                with warnings.catch_warnings():  # a candidate's convergence is not the final fit's
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model = fit(float(value), ~test)
                first, values = _utterance_losses(model, part)
                losses[j, held[first]] += values
            counts[np.unique(held)] += 1
    scored = counts > 0
    if not scored.any():
        return None
    return _Scores(losses[:, scored] / counts[scored])


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

    scores = _cross_validate(rows, fit, grid, folds)
    if scores is None:
        return float(max(grid)), {"folds": folds, "grid": list(grid), "cv_loss": None}
    cv = scores.mean
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


def _device_fit(rows: _Rows, params: dict[str, Any], device: NDArray[np.bool_]) -> Fit:
    """Fit of a candidate λ_dev on the training rows of a fold."""
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

    return fit


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
    splits: int = SPLITS,
    rule: str = ONE_SE,
    keep: float = KEEP,
) -> tuple[float, dict[str, Any]]:
    """Pick the device penalty λ_dev ≥ λ of one domain (``params["l2"]``, a number).

    The candidates are λ and the values of ``grid`` above it, each scored on every utterance by
    ``splits`` K-fold splits; the largest candidate whose mean held-out loss exceeds the lowest
    by at most one (paired) standard error of the difference wins (``rule="minimum"``: the
    lowest mean held-out loss). A domain whose rows all come from one device has nothing to
    choose: its device weight only duplicates the bias.

    Returns
    -------
    device_l2 : float
        The chosen penalty (the largest candidate when there are fewer utterances than folds
        or one device).
    report : dict
        ``{"folds", "splits", "devices", "grid", "cv_loss", "cv_se", "rule"}``; ``devices``
        counts the devices of the domain's rows, ``cv_se`` is the standard error of each
        candidate's mean held-out loss minus the best candidate's.
    """
    check_choice("rule", rule, RULES)
    if splits < 1:
        raise ParameterError(f"splits must be >= 1, got {splits}")
    lam = float(params["l2"])
    candidates = [lam, *sorted(float(g) for g in grid if g > lam)]
    n_devices = int(np.unique(np.asarray(X)[:, device], axis=0).shape[0]) if device.any() else 0
    report: dict[str, Any] = {"folds": folds, "splits": splits, "devices": n_devices, "keep": keep}
    report |= {"grid": candidates, "rule": rule, "cv_loss": None, "cv_se": None}
    rows = _cv_rows(X, y, groups, semer, competitors, folds)
    if rows is None or n_devices < 2:
        return candidates[-1], report
    scores = _cross_validate(rows, _device_fit(rows, params, device), candidates, folds, splits)
    if scores is None:
        return candidates[-1], report
    cv = scores.mean
    best = int(np.argmin(cv))
    se = scores.paired_se(best)
    report["cv_loss"] = [float(v) for v in cv]
    report["cv_se"] = [float(v) for v in se]
    return candidates[_one_se_choice(cv, se, rule, keep)], report


def _one_se_choice(cv: NDArray[np.float64], se: NDArray[np.float64], rule: str, keep: float) -> int:
    """Index of the chosen candidate (candidates sorted by increasing penalty).

    ``rule="minimum"``: the lowest mean held-out loss. One standard error: the largest penalty
    (device terms silenced) unless its held-out loss exceeds the best by more than ``keep``
    standard errors of the difference; then the largest penalty within one standard error.
    """
    best = int(np.argmin(cv))
    if rule != ONE_SE:
        return best
    last = cv.size - 1
    rounding = 1e-6 * (1.0 + abs(float(cv[best])))  # below the solver's tolerance
    if cv[last] <= cv[best] + keep * se[last] + rounding:
        return last
    return max(j for j in range(cv.size) if cv[j] <= cv[best] + se[j] + rounding)


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
