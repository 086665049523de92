"""The fused pass behind :func:`reranker.losses.objective`: R1, R2 and R3 and their gradients.

Rows are sorted by utterance. They are cut, at utterance boundaries, into blocks of about
:data:`BLOCK_ROWS` rows, and each block goes through every step while it is in cache: ``z = X w
+ b``, ``e^z``, the per-utterance softmax sums (``np.add.reduceat`` over the block's contiguous
utterances), the SemER-weighted terms, the cross-entropy terms and ``Xᵀ ∂/∂z``. So X is read
from memory once per evaluation, there is one exponential per row (two with τ ≠ 1) and no
temporary larger than a block.

Two sums are rewritten so that they need no per-row work beyond that:

- ``Σ_h y_h z_h = (Xᵀ y) · w + b Σ y``, with ``Xᵀ y`` computed once per problem;
- ``Σ_h log(1 + e^{z_h})`` is ``Σ log m_h + ln 2 · Σ k_h`` where ``1 + e^{z_h} = m_h 2^{k_h}``
  (``np.frexp``, ``m_h`` in [0.5, 1)); the mantissas are multiplied 32 at a time (a product of 32
  is at least 2⁻³² and cannot underflow) so one logarithm serves 32 rows; the rounding of
  ``1 + e^{z_h}`` is added back as ``δ_h / (1 + e^{z_h})``, so tiny terms are not lost.

The pass applies when every ``|z/τ|``, ``|z|`` and competitor log-mass is at most
:data:`SAFE_EXPONENT` (then ``e^{z/τ}`` needs no per-utterance shift: softmax ratios do not
depend on it). Otherwise :func:`fused_objective` returns ``None`` and the caller takes the
shifted path of :mod:`reranker.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["BLOCK_ROWS", "SAFE_EXPONENT", "Blocks", "fused_objective", "make_blocks"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

BLOCK_ROWS = 16384  # a block of X (k ≤ ~30 columns) and its temporaries stay in cache
SAFE_EXPONENT = 350.0  # e^±350 and sums of millions of such terms stay finite and normal
_PRODUCT = 32  # mantissas multiplied per logarithm: 0.5^32 cannot underflow
_LN2 = float(np.log(2.0))


@dataclass(frozen=True)
class Blocks:
    """Score-independent structure of one problem for the fused pass (built once).

    Attributes
    ----------
    rows : ndarray of shape (m + 1,)
        Block b is rows ``rows[b]:rows[b + 1]``; every boundary is an utterance start.
    groups : ndarray of shape (m + 1,)
        Block b holds utterances ``groups[b]:groups[b + 1]``.
    local_starts : list of ndarray
        First row of each utterance of block b, relative to ``rows[b]``.
    counts : ndarray of shape (U,)
        Rows of each utterance.
    other_exp, other_num : ndarray of shape (U,) or None
        ``e^{c_u}`` and ``e^{c_u} s_u`` of the competitors; ``None`` when some ``|c_u|`` is too
        large for the unshifted pass.
    max_rows : int
        Rows of the largest block.
    xty : ndarray of shape (k,)
        ``Xᵀ y``.
    y_sum : float
        ``Σ y``.
    """

    rows: IntArray
    groups: IntArray
    local_starts: list[IntArray]
    counts: IntArray
    other_exp: FloatArray | None
    other_num: FloatArray | None
    max_rows: int
    xty: FloatArray
    y_sum: float


def make_blocks(
    X: FloatArray,
    y: FloatArray,
    starts: IntArray,
    other_log_mass: FloatArray,
    other_semer: FloatArray,
) -> Blocks:
    """Cut rows sorted by utterance (utterance u starts at ``starts[u]``) into blocks."""
    n = X.shape[0]
    wanted = np.searchsorted(starts, np.arange(0, n, BLOCK_ROWS), side="left")
    groups = np.unique(np.r_[wanted, starts.size]).astype(np.int64)
    rows = np.append(starts, n)[groups].astype(np.int64)
    local = [starts[groups[b] : groups[b + 1]] - rows[b] for b in range(groups.size - 1)]
    finite = other_log_mass[np.isfinite(other_log_mass)]
    other_exp = other_num = None
    if np.abs(finite).max(initial=0.0) <= SAFE_EXPONENT:
        other_exp = np.exp(other_log_mass)
        other_num = other_exp * other_semer
    return Blocks(
        rows=rows,
        groups=groups,
        local_starts=local,
        counts=np.diff(np.append(starts, n)).astype(np.int64),
        other_exp=other_exp,
        other_num=other_num,
        max_rows=int(np.diff(rows).max(initial=0)),
        xty=X.T @ y,
        y_sum=float(y.sum()),
    )


def _log1p_exp_sum(e: FloatArray, buffer: FloatArray) -> float:
    """``Σ log(1 + e_h)`` with one logarithm per 32 rows (see the module docstring)."""
    np.add(e, 1.0, out=buffer)
    mantissa, exponent = np.frexp(buffer)
    whole = mantissa.size - mantissa.size % _PRODUCT
    total = float(np.log(np.multiply.reduce(mantissa[:whole].reshape(_PRODUCT, -1))).sum())
    total += float(np.log(mantissa[whole:]).sum())
    # fl(1 + e) drops the low bits of a small e: add back log(1 + δ/u) ≈ δ/u, δ = e - (u - 1)
    delta = np.subtract(buffer, 1.0)
    np.subtract(e, delta, out=delta)
    delta /= buffer
    return total + _LN2 * float(exponent.sum()) + float(delta.sum())


def _r1_block(
    e: FloatArray, semer: FloatArray, blocks: Blocks, b: int, scale: float
) -> tuple[float, FloatArray]:
    """Sum of E_u over block b's utterances, and ``scale · ∂(Σ E_u)/∂a_h`` of each row."""
    g0, g1 = blocks.groups[b], blocks.groups[b + 1]
    assert blocks.other_exp is not None and blocks.other_num is not None
    starts, counts = blocks.local_starts[b], blocks.counts[g0:g1]
    den = np.add.reduceat(e, starts)
    den += blocks.other_exp[g0:g1]
    num = np.add.reduceat(e * semer, starts)
    num += blocks.other_num[g0:g1]
    expected = num / den
    grad = semer - np.repeat(expected, counts)
    grad *= e
    grad *= np.repeat(scale / den, counts)
    return float(expected.sum()), grad


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
    w, bias = theta[:-1], float(theta[-1])
    k, u = w.size, float(n_utterances)
    limit = SAFE_EXPONENT * min(1.0, temperature)
    grad = np.zeros(k + 1)
    r1_sum = softplus = 0.0
    buffer = np.empty(blocks.max_rows)
    for b in range(blocks.rows.size - 1):
        rows = slice(blocks.rows[b], blocks.rows[b + 1])
        Xb = X[rows]
        z = Xb @ w
        z += bias
        if max(z.max(), -z.min()) > limit:
            return None
        e = np.exp(z) if r2_weight != 0.0 or temperature == 1.0 else z
        gz: FloatArray | None = None
        if r2_weight != 0.0:
            softplus += _log1p_exp_sum(e, buffer[: z.size])
            gz = e / buffer[: z.size]  # sigmoid(z) = e^z / (1 + e^z)
            gz *= r2_weight / u
        if r1:
            ea = e if temperature == 1.0 else np.exp(z / temperature)
            part, grad_r1 = _r1_block(ea, semer[rows], blocks, b, 1.0 / (temperature * u))
            r1_sum += part
            gz = grad_r1 if gz is None else np.add(gz, grad_r1, out=gz)
        assert gz is not None
        grad[:k] += Xb.T @ gz
        grad[k] += gz.sum()
    value = r1_sum / u
    if r2_weight != 0.0:  # Σ y z and Xᵀ y from the per-problem sums
        value += r2_weight * (softplus - float(np.dot(blocks.xty, w)) - bias * blocks.y_sum) / u
        grad[:k] -= (r2_weight / u) * blocks.xty
        grad[k] -= (r2_weight / u) * blocks.y_sum
    return value, grad
