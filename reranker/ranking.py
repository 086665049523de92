"""Scores and ranks within utterances: the R0 baseline, ranks, top-1 selection.

Definitions: docs/losses.md#r0 and docs/metrics.md#top-1.

Hypotheses of an utterance are ranked by ``score``, highest first. Ties are broken
deterministically: higher ``domain_score`` first, then earlier row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from reranker.errors import DataError
from reranker.kernel_ranking import rank_and_top_grouped
from reranker.text_codes import factorize

__all__ = [
    "best_first_order",
    "r0_score",
    "rank_and_top",
    "rank_within_utterance",
    "top1_indices",
    "utterance_codes",
]


def r0_score(hypotheses: pd.DataFrame) -> NDArray[np.float64]:
    """The unweighted baseline R0: ``domain_score * intent_score * slot_score``."""
    return (
        hypotheses["domain_score"].to_numpy(dtype=np.float64)
        * hypotheses["intent_score"].to_numpy(dtype=np.float64)
        * hypotheses["slot_score"].to_numpy(dtype=np.float64)
    )


def utterance_codes(utterance_ids: ArrayLike) -> NDArray[np.int64]:
    """Integer code of each row's utterance, numbered in order of first appearance."""
    ids = (
        utterance_ids
        if isinstance(utterance_ids, pd.Series)
        else pd.Series(np.asarray(utterance_ids, dtype=object))
    )
    codes = factorize(ids)  # an Arrow text column's codes are made once per column
    return codes.astype(np.int64)


def best_first_order(
    codes: NDArray[np.int64], score: NDArray[np.float64], domain_score: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Rows grouped by utterance code, each group best first (tie-break: docs/metrics.md#top-1).

    Inputs are already-checked arrays of equal length; :func:`rank_and_top` checks its inputs
    and calls this.
    """
    # np.lexsort is stable, so rows tied on every key keep their file order.
    return np.lexsort((-domain_score, -score, codes)).astype(np.int64)


def _check(
    codes: ArrayLike, score: ArrayLike, domain_score: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    c = np.asarray(codes, dtype=np.int64)
    s = np.asarray(score, dtype=np.float64)
    d = np.asarray(domain_score, dtype=np.float64)
    if not (c.shape == s.shape == d.shape):
        raise DataError(
            f"codes, score and domain_score must have equal lengths, got {c.size}, {s.size}, {d.size}"
        )
    if np.isnan(s).any():
        raise DataError("score contains NaN")
    return c, s, d


def rank_and_top(
    codes: ArrayLike, score: ArrayLike, domain_score: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Rank of every row within its utterance (1 = top) and the row of each utterance's top.

    Rows are ordered by utterance, then score (descending), then ``domain_score``
    (descending), then row order (the tie-break of docs/metrics.md#top-1). With codes
    ``0 .. U-1`` (as :func:`utterance_codes` gives) short n-bests are ranked by pairwise
    passes (:mod:`reranker.kernel_ranking`), otherwise by one sort.

    Parameters
    ----------
    codes : array-like of int, shape (n,)
        Utterance code of each row (:func:`utterance_codes`).
    score, domain_score : array-like of float, shape (n,)

    Returns
    -------
    rank : ndarray of int, shape (n,)
    top : ndarray of int, shape (n_utterances,)
        Row index of each utterance's top hypothesis, ordered by utterance code.
    """
    c, s, d = _check(codes, score, domain_score)
    if c.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if c.min() >= 0 and c.max() < c.size and np.bincount(c).all():  # codes 0 .. U-1
        return rank_and_top_grouped(c, s, d, int(c.max()) + 1)
    order = best_first_order(c, s, d)
    sorted_codes = c[order]
    first = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    starts = np.flatnonzero(first)
    group_start = np.repeat(starts, np.diff(np.r_[starts, c.size]))
    ranks = np.empty(c.size, dtype=np.int64)
    ranks[order] = np.arange(c.size) - group_start + 1
    return ranks, order[first]


def rank_within_utterance(
    codes: ArrayLike, score: ArrayLike, domain_score: ArrayLike
) -> NDArray[np.int64]:
    """Rank of each row within its utterance (1 = top); see :func:`rank_and_top`."""
    return rank_and_top(codes, score, domain_score)[0]


def top1_indices(codes: ArrayLike, score: ArrayLike, domain_score: ArrayLike) -> NDArray[np.int64]:
    """Row index of the top hypothesis of each utterance; see :func:`rank_and_top`."""
    return rank_and_top(codes, score, domain_score)[1]
