"""Paired comparison of two scorings of one hypothesis table: is B really better than A?

Both scorings rank the same hypotheses, so their metrics are computed on the same utterances and
their difference ``B - A`` is judged by a **paired** utterance bootstrap: every resample gives each
utterance one Poisson(1) count (:func:`reranker.bootstrap.poisson_weights`, a function of the
utterance id, the seed and the resample index only) and that count weights the utterance under
both scorings. The interval of each difference is the bias-corrected percentile interval
(:func:`reranker.bootstrap.bootstrap_interval`), which always contains the estimate. Pairing
removes the between-utterance variance the two scorings share, so a difference can be clearly
non-zero while the two unpaired intervals overlap.

Metrics (docs/metrics.md): ``top1_semer``, ``top1_ie``, ``ece``, ``mce``, ``brier`` (over every
hypothesis) and ``ece_top1`` (over each utterance's top hypothesis), with equal-width bins. The
utterances whose top hypothesis changed from correct to incorrect or back are listed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from reranker._validation import in_unit_interval
from reranker.bootstrap import bootstrap_interval, poisson_weights, utterance_keys
from reranker.errors import DataError, ParameterError
from reranker.ranking import rank_and_top, utterance_codes
from reranker.semer import table_errors

__all__ = ["COMPARED_METRICS", "Comparison", "compare_scorings"]

COMPARED_METRICS: tuple[str, ...] = ("top1_semer", "top1_ie", "ece", "mce", "brier", "ece_top1")


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare_scorings`.

    Attributes
    ----------
    metrics : pandas.DataFrame
        One row per metric (index :data:`COMPARED_METRICS`): ``a``, ``b``, ``difference``
        (``b - a``), ``low``, ``high`` (the paired interval of the difference).
    changed : pandas.DataFrame
        Utterances whose top hypothesis changed correctness: ``utterance_id``, ``text``,
        ``change`` (``"right to wrong"`` or ``"wrong to right"``), ``top_a``, ``top_b`` (domain,
        intent and slots of each top hypothesis).
    n_utterances : int
    n_boot : int
    confidence : float
    """

    metrics: pd.DataFrame
    changed: pd.DataFrame
    n_utterances: int
    n_boot: int
    confidence: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``reranker compare --json``)."""
        return {
            "n_utterances": self.n_utterances,
            "n_boot": self.n_boot,
            "confidence": self.confidence,
            "metrics": {
                k: {c: float(v) for c, v in row.items()} for k, row in self.metrics.iterrows()
            },
            "changed": self.changed.to_dict(orient="records"),
        }


def _bin_matrix(score: NDArray[np.float64], n_bins: int) -> sp.csr_matrix:
    bins = np.minimum(np.floor(score * n_bins).astype(np.int64), n_bins - 1)
    return sp.csr_matrix(
        (np.ones(score.size), (np.arange(score.size), bins)), shape=(score.size, n_bins)
    )


def _calibration(
    weights: NDArray[np.float64],
    score: NDArray[np.float64],
    correct: NDArray[np.float64],
    n_bins: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Weighted ECE and MCE for each row of ``weights`` (one weight per hypothesis)."""
    bins = _bin_matrix(score, n_bins)
    count = np.asarray(bins.T @ weights.T).T
    gap = np.asarray(bins.T @ (weights * (correct - score)).T).T
    total = count.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ece = np.abs(gap).sum(axis=1) / total
        per_bin = np.where(count > 0, np.abs(gap) / np.where(count > 0, count, 1.0), -np.inf)
    return ece, per_bin.max(axis=1)


