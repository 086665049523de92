from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reranker.annotation import format_annotation, normalize_value, parse_slots
from reranker.errors import DataError
from reranker.semer import (
    align_interpretations,
    interpretation_error,
    semer_error,
    table_errors,
)


def slow_levenshtein(a: list, b: list) -> int:
    """Textbook full-matrix dynamic programme, obviously correct."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
    return d[len(a)][len(b)]


def slow_semer(ref_intent: str, ref_slots: str, hyp_intent: str, hyp_slots: str) -> float:
    ref = [("intent", ref_intent)] + [(t, normalize_value(v)) for t, v in parse_slots(ref_slots)]
    hyp = [("intent", hyp_intent)] + [(t, normalize_value(v)) for t, v in parse_slots(hyp_slots)]
    return slow_levenshtein(ref, hyp) / len(ref)


@pytest.mark.parametrize(
    ("ref", "hyp", "expected"),
    [
        # the worked examples of docs/metrics.md#semer
        (
            ("Video.PlayVideo", "[video_name : moana]"),
            ("Books.ReadBook", "[book_name : moana]"),
            1.0,
        ),
        (("Video.PlayVideo", "[video_name : moana]"), ("Video.PlayVideo", ""), 0.5),
        (
            ("Video.PlayVideo", "[video_name : moana]"),
            ("Video.PlayVideo", "[video_name : moana] [device : tv]"),
            0.5,
        ),
        (("PlayMusic", "[album : x] [artist : y]"), ("PlayMusic", "[album : x]"), 1 / 3),
        # wrong type, right value: one substitution
        (
            ("PlayMusic", "[album : x] [artist : y]"),
            ("PlayMusic", "[song : x] [artist : y]"),
            1 / 3,
        ),
        # insertions beyond |R| are not clipped
        (("PlayMusic", "play x"), ("PlayMusic", "[a : play] [b : x]"), 2.0),
        # values compare lower-cased with collapsed white space
        (("PlayMusic", "[album :  Big   Thing ]"), ("PlayMusic", "[album : big thing]"), 0.0),
        # order matters: swapped slots cost two substitutions
        (("P", "[a : 1] [b : 2]"), ("P", "[b : 2] [a : 1]"), 2 / 3),
        (("P", ""), ("P", ""), 0.0),
        (("P", ""), ("Q", ""), 1.0),
    ],
)
def test_semer_error_hand_worked(ref: tuple, hyp: tuple, expected: float) -> None:
    got = semer_error([ref[0]], [ref[1]], [hyp[0]], [hyp[1]])
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, abs=1e-15)


def _random_annotation(rng: np.random.Generator) -> str:
    n = int(rng.integers(0, 7))
    tokens = [str(v) for v in rng.choice(["x", "y", "Z", "w"], size=max(n, 1))]
    spans = [(k, k + 1, str(rng.choice(["a", "b", "c"]))) for k in range(n) if rng.random() < 0.8]
    return format_annotation(" ".join(tokens), spans)


def test_semer_error_matches_slow_reference_on_random_pairs() -> None:
    rng = np.random.default_rng(7)
    n = 4000
    ri = rng.choice(["I1", "I2", "I3"], size=n)
    hi = rng.choice(["I1", "I2", "I3"], size=n)
    rs = [_random_annotation(rng) for _ in range(n)]
    hs = [_random_annotation(rng) for _ in range(n)]
    fast = semer_error(ri, rs, hi, hs)
    slow = np.array([slow_semer(a, b, c, d) for a, b, c, d in zip(ri, rs, hi, hs, strict=True)])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


slot_lists = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y", "X ", "z"])),
    max_size=6,
)


def _ann(slots: list[tuple[str, str]]) -> str:
    return " ".join(f"[{t} : {v}]" for t, v in slots)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["I1", "I2"]), slot_lists, st.sampled_from(["I1", "I2"]), slot_lists)
def test_semer_error_nonnegative_and_zero_iff_equal(ri: str, rs: list, hi: str, hs: list) -> None:
    value = semer_error([ri], [_ann(rs)], [hi], [_ann(hs)])[0]
    assert value >= 0
    same = ri == hi and [(t, normalize_value(v)) for t, v in rs] == [
        (t, normalize_value(v)) for t, v in hs
    ]
    assert (value == 0) == same
    assert value == pytest.approx(slow_semer(ri, _ann(rs), hi, _ann(hs)))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["I1", "I2"]), slot_lists), min_size=2, max_size=20),
    st.randoms(),
)
def test_semer_error_is_elementwise_under_permutation(pairs: list, random) -> None:
    ri = [p[0] for p in pairs]
    rs = [_ann(p[1]) for p in pairs]
    hi = list(reversed(ri))
    hs = list(reversed(rs))
    base = semer_error(ri, rs, hi, hs)
    perm = list(range(len(pairs)))
    random.shuffle(perm)
    permuted = semer_error(
        [ri[k] for k in perm], [rs[k] for k in perm], [hi[k] for k in perm], [hs[k] for k in perm]
    )
    np.testing.assert_array_equal(permuted, base[perm])


def test_semer_error_rejects_unequal_lengths() -> None:
    with pytest.raises(DataError, match="equal lengths"):
        semer_error(["a", "b"], ["", ""], ["a"], [""])


def test_semer_error_empty_input() -> None:
    assert semer_error([], [], [], []).shape == (0,)


def test_interpretation_error_needs_domain_intent_and_slots() -> None:
    ie = interpretation_error(
        ["Music", "Music", "Music", "Music"],
        ["Play", "Play", "Play", "Play"],
        ["[a : X]", "[a : X]", "[a : X]", "[a : X]"],
        ["Music", "Books", "Music", "Music"],
        ["Play", "Play", "Stop", "Play"],
        ["[a :  x ]", "[a : x]", "[a : x]", "[a : y]"],
    )
    assert ie.tolist() == [0, 1, 1, 1]


def test_table_errors_qualifies_intents_by_domain() -> None:
    frame = pd.DataFrame(
        {
            "domain": ["Books", "Music"],
            "intent": ["Play", "Play"],
            "slots": ["", ""],
            "ref_domain": ["Music", "Music"],
            "ref_intent": ["Play", "Play"],
            "ref_slots": ["", ""],
        }
    )
    semer, correct = table_errors(frame)
    assert semer.tolist() == [1.0, 0.0]
    assert correct.tolist() == [0, 1]


def test_align_interpretations_names_each_edit() -> None:
    steps = align_interpretations(
        "PlayMusic",
        "[album : x] [artist : y]",
        "PlayMusic",
        "[song : x] [device : tv] [artist : y]",
    )
    ops = [s.op for s in steps]
    assert ops.count("substitution") == 1
    assert ops.count("insertion") == 1
    assert ops.count("match") == 2
    sub = next(s for s in steps if s.op == "substitution")
    assert (sub.ref, sub.hyp) == ("album=x", "song=x")


def test_align_interpretations_cost_equals_semer_numerator() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        rs, hs = _random_annotation(rng), _random_annotation(rng)
        steps = align_interpretations("I", rs, "I", hs)
        cost = sum(s.op != "match" for s in steps)
        ref_len = 1 + len(parse_slots(rs))
        assert cost / ref_len == pytest.approx(semer_error(["I"], [rs], ["I"], [hs])[0])
