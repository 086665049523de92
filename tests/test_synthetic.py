"""The realistic generator has the shape the benchmarks rely on."""

from __future__ import annotations

import pandas as pd
import pytest

from reranker.annotation import parse_slots
from reranker.hypotheses import validate_hypotheses
from reranker.semer import table_errors
from reranker.synthetic import realistic_hypotheses


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return realistic_hypotheses(3000, seed=4)


def test_realistic_hypotheses_validate_unchanged(table: pd.DataFrame) -> None:
    checked = validate_hypotheses(table)
    assert len(checked) == len(table)
    pd.testing.assert_frame_equal(realistic_hypotheses(3000, seed=4), table)


def test_realistic_hypotheses_have_one_distinct_slot_string_per_three_rows(
    table: pd.DataFrame,
) -> None:
    ratio = table["slots"].nunique() / len(table)
    assert 0.28 < ratio < 0.40


def test_realistic_hypotheses_have_distinct_references(table: pd.DataFrame) -> None:
    per_utt = table.groupby("utterance_id")["ref_slots"].nunique()
    assert (per_utt == 1).all()
    refs = table.drop_duplicates("utterance_id")["ref_slots"]
    assert refs.is_unique
    assert len(refs) == 3000


def test_realistic_hypotheses_shape(table: pd.DataFrame) -> None:
    domains = table.groupby("utterance_id")["domain"].nunique()
    assert domains.min() >= 2 and domains.max() <= 4
    slots = [parse_slots(s) for s in table["ref_slots"].drop_duplicates()]
    assert {len(s) for s in slots} == {0, 1, 2, 3, 4}
    assert {len(v.split()) for s in slots for _, v in s} == {1, 2, 3, 4}
    semer, correct = table_errors(table)
    assert 0.05 < correct.mean() < 0.3
    assert semer.max() > 1.0  # insertions exist
    assert 6 < len(table) / 3000 < 7
