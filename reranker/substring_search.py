"""Which strings of an Arrow string array contain a literal substring: a vectorised byte scan.

The strings' UTF-8 bytes lie end to end in one buffer, delimited by their offsets. Every
occurrence of the needle's bytes in the buffer is found with numpy (the positions of its first
byte, narrowed byte by byte), in slices so no temporary exceeds a few megabytes; an occurrence
counts for the string it starts in when it also ends there. UTF-8 is self-synchronising, so a
byte match is a match of whole characters: the result is ``needle in s`` for every string ``s``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["contains", "string_buffers"]

SLICE = 1 << 22
"""Bytes of the buffer compared at a time."""


def string_buffers(array: Any) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """``(data, offsets)`` of an Arrow (large) string array, without copying: string ``i`` is
    ``data[offsets[i]:offsets[i + 1]]``."""
    import pyarrow as pa

    array = array.cast(pa.large_string())
    _, offsets, data = array.buffers()
    start = array.offset
    off = np.frombuffer(offsets, dtype=np.int64)[start : start + len(array) + 1]
    raw = np.zeros(0, np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8)
    return raw, off


def _rarest(data: NDArray[np.uint8], needle: NDArray[np.uint8]) -> int:
    """Position in ``needle`` of its byte rarest in a sample of ``data`` (fewest candidates)."""
    sample = data[: 1 << 20]
    return int(np.argmin([np.count_nonzero(sample == b) for b in needle]))


def _occurrences(data: NDArray[np.uint8], needle: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Start of every occurrence of ``needle`` in ``data`` (overlapping ones included)."""
    k = needle.size
    anchor = _rarest(data, needle)
    others = [j for j in range(k) if j != anchor]
    found = []
    for begin in range(0, max(0, data.size - k + 1), SLICE):
        window = data[begin : begin + SLICE + k - 1]
        # candidates: where the rarest byte sits at its place in an occurrence
        at = np.flatnonzero(window[anchor : window.size - k + 1 + anchor] == needle[anchor])
        for j in others:
            at = at[window[at + j] == needle[j]]
        found.append(at + begin)
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def contains(data: NDArray[np.uint8], offsets: NDArray[np.int64], needle: str) -> NDArray[np.bool_]:
    """For each string of ``(data, offsets)``, whether it contains ``needle`` (non-empty)."""
    n = offsets.size - 1
    code = np.frombuffer(needle.encode("utf-8"), dtype=np.uint8)
    out = np.zeros(n, dtype=bool)
    if n <= 0 or code.size == 0:
        out[:] = code.size == 0
        return out
    base = int(offsets[0])
    starts = _occurrences(data[base : int(offsets[-1])], code) + base
    row = np.searchsorted(offsets, starts, side="right") - 1
    out[row[starts + code.size <= offsets[row + 1]]] = True
    return out
