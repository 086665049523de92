"""Arrow's allocator while tables are read and evaluated (reranker/arrow_memory.py)."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from reranker import arrow_memory
from reranker.arrow_memory import arrow_allocator


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


@pytest.fixture
def mimalloc_default(monkeypatch: pytest.MonkeyPatch) -> pa.MemoryPool:
    """pyarrow's own default allocator, as in a process that chose none."""
    try:
        pool = pa.mimalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("pyarrow built without mimalloc")
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    before = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    yield pool
    pa.set_memory_pool(before)


@pytest.mark.skipif(not _has_jemalloc(), reason="pyarrow built without jemalloc")
def test_jemalloc_inside_the_block_and_the_default_restored(
    mimalloc_default: pa.MemoryPool,
) -> None:
    with arrow_allocator():
        assert pa.default_memory_pool().backend_name == "jemalloc"
        with arrow_allocator():  # nested: still jemalloc, and not restored by the inner block
            kept = pa.array(["a", "b"] * 1000)  # outlives the block
        assert pa.default_memory_pool().backend_name == "jemalloc"
    assert pa.default_memory_pool().backend_name == mimalloc_default.backend_name
    assert kept.to_pylist()[:2] == ["a", "b"]
    del kept  # freed by the allocator it came from


def test_a_chosen_allocator_is_kept(
    mimalloc_default: pa.MemoryPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pa.set_memory_pool(pa.system_memory_pool())  # as worker processes do
    with arrow_allocator():
        assert pa.default_memory_pool().backend_name == "system"
    assert pa.default_memory_pool().backend_name == "system"
    pa.set_memory_pool(mimalloc_default)
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
    with arrow_allocator():
        assert pa.default_memory_pool().backend_name == "mimalloc"


def test_without_jemalloc_nothing_changes(
    mimalloc_default: pa.MemoryPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable() -> pa.MemoryPool:
        raise NotImplementedError("built without jemalloc")

    monkeypatch.setattr(arrow_memory.pa, "jemalloc_memory_pool", unavailable)
    with arrow_allocator():
        assert pa.default_memory_pool().backend_name == "mimalloc"
    assert pa.default_memory_pool().backend_name == "mimalloc"


def test_blocks_in_threads_restore_the_default_once_all_have_left(
    mimalloc_default: pa.MemoryPool,
) -> None:
    entered, release = threading.Barrier(3), threading.Event()

    def work() -> None:
        with arrow_allocator():
            entered.wait()
            release.wait()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    entered.wait()
    inside = pa.default_memory_pool().backend_name
    release.set()
    for t in threads:
        t.join()
    assert inside == ("jemalloc" if _has_jemalloc() else "mimalloc")
    assert pa.default_memory_pool().backend_name == "mimalloc"
