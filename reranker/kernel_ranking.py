"""Ranks within utterances without a global sort, for n-best tables of millions of rows.

Hypotheses of an utterance are ordered by score (highest first), then ``domain_score`` (highest
first), then row (docs/metrics.md#top-1). A row's rank is one plus the number of rows of its
utterance that come before it. N-best lists are short, so instead of sorting every row by
(utterance, score, domain score) the rows, grouped by utterance, are compared with the row
``d`` places further on for ``d = 1 .. m - 1`` (m the longest n-best): each comparison of two
rows of one utterance adds one to the rank of the row that comes second. That is ``m - 1``
vectorised passes instead of a three-key sort; longer n-bests (or a NaN domain score, which a
sort places last) use the sort.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_PAIRWISE", "rank_and_top_grouped"]

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

MAX_PAIRWISE = 24  # longest n-best ranked by pairwise passes; longer ones are sorted


def _sorted_ranks(codes: IntArray, score: FloatArray, domain_score: FloatArray) -> IntArray:
    order = np.lexsort((-domain_score, -score, codes))
    sorted_codes = codes[order]
    first = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    starts = np.flatnonzero(first)
    ranks = np.empty(codes.size, dtype=np.int64)
    ranks[order] = np.arange(codes.size) - np.repeat(starts, np.diff(np.r_[starts, codes.size])) + 1
    return ranks


def _pairwise_ranks(
    codes: IntArray, score: FloatArray, domain_score: FloatArray, longest: int
) -> IntArray:
    """Ranks of rows grouped by utterance (each code on one run of at most ``longest`` rows)."""
    ranks = np.ones(codes.size, dtype=np.int64)
    for d in range(1, longest):
        same = codes[d:] == codes[:-d]
        s_i, s_j = score[:-d], score[d:]
        later_first = s_j > s_i  # row i + d comes before row i
        later_first |= (s_j == s_i) & (domain_score[d:] > domain_score[:-d])
        ranks[:-d] += same & later_first
        ranks[d:] += same & ~later_first
    return ranks


def rank_and_top_grouped(
    codes: IntArray, score: FloatArray, domain_score: FloatArray, n_utterances: int
) -> tuple[IntArray, IntArray]:
    """Rank of every row within its utterance (1 = top) and each utterance's top row.

    ``codes`` are utterance codes ``0 .. n_utterances - 1`` (every code used); the arrays are
    checked, of equal length and without NaN scores.
    """
    n = codes.size
    grouped = n < 2 or bool((codes[1:] >= codes[:-1]).all())
    order = None if grouped else np.argsort(codes, kind="stable")
    c = codes if order is None else codes[order]
    bounds = np.flatnonzero(np.r_[True, c[1:] != c[:-1], True])
    longest = int(np.diff(bounds).max(initial=0))
    if longest > MAX_PAIRWISE or np.isnan(domain_score).any():
        ranks = _sorted_ranks(codes, score, domain_score)
    elif order is None:
        ranks = _pairwise_ranks(c, score, domain_score, longest)
    else:
        ranks = np.empty(n, dtype=np.int64)
        ranks[order] = _pairwise_ranks(c, score[order], domain_score[order], longest)
    top = np.empty(n_utterances, dtype=np.int64)
    best = np.flatnonzero(ranks == 1)
    top[codes[best]] = best
    return ranks, top
