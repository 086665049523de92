"""Vectorised annotation parsing against the Python parser, and SemER against rapidfuzz."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

from reranker.annotation import normalize_value, parse_slots
from reranker.errors import DataError
from reranker.label_sequences import encode_annotations, first_malformed, text_column
from reranker.semer import semer_error, table_errors
from reranker.synthetic import realistic_hypotheses


def python_labels(annotation: str) -> list[tuple[str, str]]:
    return [(t, normalize_value(v)) for t, v in parse_slots(annotation)]


def decoded(columns: list[list[str]]) -> list[list[tuple[int, ...]]]:
    seqs = encode_annotations(columns, [f"c{k}" for k in range(len(columns))])
    return [
        [tuple(seqs.labels[seqs.offsets[k] : seqs.offsets[k + 1]]) for k in codes]
        for codes in seqs.codes
    ]


def assert_same_partition(values: list[str]) -> None:
    """Equal label ids exactly where the Python parser gives equal labels."""
    (got,) = decoded([values])
    want = [python_labels(v) for v in values]
    for i in range(len(values)):
        assert len(got[i]) == len(want[i])
        for j in range(len(values)):
            for a, b, c, d in zip(got[i], got[j], want[i], want[j], strict=False):
                assert (a == b) == (c == d), (values[i], values[j])


# Pieces chosen to hit every branch: brackets, colons, runs of spaces, tabs, characters
# outside printable ASCII (Python path), upper case, NUL and SOH in types.
_piece = st.sampled_from(
    ["[", "]", ":", " ", "  ", "\t", "a", "B", "x y", "É", "\x00", "\x01", "\x1f", "é", "song"]
)
_slot = st.builds(
    lambda t, v, s1, s2: f"[{s1}{t}{s2}:{s2}{v}{s1}]",
    st.sampled_from(["a", "B", "my  type", "a\x00", "a\x01\x02", "É", "t:"[:1]]),
    st.sampled_from(["x", "X  Y", " x\ty ", "é", "v:w", "x\x1fy", "MARY poppins", "\x00"]),
    st.sampled_from(["", " ", "  "]),
    st.sampled_from(["", " ", "\t"]),
)
_annotation = st.lists(st.one_of(_slot, _piece), max_size=6).map("".join)
_valid_annotation = st.lists(
    st.one_of(_slot, _piece.filter(lambda p: p not in "[]")), max_size=6
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_annotation, _valid_annotation), min_size=1, max_size=8))
def test_encode_annotations_agrees_with_the_python_parser(values: list[str]) -> None:
    try:
        for v in values:
            parse_slots(v)
    except DataError:
        with pytest.raises(DataError):
            encode_annotations([values], ["slots"])
        return
    assert_same_partition(values)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_annotation, _valid_annotation), min_size=1, max_size=8))
def test_first_malformed_is_the_first_row_the_python_parser_rejects(values: list[str]) -> None:
    want = None
    for row, value in enumerate(values):
        try:
            parse_slots(value)
        except DataError as e:
            want = (row, str(e))
            break
    assert first_malformed(pd.Series(values, dtype="str")) == want


def test_fast_and_python_paths_give_the_same_ids() -> None:
    ascii_rows = ["play [Song : Mary   Poppins] now", "[a : b:c] [ t  : x ]", "[b: X] [b : x]"]
    # "é" outside the brackets sends the same slots through the Python parser
    unicode_rows = [v + " é" for v in ascii_rows]
    got_ascii, got_unicode = decoded([ascii_rows, unicode_rows])
    assert got_ascii == got_unicode
    assert got_ascii[2][0] == got_ascii[2][1]  # value compared after lower-casing
    assert len(set(got_ascii[1])) == 2


def test_encode_annotations_names_the_bad_row() -> None:
    with pytest.raises(DataError, match=r"hyp\[2\]: .*unbalanced"):
        encode_annotations([["[a : b]", ""], ["", "x", "[a : b"]], ["ref", "hyp"])
    with pytest.raises(DataError, match=r"ref\[0\]: .*empty value"):
        encode_annotations([["[a :  ]"]], ["ref"])


@pytest.mark.parametrize(
    "values",
    [
        ["a", None, "b"],
        pd.Series(["a", None, "b"], dtype="str"),
        pd.Series(["a", np.nan, "b"], dtype=object),
        pd.Series(["a", "c", "b"], dtype="category").where(lambda s: s != "c"),
        np.array(["a", None, "b"], dtype=object),
    ],
)
def test_text_column_missing_values(values: object) -> None:
    assert text_column(values, "x", missing_as_empty=True).to_pylist() == ["a", "", "b"]
    with pytest.raises(DataError, match=r"x\[1\] is missing"):
        text_column(values, "x", missing_as_empty=False)


def test_text_column_writes_other_values_with_str() -> None:
    assert text_column([1, "a", 2.5], "x", missing_as_empty=False).to_pylist() == ["1", "a", "2.5"]
    assert text_column(np.array(["u", "v"]), "x", missing_as_empty=False).to_pylist() == ["u", "v"]


def rapidfuzz_errors(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """An independent implementation: the Python parser and rapidfuzz's Levenshtein."""
    semer, correct = [], []
    for rd, ri, rs, hd, hi, hs in zip(
        frame["ref_domain"],
        frame["ref_intent"],
        frame["ref_slots"],
        frame["domain"],
        frame["intent"],
        frame["slots"],
        strict=True,
    ):
        ref = [("", rd, ri), *python_labels(rs)]
        hyp = [("", hd, hi), *python_labels(hs)]
        d = Levenshtein.distance(ref, hyp)
        semer.append(d / len(ref))
        correct.append(int(d == 0))
    return np.array(semer), np.array(correct)


