"""Single values of the arrays of an Arrow IPC file, read from the file with ``pread``.

Touching a value through a memory map makes the kernel map the whole page-cache folio around
it (up to megabytes) into the process, so a page of 500 scattered rows would keep hundreds of
megabytes resident. An array of an uncompressed Arrow IPC file lies in the file at a fixed
place (its buffers' addresses minus the map's base address when the file is memory-mapped);
:func:`array_place` records that place once, and reading the bytes of the wanted values there
touches nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["STRING", "array_place", "read_strings", "read_values", "readable"]

STRING = "large_string"
"""The kind of a large string array in a place (any other kind is a numpy dtype or "bool")."""


def _kind(array: Any) -> str | None:
    import pyarrow as pa

    kind = array.type
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return str(np.dtype(kind.to_pandas_dtype()).str)
    if pa.types.is_large_string(kind):
        return STRING
    return None


def array_place(array: Any, base: int, size: int) -> dict[str, Any]:
    """Where the values of ``array`` (read from a file of ``size`` bytes mapped at ``base``)
    lie in that file: ``kind`` (``None``: not readable here), ``offset`` (the array's offset in
    its buffers), ``nulls``, and the file positions of its ``data`` (and string ``offsets``)
    buffers with the data buffer's size."""
    kind = _kind(array)
    place: dict[str, Any] = {"kind": kind, "offset": int(array.offset), "nulls": array.null_count}
    if kind is None:
        return place
    buffers = array.buffers()
    data = buffers[2] if kind == STRING else buffers[1]
    named = {"data": data} | ({"offsets": buffers[1]} if kind == STRING else {})
    for name, buffer in named.items():
        at = 0 if buffer is None else buffer.address - base
        length = 0 if buffer is None else buffer.size
        if not 0 <= at <= at + length <= size:  # not a slice of the mapped file
            return place | {"kind": None}
        place[name] = int(at)
        if name == "data":
            place["data_size"] = int(length)
    return place


def _open(path: Path) -> int:
    """A descriptor of ``path`` read at scattered places: no read-ahead (on a cold page cache,
    each value would otherwise read the hundred kilobytes after it)."""
    fd = os.open(path, os.O_RDONLY)
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    return fd


def readable(place: dict[str, Any]) -> bool:
    """Whether :func:`read_values` or :func:`read_strings` can read the array at this place
    (no nulls; a number, a boolean or a large string)."""
    return place.get("kind") is not None and place.get("nulls") == 0


def read_values(path: Path, place: dict[str, Any], rows: NDArray[np.int64]) -> NDArray[Any]:
    """Values ``rows`` of the numeric or boolean array at ``place`` in ``path``."""
    at = place["data"]
    index = rows + place["offset"]
    fd = _open(path)
    try:
        if place["kind"] == "bool":
            raw = [os.pread(fd, 1, at + int(i) // 8)[0] for i in index]
            return (np.array(raw, dtype=np.uint8) >> (index % 8).astype(np.uint8)) & 1 == 1
        dtype = np.dtype(place["kind"])
        raw_bytes = b"".join(
            os.pread(fd, dtype.itemsize, at + int(i) * dtype.itemsize) for i in index
        )
        return np.frombuffer(raw_bytes, dtype=dtype).copy()
    finally:
        os.close(fd)


def read_strings(path: Path, place: dict[str, Any], rows: NDArray[np.int64]) -> list[str]:
    """Strings ``rows`` of the large string array at ``place`` in ``path``."""
    out = []
    fd = _open(path)
    try:
        for i in (rows + place["offset"]).tolist():
            at = place["offsets"] + 8 * i
            begin, end = np.frombuffer(os.pread(fd, 16, at), dtype=np.int64).tolist()
            text = os.pread(fd, end - begin, place["data"] + begin) if end > begin else b""
            out.append(text.decode("utf-8"))
    finally:
        os.close(fd)
    return out
