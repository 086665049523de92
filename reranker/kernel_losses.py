"""The fused pass behind :func:`reranker.losses.objective`: R1, R2 and R3 and their gradients.

Layout (:func:`layout`, built once per problem): utterances are ordered by their number of rows
c, and the utterances of one c are cut into chunks of at most :data:`BLOCK_ROWS` rows. Inside a
chunk of G utterances the rows are stored rank-major: row ``r · G + g`` is the r-th row of the
chunk's g-th utterance. A chunk's per-row vector is then a ``(c, G)`` matrix whose columns are
utterances, so every per-utterance sum is ``sum(axis=0)`` (c vector additions) and every
per-utterance factor broadcasts over rows: no ``reduceat``, no ``repeat``, no index array.

Each chunk goes through every step while it is in cache: ``z = X w``, ``e^z``, the softmax sums,
the SemER-weighted terms, the cross-entropy terms and ``Xᵀ ∂/∂z``. So X is read from memory
once per evaluation and there is one exponential per row (two with τ ≠ 1 in R3).

Shortcuts that need no per-row work:

- R1 alone does not add the bias to each row: ``e^{b/τ}`` cancels in the softmax, so it divides
  the competitors' mass instead, and the weights are divided by τ before ``X w``.
- ``Σ_h y_h z_h = (Xᵀ y) · w + b Σ y``, with ``Xᵀ y`` computed once per problem.
- ``Σ_h log(1 + e^{z_h})`` is the logarithm of products of 16 factors ``1 + e^{z_h}`` (one
  logarithm per 16 rows); a chunk where a product overflows takes ``np.frexp`` mantissas
  instead. The rounding of ``1 + e^{z_h}`` (``δ_h``, at most half an ulp of 1 per row) is added
  back as ``δ_h / (1 + e^{z_h})`` when the chunk's sum is small enough for it to matter.

The pass applies when every utterance's softmax denominator (relative to the bias) lies in
``[e^-SAFE, e^SAFE]`` with ``SAFE =`` :data:`SAFE_EXPONENT`, every competitor log-mass is at
most SAFE in size, and every result is finite. Then no per-utterance shift is needed: softmax
ratios do not depend on it, and a row whose exponential underflows weighs at most e^-350 of its
utterance. Otherwise :func:`fused_objective` returns ``None`` and the caller takes the shifted
path of :mod:`reranker.losses`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController

__all__ = [
    "BLOCK_ROWS",
    "PARALLEL_ROWS",
    "SAFE_EXPONENT",
    "Blocks",
    "Layout",
    "fused_objective",
    "layout",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Rows per chunk: 32,768 rows of X (k ≤ ~30 columns) stay within a core's L2 and L3 share, and
# chunks this long keep each numpy call long enough that the two threads seldom wait on each
# other for the interpreter (at 8,192 rows the second thread gained nothing).
BLOCK_ROWS = 32768
SAFE_EXPONENT = 350.0  # e^±350 and sums of millions of such terms stay finite and normal
_PRODUCT = 16  # factors 1 + e^z multiplied per logarithm
_MANTISSAS = 32  # frexp mantissas multiplied per logarithm: 0.5^32 cannot underflow
_LN2 = float(np.log(2.0))
_ULP_HALF = float(np.finfo(np.float64).eps) / 2.0
_RANGE = (float(np.exp(-SAFE_EXPONENT)), float(np.exp(SAFE_EXPONENT)))  # of a denominator


@dataclass(frozen=True)
class Layout:
    """Where the rows of a problem go (see the module docstring).

    Attributes
    ----------
    rows : ndarray of shape (n,)
        Position ``i`` of the layout holds row ``rows[i]`` of the rows sorted by utterance.
    utterances : ndarray of shape (U,)
        Utterance ``j`` of the layout is utterance ``utterances[j]`` of the sorted rows.
    group : ndarray of shape (n,)
        Layout utterance of each layout row.
    bounds : ndarray of shape (m + 1, 3)
        Chunk b is layout rows ``bounds[b, 0]:bounds[b + 1, 0]``, utterances
        ``bounds[b, 1]:bounds[b + 1, 1]``, each of ``bounds[b, 2]`` rows.
    """

    rows: IntArray
    utterances: IntArray
    group: IntArray
    bounds: IntArray


def layout(starts: IntArray, n: int) -> Layout:
    """Chunks of utterances of equal row count, rows rank-major (utterance u starts at
    ``starts[u]`` of n rows sorted by utterance)."""
    counts = np.diff(np.append(starts, n)).astype(np.int64)
    utterances = np.argsort(counts, kind="stable").astype(np.int64)
    sorted_counts = counts[utterances]
    edges = np.flatnonzero(np.diff(sorted_counts)) + 1
    pieces, bounds, row = [], [], 0
    for lo, hi in zip(np.r_[0, edges], np.r_[edges, utterances.size], strict=True):
        c = int(sorted_counts[lo])
        step = max(1, BLOCK_ROWS // c)
        for g0 in range(int(lo), int(hi), step):
            members = utterances[g0 : min(g0 + step, int(hi))]
            pieces.append((starts[members][None, :] + np.arange(c)[:, None]).ravel())
            bounds.append((row, g0, c))
            row += c * members.size
    bounds.append((row, utterances.size, 0))
    rows = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64)
    group = np.empty(n, dtype=np.int64)
    for (r0, g0, c), (r1, g1, _) in pairwise(bounds):
        group[r0:r1] = np.tile(np.arange(g0, g1), c)
    return Layout(rows, utterances, group, np.asarray(bounds, dtype=np.int64).reshape(-1, 3))


@dataclass(frozen=True)
class Blocks:
    """Score-independent structure of one problem for the fused pass (built once).

    Attributes
    ----------
    bounds : ndarray of shape (m + 1, 3)
        The chunks of :class:`Layout`.
    other_exp, other_num : ndarray of shape (U,) or None
        ``e^{c_u}`` and ``e^{c_u} s_u`` of the competitors; ``None`` when some ``|c_u|`` is too
        large for the unshifted pass.
    xty : ndarray of shape (k,)
        ``Xᵀ y``.
    y_sum : float
        ``Σ y``.
    """

    bounds: IntArray
    other_exp: FloatArray | None
    other_num: FloatArray | None
    xty: FloatArray
    y_sum: float


def make_blocks(
    X: FloatArray,
    y: FloatArray,
    bounds: IntArray,
    other_log_mass: FloatArray,
    other_semer: FloatArray,
) -> Blocks:
    """The fused pass's structure for rows in the layout whose chunks are ``bounds``."""
    finite = other_log_mass[np.isfinite(other_log_mass)]
    other_exp = other_num = None
    if np.abs(finite).max(initial=0.0) <= SAFE_EXPONENT:
        other_exp = np.exp(other_log_mass)
        other_num = other_exp * other_semer
    return Blocks(bounds, other_exp, other_num, X.T @ y, float(y.sum()))


