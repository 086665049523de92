"""Training losses of one domain's re-ranker (docs/losses.md), with analytic gradients.

A domain's hypotheses ``h`` have features ``x_h`` and logit ``z_h = w · x_h + b``; its score is
``sigmoid(z_h)``. With U the number of utterances the domain has hypotheses in and H_u the
domain's hypotheses of utterance u, the losses are

- **R1**, expected SemER: ``R1 = (1/U) Σ_u Σ_{h ∈ N_u} softmax(z/τ)_h · SemER_h``. With
  ``scope="domain"`` the n-best ``N_u`` is H_u; with ``scope="utterance"`` it is the whole
  n-best, the other domains' hypotheses entering with fixed logits, summarised per utterance by
  their log-mass ``c_u = logsumexp(z_o/τ)`` and softmax-weighted SemER ``s_u``, so that
  ``E_u = (Σ_{h∈H_u} e^{z_h/τ} SemER_h + e^{c_u} s_u) / (Σ_{h∈H_u} e^{z_h/τ} + e^{c_u})`` and
  ``∂E_u/∂z_h = p_h (SemER_h - E_u) / τ`` with ``p_h`` the softmax weight of h.
- **R2**, cross-entropy on the correct bit y:
  ``R2 = (1/U) Σ_u Σ_{h∈H_u} [log(1 + e^{z_h}) - y_h z_h]``, gradient ``sigmoid(z_h) - y_h``.
- **R3** = R1 + α·R2.

Each adds the L2 penalty ``Σ_j λ_j w_j²`` (λ_j = λ for every weight, bias unpenalised). All
per-utterance sums run as vector reductions (the fused pass of :mod:`reranker.kernel_losses`,
or ``np.bincount`` by utterance); there is no Python loop over utterances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reranker.errors import DataError
from reranker.kernel_losses import (
    SAFE_EXPONENT,
    Blocks,
    Layout,
    fused_objective,
    layout,
    make_blocks,
)
from reranker.options import LOSSES, TrainingOptions

__all__ = [
    "LOSSES",
    "Loss",
    "LossProblem",
    "loss_parts",
    "make_problem",
    "objective",
    "r2_newton_terms",
    "utterance_losses",
]

Loss = Literal["r1", "r2", "r3"]


@dataclass(frozen=True)
class LossProblem:
    """One domain's training data, sorted by utterance, ready for the loss.

    Attributes
    ----------
    X : ndarray of shape (n, k)
        Features, rows in the chunked layout of :func:`reranker.kernel_losses.layout`
        (utterances ordered by row count, rows rank-major within a chunk).
    y : ndarray of shape (n,)
        The correct bit (0 or 1) as float.
    semer : ndarray of shape (n,)
        SemER of each row (zeros when only R2 is trained).
    group : ndarray of shape (n,)
        Utterance index (0..U-1) of each row.
    other_log_mass : ndarray of shape (U,)
        ``logsumexp(z_o / τ)`` over the other domains' hypotheses of the utterance (``-inf``
        where there are none or with ``scope="domain"``).
    other_semer : ndarray of shape (U,)
        Softmax(z_o/τ)-weighted mean SemER of the other domains' hypotheses (0 where none).
    order : ndarray of shape (n,)
        ``X[i]`` is row ``order[i]`` of the caller's arrays.
    temperature : float
        τ, used to build ``other_log_mass``.
    blocks : Blocks
        Block structure of the fused loss pass (:mod:`reranker.kernel_losses`).
    """

    X: NDArray[np.float64]
    y: NDArray[np.float64]
    semer: NDArray[np.float64]
    group: NDArray[np.int64]
    other_log_mass: NDArray[np.float64]
    other_semer: NDArray[np.float64]
    order: NDArray[np.int64]
    temperature: float
    blocks: Blocks

    @property
    def n_utterances(self) -> int:
        """Number of utterances U (the denominator of every loss)."""
        return int(self.other_log_mass.size)


def _codes(groups: NDArray[np.object_]) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
    import pandas as pd

    codes, uniques = pd.factorize(groups)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _check_rows(
    X: ArrayLike, y: ArrayLike, groups: ArrayLike, semer: ArrayLike | None, temperature: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.object_], NDArray[np.float64]]:
    """X, y, groups and SemER as arrays of one length, validated."""
    Xa = np.asarray(X, dtype=np.float64)
    if Xa.ndim != 2:
        raise DataError(f"X must be 2-dimensional, got shape {Xa.shape}")
    n = Xa.shape[0]
    ya = np.asarray(y, dtype=np.float64).ravel()
    if ya.shape != (n,):
        raise DataError(f"y has {ya.size} values for {n} rows of X")
    if not ((ya == 0.0) | (ya == 1.0)).all():
        raise DataError("y must hold only 0 and 1 (the correct bit)")
    if not np.isfinite(Xa).all():
        raise DataError("X contains NaN or infinite values")
    if not (np.isfinite(temperature) and temperature > 0):
        raise DataError(f"temperature must be > 0, got {temperature!r}")
    ga = np.asarray(groups, dtype=object).ravel()
    if ga.shape != (n,):
        raise DataError(f"groups has {ga.size} values for {n} rows of X")
    if n == 0:
        raise DataError("no training rows")
    sa = np.zeros(n) if semer is None else np.asarray(semer, dtype=np.float64).ravel()
    if sa.shape != (n,):
        raise DataError(f"semer has {sa.size} values for {n} rows of X")
    if not np.isfinite(sa).all() or (sa < 0).any():
        raise DataError("semer must be finite and >= 0")
    return Xa, ya, ga, sa


def _competitor_summary(
    uniques: NDArray[np.object_],
    competitor_groups: ArrayLike,
    competitor_z: ArrayLike | None,
    competitor_semer: ArrayLike | None,
    temperature: float,
    cap_semer: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per utterance: log-mass ``logsumexp(z_o / τ)`` and softmax-weighted SemER of competitors."""
    import pandas as pd

    n_groups = uniques.size
    other_log_mass = np.full(n_groups, -np.inf)
    other_semer = np.zeros(n_groups)
    if competitor_z is None or competitor_semer is None:
        raise DataError("competitor_groups needs competitor_z and competitor_semer")
    cg = np.asarray(competitor_groups, dtype=object).ravel()
    cz = np.asarray(competitor_z, dtype=np.float64).ravel()
    cs = np.asarray(competitor_semer, dtype=np.float64).ravel()
    if not (cg.shape == cz.shape == cs.shape):
        raise DataError("competitor arrays must have equal lengths")
    if not (np.isfinite(cz).all() and np.isfinite(cs).all()):
        raise DataError("competitor logits and SemER must be finite")
    if cap_semer:
        cs = np.minimum(cs, 1.0)
    cidx = pd.Index(uniques).get_indexer(pd.Index(cg))
    keep = cidx >= 0
    if keep.any():
        cidx, a, cs = cidx[keep], cz[keep] / temperature, cs[keep]
        peak = np.full(n_groups, -np.inf)
        np.maximum.at(peak, cidx, a)
        e = np.exp(a - peak[cidx])
        mass = np.bincount(cidx, weights=e, minlength=n_groups)
        weighted = np.bincount(cidx, weights=e * cs, minlength=n_groups)
        has = mass > 0
        other_log_mass[has] = peak[has] + np.log(mass[has])
        other_semer[has] = weighted[has] / mass[has]
    return other_log_mass, other_semer