def _statistics(
    weights: NDArray[np.float64],
    codes: NDArray[np.int64],
    score: NDArray[np.float64],
    semer: NDArray[np.float64],
    correct: NDArray[np.float64],
    top: NDArray[np.int64],
    n_bins: int,
) -> NDArray[np.float64]:
    """Every compared metric under each row of utterance ``weights``: shape (n_w, 6)."""
    row_w = weights[:, codes]
    per_utt = weights.sum(axis=1)
    ece, mce = _calibration(row_w, score, correct, n_bins)
    ece_top, _ = _calibration(weights, score[top], correct[top], n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = [
            weights @ semer[top] / per_utt,
            weights @ (1.0 - correct[top]) / per_utt,
            ece,
            mce,
            row_w @ (score - correct) ** 2 / row_w.sum(axis=1),
            ece_top,
        ]
    return np.column_stack(columns)


def _describe(frame: pd.DataFrame, rows: NDArray[np.int64]) -> list[str]:
    part = frame.iloc[rows]
    return [
        f"{d} | {i} | {s}"
        for d, i, s in zip(part["domain"], part["intent"], part["slots"], strict=True)
    ]


def compare_scorings(
    hypotheses: pd.DataFrame,
    score_a: ArrayLike,
    score_b: ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.9,
    n_bins: int = 10,
    chunk: int = 100,
) -> Comparison:
    """Compare two scorings of one validated table with references (see the module docstring).

    Parameters
    ----------
    hypotheses : pandas.DataFrame
        A validated hypothesis table with the reference columns.
    score_a, score_b : array-like of shape (n,)
        The two scorings, in [0, 1] (e.g. R0 and a weights registry's scores).
    n_boot : int, default 1000
        Paired bootstrap resamples of utterances.
    seed : int, default 0
    confidence : float, default 0.9
    n_bins : int, default 10
        Equal-width bins of ECE and MCE.
    chunk : int, default 100
        Resamples computed at once (memory only; the result does not depend on it).

    Returns
    -------
    Comparison
    """
    a, b = _check_scorings(len(hypotheses), score_a, score_b, n_boot=n_boot, n_bins=n_bins)
    semer, correct_int = table_errors(hypotheses)
    correct = correct_int.astype(np.float64)
    codes = utterance_codes(hypotheses["utterance_id"])
    domain_score = hypotheses["domain_score"].to_numpy(dtype=np.float64)
    top_a = rank_and_top(codes, a, domain_score)[1]
    top_b = rank_and_top(codes, b, domain_score)[1]
    ids = hypotheses["utterance_id"].to_numpy(dtype=object)[top_a]

    def statistics(
        w: NDArray[np.float64], s: NDArray[np.float64], top: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        return _statistics(w, codes, s, semer, correct, top, n_bins)

    ones = np.ones((1, ids.size))
    est_a, est_b = statistics(ones, a, top_a)[0], statistics(ones, b, top_b)[0]
    reps = []
    keys = utterance_keys(ids)
    for start in range(0, n_boot, chunk):
        w = poisson_weights(keys, min(chunk, n_boot - start), seed=seed, start=start)
        reps.append(statistics(w, b, top_b) - statistics(w, a, top_a))
    metrics = _metric_table(est_a, est_b, np.vstack(reps), confidence)
    changed = _changed_utterances(hypotheses, ids, top_a, top_b, correct)
    return Comparison(metrics.set_index("metric"), changed, int(ids.size), int(n_boot), confidence)


def _check_scorings(
    n: int, score_a: ArrayLike, score_b: ArrayLike, *, n_boot: int, n_bins: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both scorings as float arrays of ``n`` scores in [0, 1]; the options at least 1."""
    a = np.asarray(score_a, dtype=np.float64)
    b = np.asarray(score_b, dtype=np.float64)
    if a.shape != (n,) or b.shape != (n,):
        raise DataError(
            f"each scoring needs one score per hypothesis ({n}), got {a.size} and {b.size}"
        )
    for name, s in (("A", a), ("B", b)):
        if not in_unit_interval(s):
            raise DataError(f"scoring {name} has scores outside [0, 1] or NaN")
    if n_boot < 1 or n_bins < 1:
        raise ParameterError(f"n_boot and n_bins must be >= 1, got {n_boot} and {n_bins}")
    return a, b


def _metric_table(
    est_a: NDArray[np.float64],
    est_b: NDArray[np.float64],
    diffs: NDArray[np.float64],
    confidence: float,
) -> pd.DataFrame:
    """One row per compared metric: both estimates, B - A and its bootstrap interval."""
    rows = []
    for k, name in enumerate(COMPARED_METRICS):
        low, high = bootstrap_interval(est_b[k] - est_a[k], diffs[:, k], confidence=confidence)
        rows.append((name, est_a[k], est_b[k], est_b[k] - est_a[k], low, high))
    return pd.DataFrame(rows, columns=["metric", "a", "b", "difference", "low", "high"])


def _changed_utterances(
    hypotheses: pd.DataFrame,
    ids: NDArray[np.object_],
    top_a: NDArray[np.int64],
    top_b: NDArray[np.int64],
    correct: NDArray[np.float64],
) -> pd.DataFrame:
    """The utterances whose top-1 turns from right to wrong or wrong to right."""
    flip = correct[top_a] != correct[top_b]
    text = (
        hypotheses["text"].to_numpy(dtype=object)[top_a]
        if "text" in hypotheses.columns
        else np.full(ids.size, "", dtype=object)
    )
    return pd.DataFrame(
        {
            "utterance_id": ids[flip],
            "text": text[flip],
            "change": np.where(correct[top_a][flip] > 0, "right to wrong", "wrong to right"),
            "top_a": _describe(hypotheses, top_a[flip]),
            "top_b": _describe(hypotheses, top_b[flip]),
        }
    )
