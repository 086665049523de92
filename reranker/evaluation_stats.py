"""Mergeable sufficient statistics of :func:`reranker.evaluation.evaluate`.

Every metric ``evaluate`` reports is a function of a few sums: per slice, the number of
utterances and hypotheses, the sums of top-1 SemER and IE, and, for the calibration populations
(every hypothesis, and each utterance's top one), the count, score sum and correct sum of each
bin and the sum of squared errors. Sums of separate data partitions add up, so a dataset is
evaluated partition by partition (each holding whole utterances) and the statistics merged at
the end: ECE, MCE, Brier and the top-1 rates come out as on the whole table, exactly at the
requested bins, up to floating-point summation order.

Bootstrap resamples are merged the same way: with Poisson weights that depend only on the
utterance id and the seed (:mod:`reranker.bootstrap`), each partition adds its weighted sums for
every resample, and the intervals do not depend on how the data were partitioned.

Layout of one statistics vector (length ``6 + 6 * n_bins``)::

    0 utterances, 1 hypotheses, 2 sum top-1 SemER, 3 sum top-1 IE,
    4 sum (s - y)^2 over hypotheses, 5 sum (s - y)^2 over top-1,
    then per bin: hypotheses' count, sum s, sum y; top-1 count, sum s, sum y.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from reranker._validation import POPULATIONS, check_choice, references_needed
from reranker.calibration import bin_indices
from reranker.errors import DataError
from reranker.evaluation import METRIC_KEYS
from reranker.tables import ScoredTable

__all__ = ["INTERVAL_KEYS", "EvaluationStats", "evaluation_stats"]

FloatArray = NDArray[np.float64]
INTERVAL_KEYS = ("top1_semer", "top1_ie", "ece", "mce", "brier", "ece_top1")
_FIXED = 6


def _width(n_bins: int) -> int:
    return _FIXED + 6 * n_bins


def _sums(
    t: ScoredTable,
    hyp_row: NDArray[np.int64],
    utt_row: NDArray[np.int64],
    n_rows: int,
    hyp_bin: NDArray[np.int64],
    top_bin: NDArray[np.int64],
    n_bins: int,
) -> sparse.csr_matrix:
    """Statistics vectors as rows of a sparse matrix: hypothesis i adds to row ``hyp_row[i]``,
    utterance u (its top hypothesis) to row ``utt_row[u]``; negative rows are left out."""
    assert t.correct is not None and t.semer is not None
    y = t.correct.astype(np.float64)
    s = t.score
    h = np.flatnonzero(hyp_row >= 0)
    u = np.flatnonzero(utt_row >= 0)
    top = t.top[u]
    yt, st = y[top], s[top]
    hb, tb = hyp_bin[h], top_bin[u]
    hr, ur = hyp_row[h], utt_row[u]
    ones_h, ones_u = np.ones(h.size), np.ones(u.size)
    b0, t0 = _FIXED, _FIXED + 3 * n_bins
    rows = np.concatenate([hr, hr, hr, hr, hr, ur, ur, ur, ur, ur, ur, ur])
    cols = np.concatenate(
        [
            np.full(h.size, 1),
            np.full(h.size, 4),
            b0 + hb,
            b0 + n_bins + hb,
            b0 + 2 * n_bins + hb,
            np.full(u.size, 0),
            np.full(u.size, 2),
            np.full(u.size, 3),
            np.full(u.size, 5),
            t0 + tb,
            t0 + n_bins + tb,
            t0 + 2 * n_bins + tb,
        ]
    )
    values = np.concatenate(
        [
            ones_h,
            (s[h] - y[h]) ** 2,
            ones_h,
            s[h],
            y[h],
            ones_u,
            t.semer[top],
            1.0 - yt,
            (st - yt) ** 2,
            ones_u,
            st,
            yt,
        ]
    )
    return sparse.coo_matrix((values, (rows, cols)), shape=(n_rows, _width(n_bins))).tocsr()


def _bins(
    score: FloatArray, groups: NDArray[np.int64], n_groups: int, n_bins: int, strategy: str
) -> NDArray[np.int64]:
    """Bin of each score; with equal-mass bins the edges are each group's own quantiles."""
    if strategy == "uniform":
        return bin_indices(score, n_bins=n_bins)[0]
    out = np.zeros(score.size, dtype=np.int64)
    for g in range(n_groups):
        mask = groups == g
        if mask.any():
            out[mask] = bin_indices(score[mask], n_bins=n_bins, strategy="quantile")[0]
    return out


