"""Codes of text columns kept per column (reranker/text_codes.py) against pandas and pyarrow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reranker.hypotheses import _Locator, duplicate_problem
from reranker.label_sequences import factorize_text, text_column
from reranker.text_codes import joint_text_codes, text_codes

WORDS = ["", " ", "a", "a ", " a", "b", "B", "é", "\t", "a\x00b", "ab", "x" * 40]


def _column(values: list[str]) -> pd.Series:
    return pd.Series(values, dtype="str")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(WORDS) | st.text(max_size=5), max_size=60))
def test_codes_are_pandas_factorize_codes(values: list[str]) -> None:
    column = _column(values)
    found = text_codes(column)
    assert found is not None
    codes, dictionary = found
    expected, uniques = pd.factorize(np.asarray(values, dtype=object))
    assert np.array_equal(codes.astype(np.int64), expected)
    assert dictionary.to_pylist() == list(uniques)
    assert text_codes(column)[0] is codes  # type: ignore[index]  # kept for the column


def test_codes_follow_the_arrow_data_not_the_series() -> None:
    column = _column(["a", "b", "a"])
    first = text_codes(column)
    assert first is not None
    assert text_codes(column.copy())[0] is first[0]  # type: ignore[index]  # same Arrow data
    changed = column.copy()
    changed.iloc[0] = "b"
    codes, _ = text_codes(changed)  # type: ignore[misc]
    assert codes.tolist() == [0, 0, 1]  # "b", "b", "a"
    assert text_codes(pd.Series(["a", None], dtype="str")) is None  # nulls: not kept
    assert text_codes(pd.Series(["a"], dtype=object)) is None
    assert text_codes(["a"]) is None


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(WORDS), max_size=30),
    st.lists(st.sampled_from(WORDS[::-1]), max_size=30),
    st.booleans(),
)
def test_joint_codes_match_one_factorisation_of_both_columns(
    a: list[str], b: list[str], plain: bool
) -> None:
    columns = [a, b] if plain else [_column(a), _column(b)]  # lists: not kept, same codes
    codes, dictionary = joint_text_codes(columns, ["a", "b"], missing_as_empty=True)
    expected, reference = factorize_text(
        [text_column(c, n, missing_as_empty=True) for c, n in zip(columns, "ab", strict=True)]
    )
    assert [c.tolist() for c in codes] == [e.tolist() for e in expected]
    assert dictionary.to_pylist() == reference.to_pylist()


def _frame(rows: list[tuple[str, str, str, str]], arrow: bool) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["utterance_id", "domain", "intent", "slots"])
    return frame.astype("str") if arrow else frame.astype(object)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(*[st.sampled_from(["", "a", "b", "a b", " a"]) for _ in range(4)]), max_size=25
    ),
    st.booleans(),
)
def test_duplicate_check_by_codes_matches_pandas(
    rows: list[tuple[str, str, str, str]], small_span: bool
) -> None:
    from reranker import hypotheses

    loc = _Locator("t", 0)
    reference = duplicate_problem(_frame(rows, arrow=False), loc)  # frame.duplicated
    with pytest.MonkeyPatch.context() as mp:
        if small_span:
            mp.setattr(hypotheses, "_KEY_SPAN", 7)  # renumber the key after every column
        assert duplicate_problem(_frame(rows, arrow=True), loc) == reference


def test_large_dictionaries_are_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from reranker import text_codes as module

    monkeypatch.setattr(module, "SMALL_DICTIONARY", 2)
    column = _column(["c", "a", "b", "a"])
    codes, dictionary = text_codes(column)  # type: ignore[misc]
    assert module._MEMO[id(column.array.__arrow_array__())][1] is None  # codes only
    assert module.kept_codes(column) is codes
    again, dictionary_again = text_codes(column)  # type: ignore[misc]
    assert again.tolist() == codes.tolist() == [0, 1, 2, 1]
    assert dictionary_again.to_pylist() == dictionary.to_pylist() == ["c", "a", "b"]