def _log1p_exp_sum(e: FloatArray, buffer: FloatArray) -> float:
    """``Σ log(1 + e_h)``; leaves ``1 + e_h`` in ``buffer`` (see the module docstring)."""
    np.add(e, 1.0, out=buffer)
    whole = buffer.size - buffer.size % _PRODUCT
    products = np.multiply.reduce(buffer[:whole].reshape(_PRODUCT, -1), axis=0)
    if products.size == 0 or products.max() <= 1e300:
        total = float(np.log(products).sum()) + float(np.log(buffer[whole:]).sum())
    else:
        mantissa, exponent = np.frexp(buffer)
        whole = mantissa.size - mantissa.size % _MANTISSAS
        total = float(np.log(np.multiply.reduce(mantissa[:whole].reshape(_MANTISSAS, -1))).sum())
        total += float(np.log(mantissa[whole:]).sum()) + _LN2 * float(exponent.sum())
    if total <= 1e4 * _ULP_HALF * e.size:  # the rounding of 1 + e could show: add it back
        delta = np.subtract(buffer, 1.0)
        np.subtract(e, delta, out=delta)  # fl(1 + e) drops the low bits of a small e
        delta /= buffer
        total += float(delta.sum())
    return total


def _r1_chunk(
    e: FloatArray, semer: FloatArray, other: tuple[FloatArray, FloatArray], c: int, scale: float
) -> tuple[float, FloatArray, float] | None:
    """Sum of E_u over a chunk's utterances, ``scale · ∂(Σ E_u)/∂a_h`` of each row (written
    over ``e``'s product with SemER; ``e`` is overwritten) and the sum of those; ``None`` when
    a denominator is out of range."""
    weighted = e * semer
    e2, w2 = e.reshape(c, -1), weighted.reshape(c, -1)
    den_own, num_own = e2.sum(axis=0), w2.sum(axis=0)
    den, num = den_own + other[0], num_own + other[1]
    if not (_RANGE[0] <= den.min() and den.max() <= _RANGE[1]):
        return None
    expected = num / den
    r = scale / den  # ∂/∂a_h = scale · e_h (SemER_h - E_u) / den_u = SemER_h e_h r_u - e_h q_u
    q = expected * r
    w2 *= r
    e2 *= q
    weighted -= e
    return float(expected.sum()), weighted, float(np.dot(r, num_own) - np.dot(q, den_own))


def _competitors(blocks: Blocks, shift: float) -> tuple[FloatArray, FloatArray]:
    """The competitors' mass and SemER-weighted mass relative to ``e^shift``."""
    assert blocks.other_exp is not None and blocks.other_num is not None
    if shift == 0.0:
        return blocks.other_exp, blocks.other_num
    factor = np.exp(-shift)
    return blocks.other_exp * factor, blocks.other_num * factor


