"""Newton's method for R2: exact gradient and Hessian, and the same optimum as L-BFGS-B."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime, check_grad

from reranker.losses import _objective, make_problem, r2_newton_terms
from reranker.solvers import solve


def _problem(seed: int, n: int = 600, k: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k)) * rng.uniform(0.1, 5.0, k)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ rng.normal(size=k) * 0.3)))).astype(int)
    return make_problem(X, y, np.arange(n) // 3), rng


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_r2_newton_terms_value_gradient_and_hessian(seed: int) -> None:
    problem, rng = _problem(seed)
    penalty = rng.uniform(0, 0.1, problem.X.shape[1])
    theta = rng.normal(size=problem.X.shape[1] + 1)
    f, g, h = r2_newton_terms(theta, problem, penalty, hessian=True)
    f_ref, g_ref = _objective(theta, problem, "r2", 1.0, penalty)
    assert f == pytest.approx(f_ref, rel=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-13)
    assert r2_newton_terms(theta, problem, penalty)[0] == f

    def grad_component(i):
        return lambda v: r2_newton_terms(v, problem, penalty, hessian=True)[1][i]

    numeric = np.array([approx_fprime(theta, grad_component(i), 1e-6) for i in range(theta.size)])
    np.testing.assert_allclose(h, numeric, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h, h.T)
    assert (
        check_grad(
            lambda v: _objective(v, problem, "r2", 1.0, penalty)[0],
            lambda v: r2_newton_terms(v, problem, penalty, hessian=True)[1],
            theta,
        )
        < 1e-5
    )


@pytest.mark.parametrize("l2", [0.0, 1e-3, 1.0])
def test_newton_and_lbfgs_reach_the_same_optimum(l2: float) -> None:
    problem, _ = _problem(4)
    k = problem.X.shape[1]
    penalty = np.full(k, l2)
    newton = solve(
        problem, "r2", np.zeros(k + 1), alpha=1.0, penalty=penalty, max_iter=100, tol=1e-10
    )
    # L-BFGS-B on the same objective, through the R3 path with alpha weighting only R2
    from reranker.solvers import _lbfgs

    lbfgs = _lbfgs(problem, "r2", np.zeros(k + 1), 1.0, penalty, 10_000, 1e-10)
    assert newton.success
    assert newton.nit < 15
    assert newton.fun <= lbfgs.fun + 1e-12
    assert newton.fun == pytest.approx(lbfgs.fun, rel=1e-9)
    # never rises, but for the rounding of the objective's sum (a few ulps) at the optimum
    assert (np.diff(newton.curve) <= 8 * np.finfo(float).eps * newton.fun).all()


def test_newton_reports_iteration_limit() -> None:
    problem, _ = _problem(5)
    k = problem.X.shape[1]
    out = solve(
        problem, "r2", np.zeros(k + 1), alpha=1.0, penalty=np.zeros(k), max_iter=1, tol=1e-14
    )
    assert not out.success
    assert out.nit == 1
    assert "iteration limit" in out.message
