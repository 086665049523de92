"""Prepared and scored tables: utterance index, ranks and top-1 rows, summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reranker import tables
from reranker.errors import DataError
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.ranking import rank_within_utterance, top1_indices, utterance_codes
from tests.conftest import CONFORMANCE, make_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_hypotheses(CONFORMANCE / "hypotheses.csv")


@pytest.fixture(scope="module")
def prepared(table: pd.DataFrame) -> tables.PreparedTable:
    return tables.prepare(table)


def test_scored_view_ranks_like_the_ranking_module() -> None:
    table = validate_hypotheses(make_table(200, 5)).sample(frac=1.0, random_state=1)
    prep = tables.prepare(table.reset_index(drop=True))
    score = np.random.default_rng(2).integers(0, 4, len(table)) / 4  # many exact ties
    scored = tables.scored_view(prep, score)
    codes = utterance_codes(prep.frame["utterance_id"])
    dscore = prep.frame["domain_score"].to_numpy()
    np.testing.assert_array_equal(scored.rank, rank_within_utterance(codes, score, dscore))
    np.testing.assert_array_equal(scored.top, top1_indices(codes, score, dscore))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        tables.scored_view(prep, score + 2)


def test_rows_of_groups_rows_by_utterance(table: pd.DataFrame) -> None:
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    prep = tables.prepare(shuffled)
    for uid in ["u0", "u5", "u299"]:
        expected = np.flatnonzero(shuffled["utterance_id"] == uid)
        np.testing.assert_array_equal(prep.rows_of(uid), expected)
    with pytest.raises(DataError, match="no utterance"):
        prep.rows_of("nope")


def test_dataset_summary_counts_and_oracle(prepared: tables.PreparedTable) -> None:
    s = tables.dataset_summary(prepared)
    frame = prepared.frame
    assert s["n_utterances"] == frame["utterance_id"].nunique()
    assert s["n_hypotheses"] == len(frame)
    oracle = pd.Series(prepared.correct).groupby(frame["utterance_id"].to_numpy()).max().mean()
    assert s["oracle_accuracy"] == pytest.approx(oracle)
