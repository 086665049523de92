from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reranker.annotation import (
    format_annotation,
    normalize_value,
    parse_annotation,
    tokens_and_tags,
)
from reranker.errors import DataError


@pytest.mark.parametrize(
    ("annotation", "text", "slots"),
    [
        ("play [title : mary poppins]", "play mary poppins", (("title", "mary poppins"),)),
        ("play x", "play x", ()),
        ("", "", ()),
        (
            "play [album : x] by [artist : y]",
            "play x by y",
            (("album", "x"), ("artist", "y")),
        ),
        ("play  [album :  Big   Thing ]", "play Big Thing", (("album", "Big   Thing"),)),
        ("[time : 10:30] alarm", "10:30 alarm", (("time", "10:30"),)),
        ("[a:b]", "b", (("a", "b"),)),
    ],
)
def test_parse_annotation_hand_worked(annotation: str, text: str, slots: tuple) -> None:
    assert parse_annotation(annotation) == (text, slots)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ("play [title : x", "unbalanced"),
        ("play title : x]", "unbalanced"),
        ("play [[title : x]]", "unbalanced"),
        ("play [title x]", "no ' : '"),
        ("play [ : x]", "empty type"),
        ("play [title : ]", "empty value"),
    ],
)
def test_parse_annotation_rejects_malformed(annotation: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_annotation(annotation)


def test_normalize_value_lowercases_and_collapses_whitespace() -> None:
    assert normalize_value("  Big \t Thing ") == "big thing"


def test_tokens_and_tags_bio() -> None:
    tokens, tags = tokens_and_tags("play [album : big thing] now")
    assert tokens == ["play", "big", "thing", "now"]
    assert tags == ["O", "B-album", "I-album", "O"]


words = st.text(alphabet="abcxyz", min_size=1, max_size=5)


@given(st.lists(st.tuples(words, st.one_of(st.none(), words)), min_size=1, max_size=8))
def test_format_then_parse_round_trips(items: list[tuple[str, str | None]]) -> None:
    tokens = [w for w, _ in items]
    spans = [(k, k + 1, t) for k, (_, t) in enumerate(items) if t is not None]
    annotation = format_annotation(" ".join(tokens), spans)
    text, slots = parse_annotation(annotation)
    assert text == " ".join(tokens)
    assert slots == tuple((t, tokens[k]) for k, (_, t) in enumerate(items) if t is not None)
