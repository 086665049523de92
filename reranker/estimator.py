"""One domain's re-ranker as a scikit-learn estimator (docs/losses.md)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from reranker.errors import DataError, ParameterError
from reranker.losses import LossProblem, loss_parts, make_problem
from reranker.options import TrainingOptions
from reranker.solvers import Solution, solve

__all__ = ["Competitors", "DomainReranker"]

FloatArray = NDArray[np.float64]


def _competitor_arguments(competitors: Competitors | None) -> dict[str, Any]:
    if competitors is None:
        return {}
    return {
        "competitor_groups": competitors.groups,
        "competitor_z": competitors.z,
        "competitor_semer": competitors.semer,
    }


@dataclass(frozen=True)
class Competitors:
    """Other domains' hypotheses, with logits held fixed, for ``scope="utterance"``.

    Attributes
    ----------
    groups : array-like of shape (m,)
        Utterance id of each competing hypothesis.
    z : array-like of shape (m,)
        Its fixed logit (``logit(score)``).
    semer : array-like of shape (m,)
        Its SemER.
    """

    groups: ArrayLike
    z: ArrayLike
    semer: ArrayLike


class DomainReranker(ClassifierMixin, BaseEstimator):
    """The re-ranker of one domain: ``score = sigmoid(w · x + b)`` trained with R1, R2 or R3.

    Parameters
    ----------
    loss : {"r1", "r2", "r3"}, default "r2"
        R1 expected SemER, R2 cross-entropy on the correct bit, R3 = R1 + α·R2
        (:mod:`reranker.losses`).
    l2 : float, default 1e-3
        λ of the penalty ``λ‖w‖²`` (the bias is not penalised); the loss is averaged over
        utterances, so λ does not scale with the data size.
    alpha : float, default 1.0
        α of R3.
    scope : {"utterance", "domain"}, default "utterance"
        The n-best R1's softmax runs over: the utterance's whole n-best with other domains'
        logits fixed (pass ``competitors`` to :meth:`fit`; without them only this domain's
        hypotheses compete), or this domain's hypotheses of the utterance only. A softmax
        ignores a shift shared by all its terms, so pure R1 with ``scope="domain"`` cannot learn
        the bias (it stays at its start, 0) nor an absolute scale: its scores rank a domain's
        own hypotheses but are not comparable with other domains'.
    temperature : float, default 1.0
        τ of R1's ``softmax(z/τ)``.
    cap_semer : bool, default False
        Cap SemER at 1 inside the R1 loss.
    max_iter : int, default 1000
        Iteration limit of the solver (Newton's method for R2, L-BFGS-B for R1 and R3; see
        :mod:`reranker.solvers`).
    tol : float, default 1e-6
        Convergence when the largest absolute gradient component is at most ``tol``.
    standardize : bool, default True
        Optimise in standardised coordinates (each feature centred and divided by its standard
        deviation on the training rows). This only preconditions the solver: the penalty is still
        ``λ‖w‖²`` on the raw-feature weights, so the optimum is the same; ``coef_`` and
        ``intercept_`` always apply to raw features and nothing extra is stored.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
        Solver iterations.
    converged_ : bool
    objective_ : float
        Final value of the penalised objective.
    loss_curve_ : list of float
        Objective after each iteration (non-increasing).
    metrics_ : dict
        ``objective``, ``n_iter``, ``converged``, ``message``, plus the unpenalised
        ``expected_semer`` and ``cross_entropy`` on the training rows.
    classes_ : ndarray, ``[0, 1]``
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); y = (X[:, 0] + rng.normal(size=200) > 0).astype(int)
    >>> model = DomainReranker("r2").fit(X, y, groups=np.arange(200) // 2)
    >>> model.predict_proba(X).shape
    (200, 2)
    """

    def __init__(
        self,
        loss: str = "r2",
        *,
        l2: float = 1e-3,
        alpha: float = 1.0,
        scope: str = "utterance",
        temperature: float = 1.0,
        cap_semer: bool = False,
        max_iter: int = 1000,
        tol: float = 1e-6,
        standardize: bool = True,
    ) -> None:
        self.loss = loss
        self.l2 = l2
        self.alpha = alpha
        self.scope = scope
        self.temperature = temperature
        self.cap_semer = cap_semer
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize

    def _validate_params_(self) -> None:
        TrainingOptions(
            loss=self.loss,
            scope=self.scope,
            alpha=self.alpha,
            l2=self.l2,
            temperature=self.temperature,
            max_iter=int(self.max_iter),
        )
        if not self.tol > 0:
            raise ParameterError(f"tol must be > 0, got {self.tol!r}")

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        semer: ArrayLike | None = None,
        competitors: Competitors | None = None,
    ) -> DomainReranker:
        """Fit the weights from a deterministic start (Newton for R2, L-BFGS-B otherwise).

        The start is all-zero weights, with the bias at the log-odds of the training rows'
        correct rate (clipped to [0.001, 0.999]) for R2 and R3, and 0 for R1.

        Parameters
        ----------
        X : array-like of shape (n, k)
            Features of this domain's hypotheses (:func:`reranker.features.feature_matrix`).
        y : array-like of shape (n,)
            The correct bit.
        groups : array-like of shape (n,), optional
            Utterance id of each row; losses are averaged over utterances. Without it every row
            is its own utterance (so plain scikit-learn tooling such as ``cross_val_score`` or
            ``GridSearchCV`` can fit R2 without routing groups).
        semer : array-like of shape (n,), optional
            SemER of each row; required for R1 and R3.
        competitors : Competitors, optional
            Other domains' hypotheses with fixed logits; only with ``scope="utterance"``.

        Returns
        -------
        self
        """
        Xa = self._check_fit_arguments(X, semer, competitors)
        mean, scale = self._standardisation(Xa)
        standardised = np.subtract(Xa, mean)
        standardised /= scale
        problem = make_problem(
            standardised,
            y,
            np.arange(Xa.shape[0]) if groups is None else groups,
            semer=semer,
            temperature=float(self.temperature),
            cap_semer=bool(self.cap_semer),
            **_competitor_arguments(competitors),
        )
        solution = solve(
            problem,
            self.loss,  # type: ignore[arg-type]
            self._start(problem, Xa.shape[1]),
            alpha=float(self.alpha),
            penalty=float(self.l2) / scale**2,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
        )
        self._store(solution, problem, mean, scale)
        return self

    def _check_fit_arguments(
        self, X: ArrayLike, semer: ArrayLike | None, competitors: Competitors | None
    ) -> NDArray[np.float64]:
        """Validate the options and what :meth:`fit` was given; ``X`` as a float matrix."""
        self._validate_params_()
        if self.loss in ("r1", "r3") and semer is None:
            raise DataError(f"loss {self.loss} needs the SemER of each row (semer=...)")
        if competitors is not None and self.scope != "utterance":
            raise DataError("competitors only apply with scope='utterance'")
        Xa = np.asarray(X, dtype=np.float64)
        if Xa.ndim != 2:
            raise DataError(f"X must be 2-dimensional, got shape {Xa.shape}")
        return Xa

    def _standardisation(self, X: NDArray[np.float64]) -> tuple[FloatArray, FloatArray]:
        """Per-feature centre and scale of the optimisation's coordinates (identity if off).

        Sums and sums of squares are accumulated block by block (one read of X); the scale
        only preconditions the solver, so its precision does not affect the optimum.
        """
        n, k = X.shape
        if not (self.standardize and n > 0):
            return np.zeros(k), np.ones(k)
        total, squares = np.zeros(k), np.zeros(k)
        for start in range(0, n, 65536):
            block = X[start : start + 65536]
            total += block.sum(axis=0)
            squares += np.einsum("ij,ij->j", block, block)
        mean = total / n
        variance = squares / n - mean**2
        scale = np.sqrt(np.maximum(variance, 0.0))
        scale[~(scale > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 1.0
        return mean, scale

    def _start(self, problem: LossProblem, k: int) -> FloatArray:
        """All-zero weights; the bias at the clipped log-odds of the correct rate for R2/R3."""
        theta0 = np.zeros(k + 1)
        if self.loss in ("r2", "r3"):
            theta0[-1] = float(logit(np.clip(problem.y.mean(), 1e-3, 1 - 1e-3)))
        return theta0

    def _store(
        self, solution: Solution, problem: LossProblem, mean: FloatArray, scale: FloatArray
    ) -> None:
        """Map the standardised solution back to raw features and record the fit."""
        v, c = solution.x[:-1], float(solution.x[-1])
        self.coef_ = v / scale
        self.intercept_ = float(c - np.dot(self.coef_, mean))
        self.n_iter_ = solution.nit
        self.converged_ = solution.success
        self.objective_ = solution.fun
        self.loss_curve_ = list(solution.curve)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = int(v.size)
        self.metrics_ = {
            "objective": self.objective_,
            "n_iter": self.n_iter_,
            "converged": self.converged_,
            "message": solution.message,
            **loss_parts(solution.x, problem),
        }
        if not self.converged_:
            method = "Newton" if self.loss == "r2" else "L-BFGS-B"
            warnings.warn(
                f"{method} did not converge after {self.n_iter_} iterations "
                f"({solution.message}); raise max_iter or check the features",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _check_X(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "coef_")
        Xa = np.asarray(X, dtype=np.float64)
        if Xa.ndim != 2 or Xa.shape[1] != self.n_features_in_:
            raise DataError(f"X must have shape (n, {self.n_features_in_}), got {Xa.shape}")
        return Xa

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """The logit ``z = X · coef_ + intercept_`` of each row."""
        return self._check_X(X) @ self.coef_ + self.intercept_

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Columns ``[1 - score, score]`` with ``score = sigmoid(z)``."""
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        """1 where the score is at least 0.5."""
        return (self.decision_function(X) >= 0.0).astype(np.int64)
