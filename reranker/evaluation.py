"""Data-set metrics of a scored hypothesis table: the object ``reranker evaluate --json`` prints.

Top-1 metrics (docs/metrics.md#top-1) rank each utterance's whole n-best by score; calibration
metrics (docs/metrics.md#calibration) compare score with the correct bit, by default over every
hypothesis. Slices (docs/metrics.md#slices):

- ``by_device``: whole utterances of one device;
- ``by_domain``: for the all-hypothesis metrics (``n_hypotheses``, ``ece``, ``mce``, ``brier``)
  the hypotheses domain D produced; for the top-1 metrics (``n_utterances``, ``top1_semer``,
  ``top1_ie``, ``ece_top1``) the utterances whose reference domain is D, ranked over their whole
  n-best.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from reranker._validation import POPULATIONS, check_choice, references_needed, require_references
from reranker.arrow_memory import arrow_allocator
from reranker.bootstrap import bootstrap_intervals, weight_chunks
from reranker.calibration import (
    Strategy,
    bin_indices,
    brier_loss,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_curve,
)
from reranker.errors import DataError
from reranker.hypotheses import has_references
from reranker.kernel_calibration import smooth_ece
from reranker.scored_pairs import ScoredPairs, check_pair
from reranker.tables import ScoredTable, score_table
from reranker.text_codes import joint_text_codes

__all__ = ["METRIC_KEYS", "Population", "evaluate", "reliability_json"]

METRIC_KEYS = (
    "n_utterances",
    "n_hypotheses",
    "top1_semer",
    "top1_ie",
    "ece",
    "mce",
    "brier",
    "ece_top1",
)
Population = Literal["all", "top1"]
FloatArray = NDArray[np.float64]


def _slice_metrics(
    t: ScoredTable,
    hyp_mask: NDArray[np.bool_],
    utt_mask: NDArray[np.bool_],
    *,
    n_bins: int,
    strategy: Strategy,
    population: Population,
    hyp_weight: NDArray[np.float64] | None = None,
    utt_weight: NDArray[np.float64] | None = None,
    smooth: bool = True,
) -> dict[str, Any]:
    if t.correct is None or t.semer is None:
        raise DataError(references_needed("evaluation"))
    top_rows = t.top[utt_mask]
    hw = np.ones(int(hyp_mask.sum())) if hyp_weight is None else hyp_weight[hyp_mask]
    uw = np.ones(top_rows.size) if utt_weight is None else utt_weight[utt_mask]
    y_top, s_top = t.correct[top_rows], t.score[top_rows]
    if population == "all":
        y_cal, s_cal, w_cal = t.correct[hyp_mask], t.score[hyp_mask], hw
    else:
        y_cal, s_cal, w_cal = y_top, s_top, uw

    def mean(values: NDArray[Any], w: NDArray[np.float64]) -> float | None:
        return float(np.dot(values, w) / w.sum()) if w.sum() > 0 else None

    def nan_to_none(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    metrics = {
        "n_utterances": int(top_rows.size),
        "n_hypotheses": int(hyp_mask.sum()),
        "top1_semer": mean(t.semer[top_rows], uw),
        "top1_ie": mean(1 - y_top, uw),
        "ece": nan_to_none(
            expected_calibration_error(
                y_cal, s_cal, n_bins=n_bins, strategy=strategy, sample_weight=w_cal
            )
        ),
        "mce": nan_to_none(
            maximum_calibration_error(
                y_cal, s_cal, n_bins=n_bins, strategy=strategy, sample_weight=w_cal
            )
        ),
        "brier": nan_to_none(brier_loss(y_cal, s_cal, sample_weight=w_cal)),
        "ece_top1": nan_to_none(
            expected_calibration_error(
                y_top, s_top, n_bins=n_bins, strategy=strategy, sample_weight=uw
            )
        ),
    }
    if smooth:  # not in the bootstrap: it has no interval
        metrics["smooth_ece"] = nan_to_none(smooth_ece(y_cal, s_cal, sample_weight=w_cal))
    return metrics


def evaluate(
    hypotheses: pd.DataFrame | ScoredTable,
    scores: ArrayLike | None = None,
    *,
    n_bins: int = 10,
    strategy: Strategy = "uniform",
    population: Population = "all",
    n_boot: int = 0,
    confidence: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    """Top-1 SemER / IE and calibration of a scored hypothesis table, overall and per slice.

    Parameters
    ----------
    hypotheses : pandas.DataFrame or ScoredTable
        A validated table with references (:func:`reranker.read_hypotheses`), or the result of
        :func:`score_table`.
    scores : array-like of shape (n,)
        Re-ranker score of each row (e.g. :func:`reranker.r0_score`); omit with a ScoredTable.
    n_bins, strategy : binning of ECE and MCE (default: 10 equal-width bins).
    population : {"all", "top1"}
        Hypotheses entering ``ece``, ``mce`` and ``brier``: every hypothesis (default) or each
        utterance's top one. ``ece_top1`` always uses the top ones.
    n_boot : int, default 0
        With ``n_boot > 0``, an ``intervals`` object gives ``[low, high]`` of every overall rate
        from a bootstrap over utterances.

    Returns
    -------
    dict
        ``n_utterances``, ``n_hypotheses``, ``top1_semer``, ``top1_ie``, ``ece``, ``mce``,
        ``brier``, ``ece_top1``, ``smooth_ece`` (of the ``population``), and ``by_domain`` /
        ``by_device`` objects with the same keys; ``reliability``, the overall reliability curve
        of the ``population`` (``edges``, and per bin ``count``, ``mean_score``,
        ``frac_correct``, with ``frac_correct_low``/``frac_correct_high`` when bootstrapped).
        Rates of an empty slice are ``None``.
    """
    if isinstance(hypotheses, ScoredTable):
        t = hypotheses
    else:
        if scores is None:
            raise DataError("evaluate needs scores for a plain hypothesis table")
        require_references(has_references(hypotheses), "evaluation")
        with arrow_allocator():  # SemER's string kernels on a large table
            t = score_table(hypotheses, scores)
    require_references(t.correct is not None, "evaluation")
    check_choice("population", population, POPULATIONS)
    opts: dict[str, Any] = {"n_bins": n_bins, "strategy": strategy, "population": population}
    all_hyp = np.ones(len(t.hypotheses), dtype=bool)
    all_utt = np.ones(int(t.top.size), dtype=bool)
    result = _slice_metrics(t, all_hyp, all_utt, **opts)
    result["by_domain"], result["by_device"] = _by_domain_and_device(t, opts)
    result["reliability"] = _reliability(t, opts, n_boot=n_boot, confidence=confidence, seed=seed)
    if n_boot > 0:
        result["intervals"] = _bootstrap(
            t, result, opts, n_boot=n_boot, confidence=confidence, seed=seed
        )
        result["confidence"] = confidence
    return result


def _reliability(
    t: ScoredTable, opts: dict[str, Any], *, n_boot: int, confidence: float, seed: int
) -> dict[str, list[float | None]]:
    """The overall reliability curve of the calibration population (``None`` for empty bins);
    with ``n_boot > 0`` the utterance-bootstrap interval of each bin's fraction correct."""
    assert t.correct is not None
    rows = t.top if opts["population"] == "top1" else np.arange(len(t.hypotheses))
    # Utterance ids only group the bootstrap: no Python string per row without one.
    ids = t.hypotheses["utterance_id"].to_numpy()[rows] if n_boot > 0 else None
    curve = reliability_curve(
        t.correct[rows],
        t.score[rows],
        n_bins=opts["n_bins"],
        strategy=opts["strategy"],
        groups=ids,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
    )
    return reliability_json(
        curve.edges, curve.count, curve.mean_score, curve.frac_correct, curve.low, curve.high
    )


