"""Pairwise ranking within utterances against the obvious sort, on random data with ties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reranker import kernel_ranking
from reranker.kernel_ranking import rank_and_top_grouped
from reranker.ranking import rank_and_top


def _reference(codes: np.ndarray, score: np.ndarray, dscore: np.ndarray) -> tuple[list, list]:
    """A Python loop: sort each utterance's rows by (-score, -domain_score, row)."""
    ranks = [0] * codes.size
    n_utt = int(codes.max()) + 1 if codes.size else 0
    top = [0] * n_utt
    for u in range(n_utt):
        rows = sorted(np.flatnonzero(codes == u), key=lambda r: (-score[r], -dscore[r], r))
        for position, r in enumerate(rows, start=1):
            ranks[r] = position
        top[u] = rows[0]
    return ranks, top


def _random_table(seed: int, n_utt: int, grouped: bool, longest: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, longest + 1, n_utt)
    codes = np.repeat(np.arange(n_utt), sizes)
    if not grouped:  # interleave utterances, keeping first-appearance order of codes
        codes = codes[rng.permutation(codes.size)]
        _, first = np.unique(codes, return_index=True)
        codes = np.argsort(np.argsort(first))[codes]  # numbered by first appearance
    score = rng.choice([0.0, 0.25, 0.5, 0.5, 1.0], codes.size)  # many ties
    dscore = rng.choice([0.1, 0.9, 0.9], codes.size)
    return codes.astype(np.int64), score, dscore


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_utt=st.integers(1, 40),
    grouped=st.booleans(),
    longest=st.integers(1, 30),
)
def test_ranks_and_top_equal_the_sorted_reference(
    seed: int, n_utt: int, grouped: bool, longest: int
) -> None:
    codes, score, dscore = _random_table(seed, n_utt, grouped, longest)
    ranks, top = rank_and_top(codes, score, dscore)
    want_ranks, want_top = _reference(codes, score, dscore)
    assert ranks.tolist() == want_ranks
    assert top.tolist() == want_top


def test_long_n_bests_and_nan_domain_scores_take_the_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    codes, score, dscore = _random_table(1, 30, False, 8)
    monkeypatch.setattr(kernel_ranking, "MAX_PAIRWISE", 2)
    ranks, top = rank_and_top_grouped(codes, score, dscore, 30)
    assert (ranks.tolist(), top.tolist()) == _reference(codes, score, dscore)
    dscore[3] = np.nan
    order = np.lexsort((-dscore, -score, codes))  # NaN domain scores go last among ties
    ranks, _ = rank_and_top_grouped(codes, score, dscore, 30)
    assert ranks[order].tolist() == [
        int(r) for r in np.arange(codes.size) - np.searchsorted(codes[order], codes[order]) + 1
    ]


def test_codes_that_are_not_dense_take_the_sort() -> None:
    codes = np.array([7, 3, 7, 3])
    ranks, top = rank_and_top(codes, np.array([0.1, 0.2, 0.3, 0.2]), np.zeros(4))
    assert ranks.tolist() == [2, 1, 1, 2] and top.tolist() == [1, 2]