def _layout_rows(codes: NDArray[np.int64]) -> tuple[NDArray[np.int64], Layout]:
    """Row order of the fused pass's layout (of the caller's rows) and the layout itself."""
    if (codes[1:] >= codes[:-1]).all():  # rows already grouped by utterance
        order = np.arange(codes.size, dtype=np.int64)
    else:
        order = np.argsort(codes, kind="stable").astype(np.int64)
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1].astype(np.int64)
    rows = layout(starts, codes.size)
    return order[rows.rows], rows


def make_problem(
    X: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    *,
    semer: ArrayLike | None = None,
    competitor_groups: ArrayLike | None = None,
    competitor_z: ArrayLike | None = None,
    competitor_semer: ArrayLike | None = None,
    temperature: float = 1.0,
    cap_semer: bool = False,
) -> LossProblem:
    """Validate one domain's rows and sort them by utterance.

    Parameters
    ----------
    X : array-like of shape (n, k)
    y : array-like of shape (n,)
        Correct bit, 0 or 1.
    groups : array-like of shape (n,)
        Utterance id of each row.
    semer : array-like of shape (n,), optional
        SemER of each row; required by R1 and R3.
    competitor_groups, competitor_z, competitor_semer : array-like, optional
        The other domains' hypotheses for ``scope="utterance"``: utterance id, fixed logit and
        SemER of each. Competitors of utterances without a row in ``groups`` are ignored.
    temperature : float, default 1.0
        Softmax temperature τ > 0 of R1.
    cap_semer : bool, default False
        Cap SemER at 1 inside the loss (SemER itself is never clipped elsewhere).
    """
    Xa, ya, ga, sa = _check_rows(X, y, groups, semer, temperature)
    if cap_semer:
        sa = np.minimum(sa, 1.0)
    codes, uniques = _codes(ga)
    order, rows = _layout_rows(codes)
    Xs, ys, ss = np.ascontiguousarray(Xa[order]), ya[order], sa[order]
    n_groups = uniques.size
    if competitor_groups is None:
        other_log_mass, other_semer = np.full(n_groups, -np.inf), np.zeros(n_groups)
    else:
        other_log_mass, other_semer = _competitor_summary(
            uniques, competitor_groups, competitor_z, competitor_semer, temperature, cap_semer
        )
    # utterance u of the sorted rows has code u; the layout orders utterances by row count
    other_log_mass, other_semer = other_log_mass[rows.utterances], other_semer[rows.utterances]
    return LossProblem(
        X=Xs,
        y=ys,
        semer=ss,
        group=rows.group,
        other_log_mass=other_log_mass,
        other_semer=other_semer,
        order=order,
        temperature=float(temperature),
        blocks=make_blocks(Xs, ys, rows.bounds, other_log_mass, other_semer),
    )


