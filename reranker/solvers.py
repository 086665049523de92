"""Minimisers of one domain's training objective (docs/losses.md): Newton for R2, L-BFGS-B otherwise.

R2 is a penalised logistic regression with a handful of features, so its exact Hessian
``[X 1]ᵀ diag(p (1 - p) / U) [X 1] + diag(2λ, 0)`` is a small matrix that costs one pass over
the rows: Newton's method with a backtracking (Armijo) line search reaches the optimum to
machine precision in a few iterations, where a quasi-Newton method needs dozens of gradient
passes. R1 and R3 (softmax over each utterance, not convex) use L-BFGS-B with the analytic
gradient. Both return a :class:`Solution` with the iteration count, convergence flag and the
objective after each iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from reranker.losses import Loss, LossProblem, _objective, r2_newton_terms

__all__ = ["Solution", "solve"]

FloatArray = NDArray[np.float64]


@dataclass
class Solution:
    """The outcome of a minimisation."""

    x: FloatArray
    fun: float
    nit: int
    success: bool
    message: str
    curve: list[float] = field(default_factory=list)


def _newton_step(grad: FloatArray, hessian: FloatArray) -> FloatArray:
    """``-H⁻¹ g`` by Cholesky; a least-squares solve if H is numerically singular."""
    try:
        step = scipy.linalg.cho_solve(scipy.linalg.cho_factor(hessian), grad)
    except (scipy.linalg.LinAlgError, ValueError):
        step = np.linalg.lstsq(hessian, grad, rcond=None)[0]
    return -np.asarray(step, dtype=np.float64)


Terms = tuple[float, FloatArray, FloatArray]


def _line_search(
    terms_at: Callable[[FloatArray], Terms],
    theta: FloatArray,
    f: float,
    step: FloatArray,
    slope: float,
) -> tuple[FloatArray, Terms] | None:
    """Backtracking to the first step length with sufficient decrease (Armijo, c = 1e-4).

    Each trial computes value, gradient and Hessian in the same pass over the rows, so the
    usual full Newton step costs one pass. At the optimum the predicted decrease is below the
    rounding of the objective's sum: a rise within that rounding (a few ulps of f) counts as no
    rise, so the last Newton step is not refused for noise.
    """
    t = 1.0
    noise = 8.0 * np.finfo(np.float64).eps * abs(f)
    while t > 1e-10:
        candidate = theta + t * step
        terms = terms_at(candidate)
        if terms[0] <= f + 1e-4 * t * slope + noise:
            return candidate, terms
        t *= 0.5
    return None


def _newton_r2(
    problem: LossProblem, theta0: FloatArray, penalty: FloatArray, max_iter: int, tol: float
) -> Solution:
    """Damped Newton's method on R2 (convex), stopping when ``max |gradient| <= tol``."""

    def terms_at(theta: FloatArray) -> Terms:
        return r2_newton_terms(theta, problem, penalty, hessian=True)

    # Blocks of rows are small products: threads would cost more than they bring. The limit is
    # set once for the whole solve: setting it scans the loaded libraries, which per pass cost
    # more than the pass itself.
    with threadpool_limits(1, user_api="blas"):
        return _newton_loop(terms_at, theta0, max_iter, tol)


def _newton_loop(
    terms_at: Callable[[FloatArray], Terms], theta0: FloatArray, max_iter: int, tol: float
) -> Solution:
    """Newton iterations with backtracking until ``max |gradient| <= tol``."""
    theta = theta0.copy()
    f, g, h = terms_at(theta)
    curve: list[float] = []
    message = "iteration limit reached"
    nit = 0
    while nit < max_iter and np.max(np.abs(g)) > tol:
        step = _newton_step(g, h)
        slope = float(g @ step)
        found = _line_search(terms_at, theta, f, step, slope) if slope < 0 else None
        if found is None:
            message = "no decrease along the Newton direction"
            break
        theta, (f, g, h) = found
        nit += 1
        curve.append(f)
    success = bool(np.max(np.abs(g)) <= tol)
    if success:
        message = "gradient below tolerance"
    return Solution(theta, f, nit, success, message, curve)


def _lbfgs(
    problem: LossProblem,
    loss: Loss,
    theta0: FloatArray,
    alpha: float,
    penalty: FloatArray,
    max_iter: int,
    tol: float,
) -> Solution:
    curve: list[float] = []

    def record(intermediate_result: Any) -> None:
        curve.append(float(intermediate_result.fun))

    # As for Newton: one BLAS thread for the whole solve. L-BFGS-B's own small matrix products
    # otherwise wake the BLAS thread pool at every step, which on a busy machine made each step
    # several times slower than the objective it minimises.
    with threadpool_limits(1, user_api="blas"):
        result = minimize(
            _objective,
            theta0,
            args=(problem, loss, alpha, penalty),
            jac=True,
            method="L-BFGS-B",
            callback=record,
            options={
                "maxiter": max_iter,
                "gtol": tol,
                "ftol": 64 * np.finfo(float).eps,
                "maxls": 50,
            },
        )
    return Solution(
        result.x,
        float(result.fun),
        int(result.nit),
        bool(result.success),
        str(result.message),
        curve,
    )


def solve(
    problem: LossProblem,
    loss: Loss,
    theta0: FloatArray,
    *,
    alpha: float,
    penalty: FloatArray,
    max_iter: int,
    tol: float,
) -> Solution:
    """Minimise the objective of ``loss`` from ``theta0`` (Newton for R2, else L-BFGS-B)."""
    if loss == "r2":
        return _newton_r2(problem, theta0, penalty, max_iter, tol)
    return _lbfgs(problem, loss, theta0, alpha, penalty, max_iter, tol)