def _group(
    t: ScoredTable,
    hyp_codes: NDArray[np.int64],
    utt_codes: NDArray[np.int64],
    names: list[str],
    n_bins: int,
    strategy: str,
) -> dict[str, FloatArray]:
    n = len(names)
    hyp_bin = _bins(t.score, hyp_codes, n, n_bins, strategy)
    top_bin = _bins(t.score[t.top], utt_codes, n, n_bins, strategy)
    dense = _sums(t, hyp_codes, utt_codes, n, hyp_bin, top_bin, n_bins).toarray()
    return {name: dense[k] for k, name in enumerate(names)}


@dataclass
class EvaluationStats:
    """Sums behind every number of an evaluation; ``a + b`` merges two partitions.

    Attributes
    ----------
    n_bins, strategy : the binning the sums were taken at.
    overall : statistics vector of the whole table.
    by_domain, by_device : slice name -> statistics vector.
    replicates : ``(n_boot, width)`` statistics of each bootstrap resample (overall slice).
    """

    n_bins: int
    strategy: str
    overall: FloatArray
    by_domain: dict[str, FloatArray] = field(default_factory=dict)
    by_device: dict[str, FloatArray] = field(default_factory=dict)
    replicates: FloatArray | None = None

    def __add__(self, other: EvaluationStats) -> EvaluationStats:
        if (self.n_bins, self.strategy) != (other.n_bins, other.strategy):
            raise DataError("cannot merge statistics taken at different bins")
        if self.strategy != "uniform":
            raise DataError("equal-mass bins depend on all scores: their statistics do not merge")
        reps = None
        if self.replicates is not None and other.replicates is not None:
            reps = self.replicates + other.replicates
        elif self.replicates is not None or other.replicates is not None:
            raise DataError("cannot merge statistics with and without bootstrap resamples")
        return EvaluationStats(
            self.n_bins,
            self.strategy,
            self.overall + other.overall,
            _merge(self.by_domain, other.by_domain),
            _merge(self.by_device, other.by_device),
            reps,
        )

    def report(self, *, population: str = "all", confidence: float = 0.9) -> dict[str, Any]:
        """The object :func:`reranker.evaluation.evaluate` returns, from the merged sums."""
        check_choice("population", population, POPULATIONS)
        result = _metrics(self.overall, self.n_bins, population)
        result["by_domain"] = {
            k: _metrics(v, self.n_bins, population) for k, v in sorted(self.by_domain.items())
        }
        result["by_device"] = {
            k: _metrics(v, self.n_bins, population) for k, v in sorted(self.by_device.items())
        }
        if self.replicates is not None:
            from reranker.bootstrap import bootstrap_intervals

            reps = _rates(self.replicates, self.n_bins, population)
            values = np.column_stack([reps[k] for k in INTERVAL_KEYS])
            estimates = [np.nan if result[k] is None else result[k] for k in INTERVAL_KEYS]
            low, high = bootstrap_intervals(estimates, values, confidence=confidence)
            result["intervals"] = {
                k: [float(lo), float(hi)]
                for k, lo, hi in zip(INTERVAL_KEYS, low, high, strict=True)
            }
            result["confidence"] = confidence
        return result


