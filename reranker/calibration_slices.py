"""Calibration of slices of a scored table, with utterance-bootstrap intervals.

Definitions: docs/metrics.md#calibration, docs/metrics.md#slices, docs/metrics.md#intervals.

A slice is a domain, a device or both (:func:`slice_masks`); its calibration sample holds every
hypothesis or each utterance's top one (:func:`calibration_sample`). Point values are the exact
metrics of :mod:`reranker.calibration`; intervals resample **utterances** through per-utterance
sufficient statistics, so a resample costs a sparse product over utterances rather than a pass
over the hypotheses.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from reranker._validation import POPULATIONS, check_choice, references_needed
from reranker.bootstrap import bootstrap_interval, bootstrap_intervals, weight_chunks
from reranker.calibration import (
    ReliabilityCurve,
    Strategy,
    bin_indices,
    brier_loss,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_curve,
    smooth_ece,
)
from reranker.errors import DataError
from reranker.evaluation import Population
from reranker.kernel_calibration import reflected_kernel
from reranker.tables import ScoredTable, column_at, column_equals

__all__ = [
    "calibration_metrics",
    "calibration_sample",
    "metrics_frame",
    "slice_curve",
    "slice_masks",
    "smooth_calibration",
]

FloatArray = NDArray[np.float64]


def slice_masks(
    scored: ScoredTable, *, domain: str | None = None, device: str | None = None
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Hypothesis and utterance masks of a slice, as docs/metrics.md#slices defines them.

    A device slice keeps whole utterances. A domain slice D keeps, for the all-hypothesis
    metrics, the hypotheses D produced, and for the top-1 metrics the utterances whose reference
    domain is D (their whole n-best still competes). Both filters may be combined.
    """
    frame = scored.hypotheses
    hyp = np.ones(len(frame), dtype=bool)
    utt = np.ones(scored.top.size, dtype=bool)
    if device is not None:
        hyp &= column_equals(frame, "device", device)
        utt &= column_at(frame, "device", scored.top) == device
    if domain is not None:
        hyp &= column_equals(frame, "domain", domain)
        if "ref_domain" in frame.columns:
            utt &= column_at(frame, "ref_domain", scored.top) == domain
        else:
            utt &= column_at(frame, "domain", scored.top) == domain
    return hyp, utt


def calibration_sample(
    scored: ScoredTable,
    *,
    population: Population = "all",
    domain: str | None = None,
    device: str | None = None,
) -> tuple[FloatArray, FloatArray, NDArray[np.uint64]]:
    """The ``(correct, score, utterance key)`` arrays entering calibration for a slice.

    The key (:func:`reranker.bootstrap.utterance_keys`) groups rows by utterance and fixes each
    utterance's bootstrap weights.
    """
    if scored.correct is None:
        raise DataError(references_needed("calibration"))
    check_choice("population", population, POPULATIONS)
    hyp, utt = slice_masks(scored, domain=domain, device=device)
    if population == "all":
        rows = np.flatnonzero(hyp)
    else:
        rows = scored.top[utt]
    return (
        scored.correct[rows].astype(np.float64),
        scored.score[rows],
        scored.utterance_keys[scored.codes[rows]],
    )


def slice_curve(
    correct: FloatArray,
    score: FloatArray,
    groups: NDArray[np.uint64],
    *,
    n_bins: int = 10,
    strategy: Strategy = "uniform",
    n_boot: int = 0,
    confidence: float = 0.9,
    seed: int = 0,
) -> ReliabilityCurve:
    """Reliability curve of a calibration sample with utterance-bootstrap bands.

    Same statistics as :func:`reranker.reliability_curve`; the bands resample utterances
    through per-utterance bin sums (a sparse product per resample).
    """
    curve = reliability_curve(correct, score, n_bins=n_bins, strategy=strategy)
    if n_boot <= 0 or correct.size == 0:
        return curve
    idx, _ = bin_indices(score, n_bins=n_bins, strategy=strategy)
    g, utt_keys = _compact(groups)
    n_groups = utt_keys.size
    count_m = _group_bin_matrix(g, idx, np.ones_like(score), n_groups, n_bins)
    correct_m = _group_bin_matrix(g, idx, correct, n_groups, n_bins)
    fracs = np.empty((n_boot, n_bins))
    for start, w in weight_chunks(utt_keys, n_boot, seed=seed):
        c = (count_m.T @ w.T).T
        y = (correct_m.T @ w.T).T
        with np.errstate(invalid="ignore", divide="ignore"):
            fracs[start : start + len(w)] = np.where(c > 0, y / np.where(c > 0, c, 1), np.nan)
    low, high = bootstrap_intervals(curve.frac_correct, fracs, confidence=confidence)
    return ReliabilityCurve(
        curve.edges, curve.count, curve.mean_score, curve.frac_correct, low, high
    )