def reliability_json(*columns: NDArray[np.float64]) -> dict[str, list[float | None]]:
    """The ``reliability`` object of the report: edges, count, mean score and fraction correct
    per bin (and the interval of the fraction when it was bootstrapped); ``None`` for nan."""
    names = (
        "edges",
        "count",
        "mean_score",
        "frac_correct",
        "frac_correct_low",
        "frac_correct_high",
    )
    out = {
        name: [None if np.isnan(v) else float(v) for v in values]
        for name, values in zip(names, columns, strict=False)
    }
    if all(v is None for v in out.get("frac_correct_low", [])):
        out.pop("frac_correct_low", None)
        out.pop("frac_correct_high", None)
    return out


def _by_domain_and_device(
    t: ScoredTable, opts: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metrics of every domain slice and every device slice, each sorted by name."""
    frame = t.hypotheses
    # Slices compare integer codes, not strings: those validation kept for each column, or one
    # factorisation of it (reranker.text_codes).
    (hyp_domain, ref_domain), domains = joint_text_codes(
        [frame["domain"], frame["ref_domain"]], ["domain", "ref_domain"], missing_as_empty=False
    )
    (device_codes,), devices = joint_text_codes(
        [frame["device"]], ["device"], missing_as_empty=False
    )
    slicings = (
        (hyp_domain, ref_domain[t.top], domains.to_pylist()),
        (device_codes, device_codes[t.top], devices.to_pylist()),
    )
    out = []
    for hyp_code, utt_code, names in slicings:
        if opts["strategy"] == "uniform":
            metrics = _sliced_uniform(t, hyp_code, utt_code, len(names), **opts)
        else:
            metrics = [
                _slice_metrics(t, hyp_code == k, utt_code == k, **opts) for k in range(len(names))
            ]
        order = np.argsort(np.asarray(names, dtype=str))
        out.append({str(names[k]): metrics[k] for k in order})
    return out[0], out[1]


def _bin_tables(
    codes: NDArray[np.int64], k: int, pairs: ScoredPairs, n_bins: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per slice and equal-width bin: count, score sum and correct sum, shape (k, n_bins).

    One key ``(slice, bin, correct)`` per pair and two ``np.bincount`` give every slice's sums,
    each accumulated in row order exactly as :func:`reranker.scored_pairs.bin_sums` does.
    """
    key, _ = bin_indices(pairs.s, n_bins=n_bins)
    key += codes * n_bins
    key *= 2
    np.add(key, pairs.y, out=key, casting="unsafe")  # the correct bit, 0 or 1
    size = 2 * k * n_bins
    by_bit = np.bincount(key, minlength=size).astype(np.float64).reshape(k, n_bins, 2)
    s_by_bit = np.bincount(key, weights=pairs.s, minlength=size).astype(np.float64)
    s_by_bit = s_by_bit.reshape(k, n_bins, 2)
    return by_bit[..., 0] + by_bit[..., 1], s_by_bit[..., 0] + s_by_bit[..., 1], by_bit[..., 1]


def _calibration_of_slices(
    codes: NDArray[np.int64], k: int, correct: NDArray[np.int64], score: FloatArray, n_bins: int
) -> list[tuple[float | None, float | None, float | None]]:
    """``(ece, mce, brier)`` of each of ``k`` slices (None when a slice is empty)."""
    pairs = check_pair(correct, score)
    count, sum_s, sum_y = _bin_tables(codes, k, pairs, n_bins)
    totals = np.bincount(codes, minlength=k)
    square = np.bincount(codes, weights=(score - correct) ** 2, minlength=k)
    out: list[tuple[float | None, float | None, float | None]] = []
    for j in range(k):
        if totals[j] == 0:
            out.append((None, None, None))
            continue
        gap = np.abs(sum_y[j] - sum_s[j])
        nonempty = count[j] > 0
        out.append(
            (
                float(gap.sum() / float(totals[j])),
                float((gap[nonempty] / count[j][nonempty]).max()),
                float(square[j] / totals[j]),
            )
        )
    return out


def _sliced_uniform(
    t: ScoredTable,
    hyp_code: NDArray[np.int64],
    utt_code: NDArray[np.int64],
    k: int,
    *,
    n_bins: int,
    strategy: Strategy,
    population: Population,
) -> list[dict[str, Any]]:
    """:func:`_slice_metrics` of slices ``0 .. k-1`` with equal-width bins, all in one pass."""
    if t.correct is None or t.semer is None:
        raise DataError(references_needed("evaluation"))
    hyp_code, utt_code = hyp_code.astype(np.intp), utt_code.astype(np.intp)
    y_top, s_top = t.correct[t.top], t.score[t.top]
    n_utt = np.bincount(utt_code, minlength=k)
    semer_sum = np.bincount(utt_code, weights=t.semer[t.top], minlength=k)
    correct_sum = np.bincount(utt_code, weights=y_top, minlength=k)
    top = _calibration_of_slices(utt_code, k, y_top, s_top, n_bins)
    if population == "all":
        every = _calibration_of_slices(hyp_code, k, t.correct, t.score, n_bins)
    else:
        every = top
    n_hyp = np.bincount(hyp_code, minlength=k)
    cal_code, y_cal, s_cal = (
        (hyp_code, t.correct, t.score) if population == "all" else (utt_code, y_top, s_top)
    )
    out = []
    for j in range(k):
        has = n_utt[j] > 0
        in_slice = cal_code == j
        out.append(
            {
                "n_utterances": int(n_utt[j]),
                "n_hypotheses": int(n_hyp[j]),
                "top1_semer": float(semer_sum[j] / n_utt[j]) if has else None,
                "top1_ie": float((n_utt[j] - correct_sum[j]) / n_utt[j]) if has else None,
                "ece": every[j][0],
                "mce": every[j][1],
                "brier": every[j][2],
                "ece_top1": top[j][0],
                "smooth_ece": (
                    float(smooth_ece(y_cal[in_slice], s_cal[in_slice])) if in_slice.any() else None
                ),
            }
        )
    return out


def _bootstrap(
    t: ScoredTable,
    result: dict[str, Any],
    opts: dict[str, Any],
    *,
    n_boot: int,
    confidence: float,
    seed: int,
) -> dict[str, list[float]]:
    """``[low, high]`` of every overall rate from ``n_boot`` utterance resamples."""
    all_hyp = np.ones(len(t.hypotheses), dtype=bool)
    all_utt = np.ones(int(t.top.size), dtype=bool)
    keys = ("top1_semer", "top1_ie", "ece", "mce", "brier", "ece_top1")
    replicates = np.full((n_boot, len(keys)), np.nan)
    for start, weights in weight_chunks(t.utterance_keys, n_boot, seed=seed):
        for b, w_utt in enumerate(weights, start=start):
            sample = _slice_metrics(
                t,
                all_hyp,
                all_utt,
                hyp_weight=w_utt[t.codes],
                utt_weight=w_utt,
                smooth=False,
                **opts,
            )
            replicates[b] = [np.nan if sample[k] is None else sample[k] for k in keys]
    estimates = [np.nan if result[k] is None else result[k] for k in keys]
    low, high = bootstrap_intervals(estimates, replicates, confidence=confidence)
    return {k: [float(lo), float(hi)] for k, lo, hi in zip(keys, low, high, strict=True)}