def test_table_errors_match_rapidfuzz_on_realistic_data() -> None:
    frame = realistic_hypotheses(1500, seed=9)
    semer, correct = table_errors(frame)
    want_semer, want_correct = rapidfuzz_errors(frame)
    np.testing.assert_allclose(semer, want_semer, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(correct, want_correct)


def test_semer_error_with_repeated_pairs_and_long_sequences() -> None:
    long_ref = " ".join(f"[t{k} : v{k}]" for k in range(12))
    long_hyp = " ".join(f"[t{k} : v{k + k % 3}]" for k in range(9))
    ri = ["A", "A", "A", "B", "A"]
    rs = [long_ref, long_ref, "", "[a : x]", long_ref]
    hi = ["A", "A", "B", "B", "B"]
    hs = [long_hyp, long_hyp, "[a : x] [b : y]", "", long_hyp]
    got = semer_error(ri, rs, hi, hs)
    want = [
        Levenshtein.distance([("i", a), *python_labels(b)], [("i", c), *python_labels(d)])
        / (1 + len(parse_slots(b)))
        for a, b, c, d in zip(ri, rs, hi, hs, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_table_errors_from_kept_dictionaries_in_small_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A validated table's annotation dictionaries (kept by validation, then dropped) parsed a
    few distinct annotations at a time give the same errors."""
    from reranker import label_sequences, text_codes
    from reranker.hypotheses import validate_hypotheses

    monkeypatch.setattr(text_codes, "SMALL_DICTIONARY", 10)  # the annotations' are larger
    frame = validate_hypotheses(realistic_hypotheses(300, seed=4))
    arrow_id = id(frame["slots"].array.__arrow_array__())
    assert text_codes._MEMO[arrow_id][1] is not None  # kept by validation
    monkeypatch.setattr(label_sequences, "_SLICE", 7)
    semer, correct = table_errors(frame)
    want_semer, want_correct = rapidfuzz_errors(frame)
    np.testing.assert_allclose(semer, want_semer, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(correct, want_correct)
    assert text_codes._MEMO[arrow_id][1] is None  # dropped once parsed