def _r1(
    z: NDArray[np.float64],
    p: LossProblem,
    temperature: float,
    exp_a: NDArray[np.float64] | None = None,
) -> tuple[float, NDArray[np.float64]]:
    """Mean expected SemER and its gradient with respect to z.

    When every ``|z/τ|`` and competitor log-mass is at most 350, ``e^{z/τ}`` is used without a
    per-utterance shift (softmax ratios do not depend on it) and per-utterance sums are
    ``np.bincount``; otherwise each utterance is shifted by its maximum first. ``exp_a`` is
    ``e^{z/τ}`` when the caller has it already.
    """
    a = z / temperature if temperature != 1.0 else z
    finite_mass = p.other_log_mass[np.isfinite(p.other_log_mass)]
    u = p.n_utterances
    small = max(a.max(), -a.min()) <= SAFE_EXPONENT
    if small and np.abs(finite_mass).max(initial=0.0) <= SAFE_EXPONENT:
        e = np.exp(a) if exp_a is None else exp_a
        other = np.exp(p.other_log_mass)
    else:
        peak = p.other_log_mass.copy()
        np.maximum.at(peak, p.group, a)
        e = np.exp(a - peak[p.group])
        other = np.exp(p.other_log_mass - peak)
    den = np.bincount(p.group, weights=e, minlength=u) + other
    num = np.bincount(p.group, weights=e * p.semer, minlength=u) + other * p.other_semer
    expected = num / den
    grad = p.semer - expected[p.group]
    grad *= e
    grad *= (1.0 / (den * (temperature * u)))[p.group]
    return float(expected.sum() / u), grad


