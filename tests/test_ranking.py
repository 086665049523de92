from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from reranker.ranking import r0_score, rank_within_utterance, top1_indices, utterance_codes


def test_r0_score_is_the_product() -> None:
    frame = pd.DataFrame(
        {"domain_score": [0.5, 1.0], "intent_score": [0.5, 0.2], "slot_score": [0.4, 1.0]}
    )
    np.testing.assert_allclose(r0_score(frame), [0.1, 0.2])


def test_ties_break_on_domain_score_then_row_order() -> None:
    codes = utterance_codes(["a", "a", "a", "b", "b"])
    score = np.array([0.5, 0.5, 0.5, 0.2, 0.2])
    dscore = np.array([0.1, 0.9, 0.9, 0.3, 0.3])
    assert rank_within_utterance(codes, score, dscore).tolist() == [3, 1, 2, 1, 2]
    assert top1_indices(codes, score, dscore).tolist() == [1, 3]


def test_interleaved_utterances_are_grouped_by_id() -> None:
    codes = utterance_codes(["a", "b", "a", "b"])
    assert codes.tolist() == [0, 1, 0, 1]
    ranks = rank_within_utterance(codes, [0.1, 0.9, 0.8, 0.2], [0, 0, 0, 0])
    assert ranks.tolist() == [2, 1, 1, 2]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from([0.1, 0.5, 0.9]), st.sampled_from([0.2, 0.8])),
        min_size=1,
        max_size=40,
    )
)
def test_rank_matches_sorted_reference(rows) -> None:
    ids = [f"u{r[0]}" for r in rows]
    score = np.array([r[1] for r in rows])
    dscore = np.array([r[2] for r in rows])
    codes = utterance_codes(ids)
    ranks = rank_within_utterance(codes, score, dscore)
    top = set(top1_indices(codes, score, dscore).tolist())
    for u in set(ids):
        members = [k for k in range(len(rows)) if ids[k] == u]
        expected = sorted(members, key=lambda k: (-score[k], -dscore[k], k))
        assert [int(ranks[k]) for k in expected] == list(range(1, len(members) + 1))
        assert expected[0] in top
    assert len(top) == len(set(ids))