def _passes(
    theta: FloatArray,
    X: FloatArray,
    semer: FloatArray,
    blocks: Blocks,
    temperature: float,
    scales: tuple[float, float],
    chunks: range,
) -> tuple[float, float, FloatArray] | None:
    """Over the given chunks: ``Σ_u E_u``, ``Σ_h softplus(z_h)`` and
    ``Xᵀ (scales[0] ∂Σ E_u/∂a + scales[1] σ(z))`` (a term is skipped when its scale is 0)."""
    k = theta.size - 1
    w, bias = theta[:-1], float(theta[-1])
    r1, r2 = scales[0] != 0.0, scales[1] != 0.0
    alone = not r2  # R1 alone: no bias on the rows, weights divided by τ
    wz = w / temperature if alone else w
    grad = np.zeros(k + 1)
    r1_sum = softplus = 0.0
    bounds = blocks.bounds
    buffer = np.empty(int(np.diff(bounds[chunks.start : chunks.stop + 1, 0]).max()))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        other = _competitors(blocks, bias / temperature if alone else 0.0) if r1 else None
        for b in chunks:
            (r0, u0, c), (r1_, u1) = bounds[b], bounds[b + 1, :2]
            Xb = X[r0:r1_]
            z = Xb @ wz
            if not alone:
                z += bias
            e = np.exp(z) if r1 and r2 and temperature != 1.0 else np.exp(z, out=z)
            gz = buffer[: z.size]
            if r2:
                softplus += _log1p_exp_sum(e, gz)
                np.divide(e, gz, out=gz)  # sigmoid(z)
                gz *= scales[1]
                grad[k] += gz.sum()
                if r1 and temperature != 1.0:
                    e = np.exp(z / temperature)
            if r1:
                assert other is not None
                part = _r1_chunk(
                    e, semer[r0:r1_], (other[0][u0:u1], other[1][u0:u1]), int(c), scales[0]
                )
                if part is None:
                    return None
                r1_sum += part[0]
                grad[k] += part[2]
                gz = np.add(gz, part[1], out=gz) if r2 else part[1]
            grad[:k] += Xb.T @ gz
    return r1_sum, softplus, grad


PARALLEL_ROWS = 100_000  # from this many rows the chunks are shared by two threads
_POOL: tuple[int, ThreadPoolExecutor, ThreadpoolController] | None = None


def _pool() -> tuple[ThreadPoolExecutor, ThreadpoolController]:
    """One worker thread and the BLAS controller, made once per process (and after a fork)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(1), ThreadpoolController())
    return _POOL[1], _POOL[2]


def _blas_threads() -> int:
    """BLAS threads the process allows now (1 in a worker kept on one core)."""
    blas = [c for c in _pool()[1].lib_controllers if c.user_api == "blas"]
    return max((int(c.num_threads) for c in blas), default=os.cpu_count() or 1)


def _halves(bounds: IntArray) -> list[range]:
    """The chunks in one range, or in two of about equal rows when there are enough rows and
    the process may use two cores."""
    m, n = bounds.shape[0] - 1, int(bounds[-1, 0])
    if n < PARALLEL_ROWS or m < 2 or (os.cpu_count() or 1) < 2 or _blas_threads() < 2:
        return [range(m)]
    middle = int(np.clip(np.searchsorted(bounds[:, 0], n // 2), 1, m - 1))
    return [range(middle), range(middle, m)]


def _all_passes(
    theta: FloatArray,
    X: FloatArray,
    semer: FloatArray,
    blocks: Blocks,
    temperature: float,
    scales: tuple[float, float],
) -> tuple[float, float, FloatArray] | None:
    """:func:`_passes` over every chunk, the second half in a worker thread (BLAS on one
    thread meanwhile); the halves depend only on the problem, so results do too."""
    halves = _halves(blocks.bounds)
    if len(halves) == 1:
        return _passes(theta, X, semer, blocks, temperature, scales, halves[0])
    pool, controller = _pool()
    with controller.limit(limits=1, user_api="blas"):
        future = pool.submit(_passes, theta, X, semer, blocks, temperature, scales, halves[1])
        first = _passes(theta, X, semer, blocks, temperature, scales, halves[0])
        second = future.result()
    if first is None or second is None:
        return None
    return first[0] + second[0], first[1] + second[1], first[2] + second[2]


def fused_objective(
    theta: FloatArray,
    X: FloatArray,
    semer: FloatArray,
    blocks: Blocks,
    *,
    n_utterances: int,
    temperature: float,
    r1: bool,
    r2_weight: float,
) -> tuple[float, FloatArray] | None:
    """Unpenalised ``R1 (if r1) + r2_weight · R2`` and its gradient in ``theta = [w, b]``.

    Returns ``None`` when some exponent is too large for the unshifted pass.
    """
    if r1 and blocks.other_exp is None:
        return None
    u = float(n_utterances)
    scales = (1.0 / (temperature * u) if r1 else 0.0, r2_weight / u)
    out = _all_passes(theta, X, semer, blocks, temperature, scales)
    if out is None:
        return None
    r1_sum, softplus, grad = out
    k = theta.size - 1
    value = r1_sum / u
    if r2_weight != 0.0:  # Σ y z and Xᵀ y from the per-problem sums
        w, bias = theta[:-1], float(theta[-1])
        value += r2_weight * (softplus - float(np.dot(blocks.xty, w)) - bias * blocks.y_sum) / u
        grad[:k] -= (r2_weight / u) * blocks.xty
        grad[k] -= (r2_weight / u) * blocks.y_sum
    if not (np.isfinite(value) and np.isfinite(grad).all()):
        return None
    return value, grad