def _compact(groups: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
    """Dense index of each row's utterance, and the utterance keys in that order."""
    uniques, inverse = np.unique(groups, return_inverse=True)
    return inverse.astype(np.int64), uniques


def _group_bin_matrix(
    groups: NDArray[np.int64],
    bins: NDArray[np.int64],
    values: FloatArray,
    n_groups: int,
    n_bins: int,
) -> sparse.csr_matrix:
    return sparse.csr_matrix(sparse.coo_matrix((values, (groups, bins)), shape=(n_groups, n_bins)))


@lru_cache(maxsize=2)
def _kernel_stack(grid_size: int, n_sigma: int) -> tuple[FloatArray, NDArray[np.float32]]:
    """The reflected Gaussian kernel of :func:`reranker.smooth_ece` on a log-spaced bandwidth grid.

    Evaluated once per grid for bootstrapped smooth ECE.
    """
    sigmas = np.geomspace(1e-3, 1.0, n_sigma)
    centers = (np.arange(grid_size) + 0.5) / grid_size
    stack = np.empty((n_sigma, grid_size, grid_size), dtype=np.float32)
    for i, sigma in enumerate(sigmas):
        stack[i] = reflected_kernel(centers, centers, float(sigma))
    return sigmas, stack


def _smooth_ece_on_grid(residuals: FloatArray, grid_size: int, n_sigma: int) -> FloatArray:
    """Approximate smooth ECE (fixed point of smECE_σ = σ) for each row of fine-bin residuals."""
    sigmas, stack = _kernel_stack(grid_size, n_sigma)
    # values[b, i] = mean_t |(K_σi @ r_b)(t)|
    dens = np.einsum("sij,bj->bsi", stack, residuals.astype(np.float32), optimize=True)
    values = np.abs(dens).mean(axis=2).astype(np.float64)
    out = np.empty(values.shape[0])
    for b, v in enumerate(values):
        # v decreases in σ; find where v(σ) - σ changes sign and interpolate in log σ.
        diff = v - sigmas
        cross = np.flatnonzero(diff <= 0)
        if cross.size == 0:
            out[b] = v[-1]
        elif cross[0] == 0:
            out[b] = v[0]
        else:
            i = cross[0]
            t = diff[i - 1] / (diff[i - 1] - diff[i])
            out[b] = v[i - 1] + t * (v[i] - v[i - 1])
    return out


def calibration_metrics(
    scored: ScoredTable,
    *,
    n_bins: int = 10,
    strategy: Strategy = "uniform",
    population: Population = "all",
    domain: str | None = None,
    device: str | None = None,
    n_boot: int = 0,
    confidence: float = 0.9,
    seed: int = 0,
    smooth: bool = True,
) -> dict[str, dict[str, float | None]]:
    """ECE, MCE, Brier, smooth ECE, top-1 ECE, SemER and IE of a slice, with bootstrap intervals.

    Returns ``{metric: {"value", "low", "high"}}`` plus ``n_utterances`` and ``n_hypotheses``
    (``value`` only). Point values are exact (the definitions of docs/metrics.md#calibration on the
    raw scores); intervals come from ``n_boot`` resamples of utterances. In a resample the bin edges
    stay those of the full sample (equal-mass bins are not re-cut), and smooth ECE is evaluated on a
    log-spaced bandwidth grid.
    """
    if scored.correct is None or scored.semer is None:
        raise DataError(references_needed("calibration"))
    y, s, g = calibration_sample(scored, population=population, domain=domain, device=device)
    _, utt = slice_masks(scored, domain=domain, device=device)
    top_rows = scored.top[utt]
    y_top = scored.correct[top_rows].astype(np.float64)
    s_top = scored.score[top_rows]
    semer_top = scored.semer[top_rows]

    values = _point_metrics(
        y, s, y_top, s_top, semer_top, n_bins=n_bins, strategy=strategy, smooth=smooth
    )
    out: dict[str, dict[str, float | None]] = {
        k: {"value": v, "low": None, "high": None} for k, v in values.items()
    }
    out["n_utterances"] = {"value": float(top_rows.size), "low": None, "high": None}
    out["n_hypotheses"] = {"value": float(y.size), "low": None, "high": None}
    if n_boot <= 0 or y.size == 0 or top_rows.size == 0:
        return out
    samples = _bootstrap_metrics(
        y, s, g, y_top, s_top, semer_top, scored.utterance_keys[scored.codes[top_rows]],
        n_bins=n_bins, strategy=strategy, n_boot=n_boot, seed=seed, smooth=smooth,
    )  # fmt: skip
    for key, col in samples.items():
        estimate = values[key]
        if estimate is not None:
            lo, hi = bootstrap_interval(estimate, col, confidence=confidence)
            if np.isfinite(lo):
                out[key]["low"], out[key]["high"] = lo, hi
    return out


def _point_metrics(
    y: FloatArray,
    s: FloatArray,
    y_top: FloatArray,
    s_top: FloatArray,
    semer_top: FloatArray,
    *,
    n_bins: int,
    strategy: Strategy,
    smooth: bool,
) -> dict[str, float | None]:
    """The exact metrics of the slice (``None`` where undefined, as for an empty slice)."""

    def nan_none(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    return {
        "ece": nan_none(expected_calibration_error(y, s, n_bins=n_bins, strategy=strategy)),
        "mce": nan_none(maximum_calibration_error(y, s, n_bins=n_bins, strategy=strategy)),
        "brier": nan_none(brier_loss(y, s)),
        "smooth_ece": nan_none(smooth_ece(y, s)) if smooth and y.size else None,
        "ece_top1": nan_none(
            expected_calibration_error(y_top, s_top, n_bins=n_bins, strategy=strategy)
        ),
        "top1_semer": float(semer_top.mean()) if semer_top.size else None,
        "top1_ie": float(1.0 - y_top.mean()) if y_top.size else None,
    }


def _bootstrap_metrics(
    y: FloatArray,
    s: FloatArray,
    g: NDArray[np.uint64],
    y_top: FloatArray,
    s_top: FloatArray,
    semer_top: FloatArray,
    g_top: NDArray[np.uint64],
    *,
    n_bins: int,
    strategy: Strategy,
    n_boot: int,
    seed: int,
    smooth: bool,
) -> dict[str, FloatArray]:
    # One utterance index space covering both samples, so a resample weighs them consistently.
    inverse, utt_keys = _compact(np.r_[g, g_top])
    n_groups = int(utt_keys.size)
    gu, gt = inverse[: g.size], inverse[g.size :]
    idx, _ = bin_indices(s, n_bins=n_bins, strategy=strategy)
    idx_top, _ = bin_indices(s_top, n_bins=n_bins, strategy=strategy)
    per_bin = [_group_bin_matrix(gu, idx, v, n_groups, n_bins) for v in (np.ones_like(s), s, y)]
    per_bin_top = [
        _group_bin_matrix(gt, idx_top, v, n_groups, n_bins)
        for v in (np.ones_like(s_top), s_top, y_top)
    ]
    sq = np.bincount(gu, weights=(s - y) ** 2, minlength=n_groups)
    n_u = np.bincount(gu, minlength=n_groups).astype(np.float64)
    top_semer = np.bincount(gt, weights=semer_top, minlength=n_groups)
    top_wrong = np.bincount(gt, weights=1.0 - y_top, minlength=n_groups)
    top_n = np.bincount(gt, minlength=n_groups).astype(np.float64)
    resid_m = _fine_residuals(gu, y, s, n_groups) if smooth else None
    keys = ("ece", "mce", "brier", "ece_top1", "top1_semer", "top1_ie", "smooth_ece")
    out = {k: np.full(n_boot, np.nan) for k in keys}
    for start, w in weight_chunks(utt_keys, n_boot, seed=seed):
        sl = slice(start, start + len(w))
        c, ss, sy = (np.asarray((m.T @ w.T).T) for m in per_bin)
        ct, sst, syt = (np.asarray((m.T @ w.T).T) for m in per_bin_top)
        total = c.sum(axis=1)
        total_top = ct.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.abs(sy - ss)
            out["ece"][sl] = gap.sum(axis=1) / total
            out["mce"][sl] = np.nanmax(np.where(c > 0, gap / np.where(c > 0, c, 1), np.nan), 1)
            out["brier"][sl] = (w @ sq) / (w @ n_u)
            out["ece_top1"][sl] = np.abs(syt - sst).sum(axis=1) / total_top
            out["top1_semer"][sl] = (w @ top_semer) / (w @ top_n)
            out["top1_ie"][sl] = (w @ top_wrong) / (w @ top_n)
            if resid_m is not None:
                out["smooth_ece"][sl] = _smooth_replicates(resid_m, w, total)
    return out


_FINE_BINS = 200
"""Fine bins of the scores on which bootstrap resamples of smooth ECE are evaluated."""
_BANDWIDTHS = 48
"""Log-spaced bandwidths of that evaluation."""


def _fine_residuals(
    groups: NDArray[np.int64], y: FloatArray, s: FloatArray, n_groups: int
) -> sparse.csr_matrix:
    """Per utterance and fine score bin, the summed residuals ``y - s``."""
    fine = np.minimum((s * _FINE_BINS).astype(np.int64), _FINE_BINS - 1)
    return _group_bin_matrix(groups, fine, y - s, n_groups, _FINE_BINS)


def _smooth_replicates(
    residuals: sparse.csr_matrix, w: FloatArray, totals: FloatArray
) -> FloatArray:
    """Smooth ECE of each resample (rows of utterance weights ``w``; ``totals`` its hypotheses)."""
    resid = np.asarray((residuals.T @ w.T).T) / totals[:, None]
    return _smooth_ece_on_grid(resid, _FINE_BINS, _BANDWIDTHS)


def smooth_calibration(
    scored: ScoredTable,
    *,
    population: Population = "all",
    domain: str | None = None,
    device: str | None = None,
    n_boot: int = 0,
    confidence: float = 0.9,
    seed: int = 0,
) -> dict[str, float | None]:
    """Smooth ECE of a slice with its utterance-bootstrap interval: ``{"value", "low", "high"}``.

    It does not depend on any binning, so callers cache it apart from the binned metrics. The
    value is exact (:func:`reranker.smooth_ece`); resamples are evaluated on a log-spaced
    bandwidth grid over 200 fine bins.
    """
    y, s, g = calibration_sample(scored, population=population, domain=domain, device=device)
    out: dict[str, float | None] = {"value": None, "low": None, "high": None}
    if y.size == 0:
        return out
    value = float(smooth_ece(y, s))
    out["value"] = value
    if n_boot <= 0:
        return out
    gu, utt_keys = _compact(g)
    n_groups = utt_keys.size
    resid_m = _fine_residuals(gu, y, s, n_groups)
    n_u = np.bincount(gu, minlength=n_groups).astype(np.float64)
    values = np.empty(n_boot)
    for start, w in weight_chunks(utt_keys, n_boot, seed=seed):
        values[start : start + len(w)] = _smooth_replicates(resid_m, w, w @ n_u)
    out["low"], out["high"] = bootstrap_interval(value, values, confidence=confidence)
    return out


def metrics_frame(metrics: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> pd.DataFrame:
    """Flatten ``{loss: calibration_metrics(...)}`` into one row per loss for display and CSV."""
    records = []
    for loss, by_metric in metrics.items():
        row: dict[str, Any] = {"loss": loss.upper()}
        for key, v in by_metric.items():
            row[key] = v["value"]
            if v["low"] is not None:
                row[f"{key}_low"] = v["low"]
                row[f"{key}_high"] = v["high"]
        records.append(row)
    frame = pd.DataFrame(records)
    for col in ("n_utterances", "n_hypotheses"):
        if col in frame.columns:
            frame[col] = frame[col].astype("Int64")
    return frame
