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


def test_annotation_dictionaries_kept_until_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from reranker import text_codes as module

    monkeypatch.setattr(module, "SMALL_DICTIONARY", 2)
    column = _column(["[a : x]", "", "[b : y]", "[a : x]"])
    codes, dictionary = text_codes(column, keep_dictionary=True)  # type: ignore[misc]
    key = id(column.array.__arrow_array__())
    assert module._MEMO[key][1] is dictionary  # large, but kept as asked
    again, _ = text_codes(column)  # type: ignore[misc]
    assert again is codes
    module.drop_dictionary(column)
    assert module._MEMO[key][0] is codes and module._MEMO[key][1] is None
    assert module.kept_codes(column) is codes  # the codes stay
    module.drop_dictionary(pd.Series(["a"], dtype=object))  # not an Arrow column: nothing


_CELLS = ["", " ", "a", " a ", "é", "Ω x", "\t", "[t : v]", "[t : é] x", " [t : V]", "[t : ]", None]


def _validate_or_error(frame: pd.DataFrame) -> tuple[str, object]:
    from reranker.errors import DataError
    from reranker.hypotheses import validate_hypotheses
    from reranker.semer import table_errors

    try:
        out = validate_hypotheses(frame, source="f.csv", first_line=2)
    except DataError as e:
        return "error", str(e)
    semer, correct = table_errors(out)
    return "ok", (out.astype(object).to_dict("list"), semer.tolist(), correct.tolist())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["u1", "u2", " u3", "é"]),
            st.sampled_from(["D", "E ", None, "É"]),
            st.sampled_from(_CELLS),
            st.sampled_from(_CELLS),
            st.sampled_from(["R", " R", "Q"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_validation_and_semer_through_codes_equal_the_plain_columns(
    rows: list[tuple[str, str | None, str | None, str | None, str]],
) -> None:
    """Kept codes and dictionaries change no result and no error message (nulls, unicode,
    empty strings, surrounding spaces, malformed annotations, duplicates)."""
    from reranker import text_codes as module

    frame = pd.DataFrame(
        {
            "utterance_id": [r[0] for r in rows],
            "domain": [r[1] for r in rows],
            "intent": [r[4] for r in rows],
            "slots": [r[2] for r in rows],
            "domain_score": 0.5,
            "intent_score": 0.5,
            "slot_score": 0.5,
            "ref_domain": "D",
            "ref_intent": [r[4] for r in rows],
            "ref_slots": [next(q[3] for q in rows if q[0] == r[0]) for r in rows],
        }
    )
    through_codes = _validate_or_error(frame.astype({"slots": "str", "domain": "str"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "_arrow_column", lambda values: None)  # no column is coded
        plain = _validate_or_error(frame.astype({"slots": "str", "domain": "str"}))
    assert through_codes == plain
