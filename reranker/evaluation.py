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
from reranker.bootstrap import bootstrap_intervals, weight_chunks
from reranker.calibration import (
    Strategy,
    brier_loss,
    expected_calibration_error,
    maximum_calibration_error,
)
from reranker.errors import DataError
from reranker.hypotheses import has_references
from reranker.tables import ScoredTable, score_table

__all__ = ["METRIC_KEYS", "Population", "evaluate"]

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

    return {
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
        ``brier``, ``ece_top1``, and ``by_domain`` / ``by_device`` objects with the same keys.
        Rates of an empty slice are ``None``.
    """
    if isinstance(hypotheses, ScoredTable):
        t = hypotheses
    else:
        if scores is None:
            raise DataError("evaluate needs scores for a plain hypothesis table")
        require_references(has_references(hypotheses), "evaluation")
        t = score_table(hypotheses, scores)
    require_references(t.correct is not None, "evaluation")
    check_choice("population", population, POPULATIONS)
    opts: dict[str, Any] = {"n_bins": n_bins, "strategy": strategy, "population": population}
    all_hyp = np.ones(len(t.hypotheses), dtype=bool)
    all_utt = np.ones(int(t.top.size), dtype=bool)
    result = _slice_metrics(t, all_hyp, all_utt, **opts)
    result["by_domain"], result["by_device"] = _by_domain_and_device(t, opts)
    if n_boot > 0:
        result["intervals"] = _bootstrap(
            t, result, opts, n_boot=n_boot, confidence=confidence, seed=seed
        )
        result["confidence"] = confidence
    return result


def _by_domain_and_device(
    t: ScoredTable, opts: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metrics of every domain slice and every device slice, each sorted by name."""
    frame = t.hypotheses
    # Slices compare integer codes, not strings: one factorisation per column.
    domain_codes, domain_names = pd.factorize(
        pd.concat([frame["domain"], frame["ref_domain"]], ignore_index=True)
    )
    hyp_domain = domain_codes[: len(frame)]
    top_ref_domain = domain_codes[len(frame) :][t.top]
    by_domain: dict[str, Any] = {}
    for k in np.argsort(np.asarray(domain_names, dtype=str)):
        by_domain[str(domain_names[k])] = _slice_metrics(
            t, hyp_domain == k, top_ref_domain == k, **opts
        )
    device_codes, device_names = pd.factorize(frame["device"])
    top_device = device_codes[t.top]
    by_device: dict[str, Any] = {}
    for k in np.argsort(np.asarray(device_names, dtype=str)):
        by_device[str(device_names[k])] = _slice_metrics(
            t, device_codes == k, top_device == k, **opts
        )
    return by_domain, by_device


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
                t, all_hyp, all_utt, hyp_weight=w_utt[t.codes], utt_weight=w_utt, **opts
            )
            replicates[b] = [np.nan if sample[k] is None else sample[k] for k in keys]
    estimates = [np.nan if result[k] is None else result[k] for k in keys]
    low, high = bootstrap_intervals(estimates, replicates, confidence=confidence)
    return {k: [float(lo), float(hi)] for k, lo, hi in zip(keys, low, high, strict=True)}
