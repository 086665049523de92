"""The allocator of the Arrow memory that reading and evaluating a large table allocate.

Reading a Parquet table of millions of strings and hashing and splitting its text columns
allocate gigabytes of short-lived Arrow buffers. pyarrow's default allocator on Linux
(mimalloc) hands freed pages back to the system and faults them in again: reading a 6M-row
table spent 7 to 8 CPU seconds in the kernel with it, 2 with Arrow's bundled jemalloc (which
Arrow configures to return freed pages at once, so the peak memory did not grow: that of the
whole ``evaluate`` fell from 3,754 to 3,487 MiB). :func:`arrow_allocator` makes jemalloc Arrow's
default allocator while a block runs, and only when nobody chose another one: not when
``ARROW_DEFAULT_MEMORY_POOL`` names one, not when the process set its own default (worker
processes use the system allocator, :mod:`reranker.executors`), and not where pyarrow was built
without jemalloc (then nothing changes). Buffers remember the allocator they came from, so
those that outlive the block are freed correctly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

__all__ = ["arrow_allocator"]

_LOCK = threading.Lock()
_DEPTH = 0
_SAVED: list[pa.MemoryPool] = []


def _jemalloc() -> pa.MemoryPool | None:
    """Arrow's jemalloc allocator when it should replace the default one, else ``None``."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return None
    if pa.default_memory_pool().backend_name != "mimalloc":  # someone chose another
        return None
    try:
        return pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowException):  # pyarrow built without jemalloc
        return None


@contextmanager
def arrow_allocator() -> Iterator[None]:
    """Arrow allocates from jemalloc inside the block (see the module's documentation).

    Blocks may nest and run in several threads: the first one to enter switches the default
    allocator and the last one to leave restores it.
    """
    global _DEPTH
    with _LOCK:
        if _DEPTH == 0:
            pool = _jemalloc()
            _SAVED.append(pa.default_memory_pool())
            if pool is not None:
                pa.set_memory_pool(pool)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                pa.set_memory_pool(_SAVED.pop())
