"""Single values of memory-mapped Arrow arrays, read from their file with ``pread``.

Touching a value through a memory map makes the kernel map the whole page-cache folio around
it (up to megabytes) into the process, so a page of 500 scattered rows would keep hundreds of
megabytes resident. The arrays of an Arrow IPC file read from a memory map lie in the file at
their buffer's address minus the map's base address; reading the bytes of the wanted values
there touches nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["read_strings", "read_values", "readable"]


def readable(array: Any) -> bool:
    """Whether :func:`read_values` or :func:`read_strings` can read this array (no nulls; a
    number, a boolean or a large string)."""
    import pyarrow as pa

    kind = array.type
    plain = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    return array.null_count == 0 and (plain or pa.types.is_large_string(kind))


def read_values(path: Path, base: int, array: Any, rows: NDArray[np.int64]) -> NDArray[Any]:
    """Values ``rows`` of a numeric or boolean ``array`` mapped at ``base`` from ``path``."""
    import pyarrow as pa

    data = array.buffers()[1]
    at = data.address - base
    index = rows + array.offset
    fd = os.open(path, os.O_RDONLY)
    try:
        if pa.types.is_boolean(array.type):
            raw = [os.pread(fd, 1, at + int(i) // 8)[0] for i in index]
            return (np.array(raw, dtype=np.uint8) >> (index % 8).astype(np.uint8)) & 1 == 1
        dtype = np.dtype(array.type.to_pandas_dtype())
        raw_bytes = b"".join(
            os.pread(fd, dtype.itemsize, at + int(i) * dtype.itemsize) for i in index
        )
        return np.frombuffer(raw_bytes, dtype=dtype).copy()
    finally:
        os.close(fd)


def read_strings(path: Path, base: int, array: Any, rows: NDArray[np.int64]) -> list[str]:
    """Strings ``rows`` of a large string ``array`` mapped at ``base`` from ``path``."""
    _, offsets, data = array.buffers()
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for i in (rows + array.offset).tolist():
            at = offsets.address - base + 8 * i
            begin, end = np.frombuffer(os.pread(fd, 16, at), dtype=np.int64).tolist()
            text = os.pread(fd, end - begin, data.address - base + begin) if end > begin else b""
            out.append(text.decode("utf-8"))
    finally:
        os.close(fd)
    return out