def _r2(
    z: NDArray[np.float64], p: LossProblem
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Cross-entropy summed over rows, averaged over utterances, its gradient in z, and
    ``e^{-|z|}`` (which gives ``e^z`` to R1 without another exponential)."""
    u = p.n_utterances
    t = np.abs(z)
    np.negative(t, out=t)
    np.exp(t, out=t)  # e^{-|z|} in (0, 1]: log(1 + e^z) = max(z, 0) + log1p(t)
    value = float((np.maximum(z, 0.0).sum() + np.log1p(t).sum() - np.dot(p.y, z)) / u)
    grad = np.where(z >= 0, 1.0, t)
    grad /= 1.0 + t  # sigmoid(z)
    grad -= p.y
    grad /= u
    return value, grad, t


def _objective(
    theta: NDArray[np.float64],
    problem: LossProblem,
    loss: Loss,
    alpha: float,
    penalty: NDArray[np.float64],
) -> tuple[float, NDArray[np.float64]]:
    """Loss and gradient at ``theta = [w_1 .. w_k, b]``.

    ``penalty`` holds λ_j of each weight (length k): the term is ``Σ_j λ_j w_j²``.
    """
    w, b = theta[:-1], theta[-1]
    fused = fused_objective(
        theta,
        problem.X,
        problem.semer,
        problem.blocks,
        n_utterances=problem.n_utterances,
        temperature=problem.temperature,
        r1=loss in ("r1", "r3"),
        r2_weight={"r1": 0.0, "r2": 1.0, "r3": alpha}[loss],
    )
    if fused is not None:
        value, grad = fused
        grad[:-1] += 2.0 * penalty * w
        return value + float(np.dot(penalty * w, w)), grad
    z = problem.X @ w
    z += b
    value = float(np.dot(penalty * w, w))
    grad_z: NDArray[np.float64] | None = None
    exp_z = None
    if loss in ("r2", "r3"):
        v, grad_z, t = _r2(z, problem)
        scale = alpha if loss == "r3" else 1.0
        value += scale * v
        if scale != 1.0:
            grad_z *= scale
        if problem.temperature == 1.0 and max(z.max(), -z.min()) <= SAFE_EXPONENT:
            exp_z = np.where(z < 0, t, 1.0 / t)  # e^z from e^{-|z|}
    if loss in ("r1", "r3"):
        v, g = _r1(z, problem, problem.temperature, exp_z)
        value += v
        grad_z = g if grad_z is None else grad_z + g
    assert grad_z is not None
    grad = np.empty_like(theta)
    grad[:-1] = problem.X.T @ grad_z + 2.0 * penalty * w
    grad[-1] = grad_z.sum()
    return value, grad


_CHUNK_ROWS = 32768  # rows per block of the fused R2 pass: a block of X stays in cache


def r2_newton_terms(
    theta: NDArray[np.float64],
    problem: LossProblem,
    penalty: NDArray[np.float64],
    *,
    hessian: bool = False,
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """R2 objective and, with ``hessian``, its gradient and exact Hessian at ``theta``.

    The Hessian of ``(1/U) Σ_h [log(1 + e^{z_h}) - y_h z_h] + Σ_j λ_j w_j²`` in ``[w, b]`` is
    ``[X 1]ᵀ diag(p (1 - p) / U) [X 1] + diag(2λ, 0)`` with ``p = sigmoid(z)``. Everything is
    accumulated block by block of rows, so each evaluation reads X from memory once. Without
    ``hessian`` the gradient and Hessian returned are empty.
    """
    w, b = theta[:-1], float(theta[-1])
    k = w.size
    value = 0.0
    grad = np.zeros(k + 1)
    h = np.zeros((k + 1, k + 1))
    for start in range(0, problem.X.shape[0], _CHUNK_ROWS):
        X = problem.X[start : start + _CHUNK_ROWS]
        y = problem.y[start : start + _CHUNK_ROWS]
        z = X @ w
        z += b
        t = np.exp(-np.abs(z))  # in (0, 1]: log(1 + e^z) = max(z, 0) + log1p(t)
        value += float(np.maximum(z, 0.0).sum() + np.log1p(t).sum() - np.dot(y, z))
        if not hessian:
            continue
        p = np.where(z >= 0, 1.0, t)
        p /= 1.0 + t  # sigmoid(z)
        residual = p - y
        grad[:k] += X.T @ residual
        grad[k] += residual.sum()
        d = p * (1.0 - p)
        weighted = X * d[:, None]
        h[:k, :k] += X.T @ weighted
        h[:k, k] += weighted.sum(axis=0)
        h[k, k] += d.sum()
    u = problem.n_utterances
    value = value / u + float(np.dot(penalty * w, w))
    if not hessian:
        return value, np.empty(0), np.empty((0, 0))
    grad /= u
    grad[:k] += 2.0 * penalty * w
    h /= u
    h[k, :k] = h[:k, k]
    h[np.arange(k), np.arange(k)] += 2.0 * penalty
    return value, grad, h


def _check_options(loss: str, alpha: float, l2: float) -> None:
    TrainingOptions(loss=loss, alpha=alpha, l2=l2)


def objective(
    theta: ArrayLike,
    problem: LossProblem,
    *,
    loss: Loss = "r2",
    alpha: float = 1.0,
    l2: float | ArrayLike = 1e-3,
) -> tuple[float, NDArray[np.float64]]:
    """The training objective of one domain and its gradient.

    Parameters
    ----------
    theta : array-like of shape (k + 1,)
        Weights followed by the bias.
    problem : LossProblem
        From :func:`make_problem` (it fixes τ).
    loss : {"r1", "r2", "r3"}
    alpha : float, default 1.0
        Weight of R2 in R3.
    l2 : float or array-like of shape (k,), default 1e-3
        λ of ``λ‖w‖²`` (bias unpenalised); an array gives one λ_j per weight.

    Returns
    -------
    value : float
    grad : ndarray of shape (k + 1,)
    """
    t = np.asarray(theta, dtype=np.float64).ravel()
    k = problem.X.shape[1]
    if t.shape != (k + 1,):
        raise DataError(f"theta must have {k + 1} values (k weights + bias), got {t.size}")
    pen = np.broadcast_to(np.asarray(l2, dtype=np.float64), (k,))
    _check_options(loss, alpha, float(pen.min()) if k else 0.0)
    return _objective(t, problem, loss, alpha, np.ascontiguousarray(pen))


def loss_parts(theta: ArrayLike, problem: LossProblem) -> dict[str, float]:
    """Unpenalised R1 (expected SemER) and R2 (cross-entropy) at ``theta``, for reporting."""
    t = np.asarray(theta, dtype=np.float64).ravel()
    z = problem.X @ t[:-1] + t[-1]
    r1, _ = _r1(z, problem, problem.temperature)
    r2, _, _ = _r2(z, problem)
    return {"expected_semer": r1, "cross_entropy": r2}


def utterance_losses(
    theta: ArrayLike, problem: LossProblem, *, loss: Loss = "r2", alpha: float = 1.0
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Each utterance's unpenalised loss at ``theta``; their mean is :func:`objective` with λ = 0.

    Returns
    -------
    rows : ndarray of shape (U,)
        For each utterance, the index (in the caller's rows given to :func:`make_problem`) of
        one of its rows, which identifies it.
    losses : ndarray of shape (U,)
        R1 (expected SemER), R2 (cross-entropy summed over the utterance's hypotheses) or
        R1 + α·R2 of each utterance.
    """
    _check_options(loss, alpha, 0.0)
    t = np.asarray(theta, dtype=np.float64).ravel()
    u = problem.n_utterances
    z = problem.X @ t[:-1] + t[-1]
    out = np.zeros(u)
    if loss in ("r2", "r3"):
        cross_entropy = np.logaddexp(0.0, z) - problem.y * z
        out += (alpha if loss == "r3" else 1.0) * np.bincount(
            problem.group, weights=cross_entropy, minlength=u
        )
    if loss in ("r1", "r3"):
        a = z / problem.temperature
        peak = problem.other_log_mass.copy()
        np.maximum.at(peak, problem.group, a)
        e = np.exp(a - peak[problem.group])
        other = np.exp(problem.other_log_mass - peak)
        den = np.bincount(problem.group, weights=e, minlength=u) + other
        num = np.bincount(problem.group, weights=e * problem.semer, minlength=u)
        out += (num + other * problem.other_semer) / den
    rows = np.empty(u, dtype=np.int64)
    rows[problem.group] = problem.order
    return rows, out
