"""The vectorised substring scan against Python's ``in`` on every string."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reranker import substring_search
from reranker.substring_search import contains, string_buffers

texts = st.lists(st.text(alphabet="abċ İ\u0307ß€😀", max_size=12), max_size=30)


@settings(max_examples=300, deadline=None)
@given(strings=texts, needle=st.text(alphabet="abċ İ\u0307ß€😀", min_size=1, max_size=4))
def test_contains_is_python_in_for_every_string(strings: list[str], needle: str) -> None:
    data, offsets = string_buffers(pa.array(strings, pa.string()))
    assert contains(data, offsets, needle).tolist() == [needle in s for s in strings]


@pytest.mark.parametrize("width", [1, 2, 3, 7])
def test_matches_across_slice_boundaries_and_in_sliced_arrays(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(substring_search, "SLICE", width)
    strings = ["xxabab", "ab", "", "b", "aab", "ba", "zzzab"]
    array = pa.array(["ab", *strings], pa.large_string()).slice(1)  # a non-zero array offset
    data, offsets = string_buffers(array)
    for needle in ("ab", "b", "aba", "bab", "ba", "zab", "q"):
        assert contains(data, offsets, needle).tolist() == [needle in s for s in strings]