def _merge(a: Mapping[str, FloatArray], b: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + v if k in out else v
    return out


def _rates(v: FloatArray, n_bins: int, population: str) -> dict[str, FloatArray]:
    """Every rate of statistics vectors ``v`` (shape ``(width,)`` or ``(k, width)``); nan if empty."""
    v = np.atleast_2d(v)
    b0, t0 = _FIXED, _FIXED + 3 * n_bins
    top = v[:, t0 : t0 + 3 * n_bins].reshape(-1, 3, n_bins)
    if population == "all":
        cal, sq = v[:, b0 : b0 + 3 * n_bins].reshape(-1, 3, n_bins), v[:, 4]
    else:
        cal, sq = top, v[:, 5]
    with np.errstate(invalid="ignore", divide="ignore"):
        n_top = v[:, 0]
        ece, mce = _ece_mce(cal)
        return {
            "top1_semer": np.where(n_top > 0, v[:, 2] / n_top, np.nan),
            "top1_ie": np.where(n_top > 0, v[:, 3] / n_top, np.nan),
            "ece": ece,
            "mce": mce,
            "brier": np.where(cal[:, 0].sum(axis=1) > 0, sq / cal[:, 0].sum(axis=1), np.nan),
            "ece_top1": _ece_mce(top)[0],
        }


def _ece_mce(bins: FloatArray) -> tuple[FloatArray, FloatArray]:
    count, sum_s, sum_y = bins[:, 0], bins[:, 1], bins[:, 2]
    total = count.sum(axis=1)
    gap = np.abs(sum_y - sum_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        ece = np.where(total > 0, gap.sum(axis=1) / total, np.nan)
        per_bin = np.where(count > 0, gap / np.where(count > 0, count, 1), -np.inf)
        mce = per_bin.max(axis=1)
    return ece, np.where(total > 0, mce, np.nan)


def _metrics(v: FloatArray, n_bins: int, population: str) -> dict[str, Any]:
    rates = _rates(v, n_bins, population)
    out: dict[str, Any] = {"n_utterances": int(np.rint(v[0])), "n_hypotheses": int(np.rint(v[1]))}
    for key in METRIC_KEYS[2:]:
        value = float(rates[key][0])
        out[key] = None if np.isnan(value) else value
    return out


def evaluation_stats(
    t: ScoredTable,
    *,
    n_bins: int = 10,
    strategy: str = "uniform",
    n_boot: int = 0,
    seed: int = 0,
) -> EvaluationStats:
    """Sufficient statistics of a scored table (with references) holding whole utterances.

    ``evaluation_stats(t).report()`` equals ``evaluate(t)``; the statistics of tables holding
    disjoint sets of utterances add up to those of their union (``strategy="uniform"``).
    """
    if t.correct is None or t.semer is None:
        raise DataError(references_needed("evaluation"))
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise DataError(f"n_bins must be a positive integer, got {n_bins!r}")
    frame = t.hypotheses
    n, n_utt = len(frame), int(t.top.size)
    zeros_h, zeros_u = np.zeros(n, dtype=np.int64), np.zeros(n_utt, dtype=np.int64)
    overall = _group(t, zeros_h, zeros_u, ["all"], n_bins, strategy)["all"]
    dom_codes, dom_names = pd.factorize(pd.concat([frame["domain"], frame["ref_domain"]]))
    by_domain = _group(
        t, dom_codes[:n], dom_codes[n:][t.top], [str(d) for d in dom_names], n_bins, strategy
    )
    dev_codes, dev_names = pd.factorize(frame["device"])
    by_device = _group(
        t, dev_codes, dev_codes[t.top], [str(d) for d in dev_names], n_bins, strategy
    )
    replicates = None
    if n_boot > 0:
        replicates = _replicates(t, n_bins, strategy, n_boot, seed)
    return EvaluationStats(n_bins, strategy, overall, by_domain, by_device, replicates)


def _replicates(t: ScoredTable, n_bins: int, strategy: str, n_boot: int, seed: int) -> FloatArray:
    """Overall statistics of each Poisson bootstrap resample of the utterances."""
    from reranker.bootstrap import utterance_keys, weight_chunks

    n_utt = int(t.top.size)
    hyp_bin = _bins(t.score, np.zeros(t.score.size, dtype=np.int64), 1, n_bins, strategy)
    top_bin = _bins(t.score[t.top], np.zeros(n_utt, dtype=np.int64), 1, n_bins, strategy)
    per_utterance = _sums(t, t.codes, np.arange(n_utt), n_utt, hyp_bin, top_bin, n_bins)
    keys = utterance_keys(t.hypotheses["utterance_id"].to_numpy()[t.top])
    out = np.empty((n_boot, _width(n_bins)))
    transposed = per_utterance.T.tocsr()
    for start, weights in weight_chunks(keys, n_boot, seed=seed):
        out[start : start + len(weights)] = (transposed @ weights.T).T
    return out
