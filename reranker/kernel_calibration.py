"""Smooth ECE (Błasiok and Nakkiran, 2023): binning-free calibration error with a kernel.

With residuals ``r_i = w_i (y_i - s_i) / Σ w`` and the Gaussian kernel reflected at both ends of
[0, 1], ``K_σ(t, s) = Σ_k φ_σ(t - s - 2k) + φ_σ(t + s - 2k)``,

.. math:: \\mathrm{smECE}_\\sigma = \\int_0^1 \\Big| \\sum_i r_i K_\\sigma(t, s_i) \\Big| \\, dt ,

and the hyper-parameter-free smooth ECE is its value at the fixed point ``σ* = smECE_σ*``
(smECE decreases in σ, so the fixed point is unique).

Computation, in one or two passes over the scores whatever N is:

1. the residuals are spread onto ``M + 1`` grid points ``j / M`` by linear binning (each score
   splits its residual between its two neighbouring points), which is exact for anything linear
   in the position and leaves an error of order ``(1/(Mσ))²``;
2. the reflected kernel is a circular convolution on the even extension of the grid to
   [0, 2), done with one real FFT per bandwidth; the integral is the trapezoid rule;
3. the grid is kept at least 16 points per σ, as relplot does with its σ-scaled grid: if the
   fixed point found on the first grid is narrower than that, the scores are binned again on a
   finer grid and the fixed point is refined there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, NDArray

from reranker.errors import DataError
from reranker.scored_pairs import check_pair

__all__ = ["first_grid", "linear_binning", "reflected_kernel", "smooth_ece", "smooth_ece_of_masses"]

FloatArray = NDArray[np.float64]
_POINTS_PER_SIGMA = 16
_FIRST_GRID = 2**12
_MAX_GRID = 2**22
_SIGMA_RANGE = (1e-4, 1.0)


def reflected_kernel(grid: FloatArray, centers: FloatArray, sigma: float) -> FloatArray:
    """The matrix ``K_σ(grid[i], centers[j])`` of the kernel above (integrates to 1 over [0, 1]).

    Images at distance ``2k`` for ``|k| <= 2`` are summed, exact to double precision for
    ``σ <= 1``. The bootstrapped smooth ECE of a slice applies it to many residual vectors at
    once (:mod:`reranker.calibration_slices`).
    """
    diff = grid[:, None] - centers[None, :]
    total = np.zeros_like(diff)
    for k in range(-2, 3):
        total += np.exp(-0.5 * ((diff - 2 * k) / sigma) ** 2)
        total += np.exp(-0.5 * ((grid[:, None] + centers[None, :] - 2 * k) / sigma) ** 2)
    return total / (sigma * np.sqrt(2 * np.pi))


def _grid_for(sigma: float, at_least: int) -> int:
    """Intervals of the grid for bandwidth σ: a power of two with spacing at most σ / 16."""
    need = max(at_least, int(np.ceil(_POINTS_PER_SIGMA / sigma)))
    return int(min(_MAX_GRID, 1 << int(np.ceil(np.log2(need)))))


def first_grid(n: int, grid_size: int | None = None) -> int:
    """Intervals of the first grid the fixed-point search uses for ``n`` scores."""
    at_least = int(grid_size) if grid_size else 256
    # smECE of n scores is rarely below 1/sqrt(n): start on a grid fine enough for that
    return _grid_for(1.0 / np.sqrt(max(n, 1)), max(_FIRST_GRID, at_least))


def linear_binning(s: FloatArray, r: FloatArray, m: int) -> FloatArray:
    """Residual mass at the grid points ``j / m``, ``j = 0 .. m``."""
    pos = s * m
    j = pos.astype(np.intp)
    np.minimum(j, m - 1, out=j)
    pos -= j  # fraction of the way to the right neighbour (1 for a score of exactly 1)
    right = pos
    right *= r
    mass = np.bincount(j, weights=r - right, minlength=m + 1).astype(np.float64)
    mass[1:] += np.bincount(j, weights=right, minlength=m)
    return mass


class _Grid:
    """Residual masses on a grid of ``m`` intervals, ready for any bandwidth."""

    def __init__(self, mass: FloatArray, m: int) -> None:
        self.m = m
        circle = np.concatenate([mass, mass[-2:0:-1]])  # even extension to [0, 2)
        circle[0] *= 2.0  # a mass on an end coincides with its own image
        circle[m] *= 2.0
        self.spectrum = scipy.fft.rfft(circle)

    def smece(self, sigma: float) -> float:
        """``smECE_σ`` by FFT convolution and the trapezoid rule.

        The kernel sampled on the circle, ``Σ_k φ_σ(j/m + 2k)``, has the discrete Fourier
        transform ``m exp(-π² σ² q² / 2)`` (Poisson summation; the aliased terms are below
        ``exp(-π² σ² m² / 2)``, nil on any grid with 16 points per σ).
        """
        m = self.m
        q = np.arange(m + 1, dtype=np.float64)
        spectrum = self.spectrum * (m * np.exp(-0.5 * (np.pi * sigma * q) ** 2))
        f = np.abs(scipy.fft.irfft(spectrum, n=2 * m)[: m + 1])
        return float((f.sum() - 0.5 * (f[0] + f[m])) / m)


def _fixed_point(grid: _Grid, low: float, high: float) -> float:
    """The σ in [low, high] with ``smECE_σ = σ`` (``low`` if smECE is below it there)."""
    from scipy.optimize import brentq  # on first use: importing it takes longer than a search

    if grid.smece(low) <= low:
        return low
    return float(brentq(lambda v: grid.smece(v) - v, low, high, xtol=1e-12, rtol=1e-9))


def smooth_ece(
    correct: ArrayLike,
    score: ArrayLike,
    *,
    bandwidth: float | None = None,
    sample_weight: ArrayLike | None = None,
    grid_size: int | None = None,
) -> float:
    """Smooth ECE of Błasiok and Nakkiran (2023), with a reflected Gaussian kernel.

    .. math:: \\mathrm{smECE}_\\sigma = \\int_0^1 \\Big| \\tfrac{1}{N} \\sum_i
              K_\\sigma(t, s_i)(y_i - s_i) \\Big| \\, dt

    Parameters
    ----------
    correct, score : array-like of shape (n,)
    bandwidth : float, optional
        σ; by default the fixed point ``σ* = smECE_σ*`` (searched in [1e-4, 1]), the paper's
        hyper-parameter-free choice.
    sample_weight : array-like of shape (n,), optional
    grid_size : int, optional
        Least number of grid intervals; the grid is refined to at least 16 points per σ in
        any case (see the module docstring).

    Returns
    -------
    float
        ``nan`` for an empty sample.
    """
    pairs = check_pair(correct, score, sample_weight)
    total = pairs.total
    if total == 0:
        return float("nan")
    r = pairs.y_float() - pairs.s
    if pairs.w is not None:
        r *= pairs.w
    r /= total
    if bandwidth is not None:
        if not bandwidth > 0:
            raise DataError(f"bandwidth must be positive, got {bandwidth!r}")
        m = _grid_for(bandwidth, int(grid_size) if grid_size else 256)
        return _Grid(linear_binning(pairs.s, r, m), m).smece(bandwidth)
    return smooth_ece_of_masses(
        lambda m: linear_binning(pairs.s, r, m), pairs.s.size, grid_size=grid_size
    )


def smooth_ece_of_masses(
    masses: Callable[[int], FloatArray], n: int, *, grid_size: int | None = None
) -> float:
    """The fixed-point smooth ECE of ``n`` scores from their residual masses on any grid.

    ``masses(m)`` returns the residuals ``r_i`` (normalised to the total weight) spread onto
    ``m + 1`` grid points by :func:`linear_binning`; it is called for the first grid
    (:func:`first_grid`) and for each finer grid the search needs. Residual masses add up over
    partitions of the scores, so partitioned data need only their merged masses.
    """
    at_least = int(grid_size) if grid_size else 256
    m = first_grid(n, grid_size)
    grid = _Grid(masses(m), m)
    low, high = _SIGMA_RANGE
    sigma = _fixed_point(grid, low, high)
    while _grid_for(sigma, at_least) > grid.m:
        m = _grid_for(sigma, at_least)
        grid = _Grid(masses(m), m)
        lo, hi = max(low, sigma / 2), min(high, sigma * 2)
        if not (grid.smece(lo) > lo and grid.smece(hi) < hi):
            lo, hi = low, high
        sigma = _fixed_point(grid, lo, hi)
    return grid.smece(sigma)
