"""Running a function over many partitions: on this machine, or on a Dask cluster.

An executor maps a picklable function over a list of argument tuples and yields ``(index,
result or exception)`` as each call finishes. Two executors share that interface:

- :class:`LocalExecutor`: ``jobs`` worker processes (started from a ``forkserver``, each with one
  BLAS thread), or the calling process itself with ``jobs=1``: plain streaming, one partition
  in memory at a time. It needs nothing beyond the core install.
- :class:`DaskExecutor`: a Dask cluster (``scheduler="tcp://host:8786"``), or a local cluster of
  ``jobs`` single-threaded worker processes when no scheduler is given. Needs ``reranker[dask]``.

Both also implement the training :class:`~reranker.training.Engine` protocol (``run(tasks)``),
so one executor serves every phase of a command.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

from reranker.errors import DataError, RerankerError

__all__ = [
    "EXECUTORS",
    "DaskExecutor",
    "Executor",
    "LocalExecutor",
    "Progress",
    "make_executor",
    "run_all",
]

EXECUTORS: tuple[str, ...] = ("local", "dask")
Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``, called in the calling process as partitions finish."""


class Executor(Protocol):
    """Maps a function over argument tuples, yielding results as they complete."""

    workers: int
    dashboard: str | None

    def map(
        self, fn: Callable[..., Any], arguments: Sequence[tuple[Any, ...]]
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, result or exception)`` in completion order."""
        ...

    def run(self, tasks: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
        """The training engine protocol: ``(task, fit_domain(task) or exception)``."""
        ...

    def close(self) -> None:
        """Release workers and clusters."""
        ...


def _one_thread() -> None:
    """Keep a worker process on one core (one BLAS thread and one Arrow thread) and its memory
    at what it holds.

    Each core runs one worker process; a worker's own thread pools would compete with the
    other workers (and make one worker look faster than one core). Arrow allocates from the
    system allocator, which returns a freed partition's large buffers to the system at once
    (Arrow's default allocator keeps them: about 0.2 GB more per worker with parts of one
    million rows).
    """
    import pyarrow as pa
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    pa.set_memory_pool(pa.system_memory_pool())


class _OneThreadPlugin:
    """Dask worker plugin: :func:`_one_thread` on every worker, present and future."""

    name = "reranker-one-thread"

    def setup(self, worker: Any) -> None:
        import multiprocessing

        if multiprocessing.parent_process() is not None:  # not a worker thread of this process
            _one_thread()


_PIPELINE = ("reranker.streaming", "reranker.dataset_training")
"""The modules the partition tasks need: imported once per worker by :meth:`_Runs.start` (or
only those of one command), and once in the forkserver the local workers start from (not once
per worker)."""


def _import(modules: Sequence[str]) -> int:
    """Import ``modules`` here; the process id."""
    import importlib

    for name in modules:
        importlib.import_module(name)
    return os.getpid()


def _ready(pause: float, modules: Sequence[str] = _PIPELINE) -> int:
    """A worker's first task: import ``modules``, hold the worker a moment (so that each of
    the first calls lands on another worker) and return the process id."""
    import time

    _import(modules)
    time.sleep(pause)
    return os.getpid()


class _Runs:
    """``run(tasks)`` of the training engine protocol on top of ``map``."""

    workers: int

    def start(self, modules: Sequence[str] = _PIPELINE) -> float:
        """Start every worker and import ``modules`` there (by default what every command
        needs); the seconds it took.

        Optional: the first tasks start the workers otherwise. Timing a command after this
        separates the engine's start-up from its work.
        """
        import time

        started = time.perf_counter()
        self._start(tuple(modules))
        return time.perf_counter() - started

    def _start(self, modules: tuple[str, ...]) -> None:
        pause = 0.2 if self.workers > 1 else 0.0
        for _, outcome in self.map(_ready, [(pause, modules)] * self.workers):
            if isinstance(outcome, BaseException):
                raise outcome

    def map(
        self, fn: Callable[..., Any], arguments: Sequence[tuple[Any, ...]]
    ) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def run(self, tasks: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
        from reranker.training import fit_domain

        for index, outcome in self.map(fit_domain, [(t,) for t in tasks]):
            yield tasks[index], outcome

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the workers."""


class LocalExecutor(_Runs):
    """Partitions in ``jobs`` local worker processes, or in this process with ``jobs=1``."""

    def __init__(self, jobs: int | None = None) -> None:
        self.workers = max(1, jobs or os.cpu_count() or 1)
        self.dashboard: str | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._modules: tuple[str, ...] = _PIPELINE

    def _start(self, modules: tuple[str, ...]) -> None:
        self._modules = modules
        super()._start(modules)

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            forkserver = "forkserver" in multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("forkserver" if forkserver else "spawn")
            if forkserver:  # workers forked from a server that imported the pipeline once
                context.set_forkserver_preload(list(self._modules))
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=context, initializer=_one_thread
            )
        return self._pool

    def map(
        self, fn: Callable[..., Any], arguments: Sequence[tuple[Any, ...]]
    ) -> Iterator[tuple[int, Any]]:
        if self.workers == 1 or len(arguments) <= 1:
            for index, args in enumerate(arguments):
                try:
                    outcome = fn(*args)
                except Exception as e:
                    outcome = e
                yield index, outcome
            return
        pool = self._get_pool()
        pending: dict[Future[Any], int] = {pool.submit(fn, *a): i for i, a in enumerate(arguments)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f]):
                    index = pending.pop(future)
                    error = future.exception()
                    yield index, error if error is not None else future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(_Runs):
    """Partitions on a Dask cluster: ``scheduler`` or a local cluster of ``jobs`` workers."""

    def __init__(self, scheduler: str | None = None, jobs: int | None = None) -> None:
        forkserver = not scheduler and _launch_forkserver()
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as e:  # pragma: no cover - the dask extra is missing
            raise RerankerError(
                "the dask engine needs dask[distributed]: pip install 'reranker[dask]'"
            ) from e
        self._cluster = None
        try:
            if scheduler:
                self._client = Client(scheduler, timeout="10s")
            else:
                workers = max(1, jobs or os.cpu_count() or 1)
                self._cluster = _local_cluster(LocalCluster, workers, forkserver=forkserver)
                self._client = Client(self._cluster)
        except (OSError, TimeoutError, ValueError) as e:
            if self._cluster is not None:
                self._cluster.close()
            raise RerankerError(f"cannot connect to the dask scheduler {scheduler!r}: {e}") from e
        self._client.register_plugin(_worker_plugin())
        info = self._client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))
        self.dashboard = (
            self._client.dashboard_link if "dashboard" in info.get("services", {}) else None
        )

    def _start(self, modules: tuple[str, ...]) -> None:
        """Every worker imports ``modules`` (``Client.run`` reaches each worker once, with no
        task to place)."""
        self._client.run(_import, modules)

    @property
    def client(self) -> Any:
        """The ``dask.distributed.Client``."""
        return self._client

    def map(
        self, fn: Callable[..., Any], arguments: Sequence[tuple[Any, ...]]
    ) -> Iterator[tuple[int, Any]]:
        from dask.distributed import as_completed

        name = getattr(fn, "__name__", "task")
        futures = {
            self._client.submit(
                fn, *a, key=f"reranker-{name}-{i}-{os.urandom(4).hex()}", pure=False
            ): i
            for i, a in enumerate(arguments)
        }
        try:
            for future in as_completed(list(futures)):
                index = futures[future]
                if future.status == "error":
                    yield index, future.exception()
                else:
                    yield index, future.result()
                future.release()
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


_LOCAL_CLUSTER = {
    # glibc's own memory thresholds (see _local_cluster)
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # no sampling of the running task's stack every 10 ms in the worker's event loop
    "distributed.worker.profile.enabled": False,
    # a queued task goes to a worker when it is free, as in a process pool (tasks the scheduler
    # places at once are still stolen by an idle worker)
    "distributed.scheduler.worker-saturation": 1.0,
    # monitors of the scheduler, nannies and workers at a pace that costs no CPU
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.tick.interval": "500ms",
}
"""Dask settings of the local cluster.

Each worker is one core: its event loop and the scheduler's (in the calling process) share the
two cores with the tasks. With Dask's defaults they took about 5% of each worker's CPU
(the profiler mostly, in the thread holding the interpreter lock the task needs) and 2 to 3 CPU
seconds of the calling process per 30 s of work, which one worker got for free from the
other core and two workers had to take from their tasks. The dashboard's profile page stays
empty; a cluster started apart (``--scheduler``) keeps its own settings.
"""


_WORKER_PRELOAD = (
    "distributed",
    "threadpoolctl",
    "pyarrow.parquet",
    "pyarrow.compute",
    "reranker.streaming",
    "reranker.dataset_output",
)
"""What the forkserver of local Dask workers imports before it forks them: Dask, and what the
partition tasks import (at the top or on first use)."""


def _launch_forkserver() -> bool:
    """Launch the forkserver local Dask workers are forked from (where there is one).

    It imports Dask and the pipeline while this process imports Dask and starts the scheduler,
    and each worker then starts in a fork instead of a new interpreter importing them again;
    a forked worker also ends without tearing its modules down. On two busy cores this took a
    local cluster's start from 5.6-7.1 s to 3.0-3.9 s and its close from 0.9-1.3 s to 0.1 s.
    Without effect when the forkserver already runs (a :class:`LocalExecutor` started it).
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(_WORKER_PRELOAD))
    forkserver.ensure_running()
    return True


def _local_cluster(cluster: Any, workers: int, *, forkserver: bool = False) -> Any:
    """A local cluster of ``workers`` single-threaded worker processes (forked from the
    forkserver with ``forkserver``), with glibc's own memory thresholds and the settings of
    :data:`_LOCAL_CLUSTER`.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_`` in their workers' environment, which turns
    off glibc's adaptive thresholds: every freed array of more than 128 kB then goes back to
    the system and the next one faults its pages in again. With partitions of a million rows
    that doubled a worker's system CPU time (a part evaluated in 17 CPU seconds instead of 11,
    the local engine's figure).
    """
    import dask

    method = {"distributed.worker.multiprocessing-method": "forkserver"} if forkserver else {}
    with dask.config.set({**_LOCAL_CLUSTER, **method}):
        return cluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: others may run a cluster
        )


def _worker_plugin() -> Any:
    from distributed.diagnostics.plugin import WorkerPlugin

    class OneThread(_OneThreadPlugin, WorkerPlugin):
        pass

    return OneThread()


def make_executor(engine: str, *, jobs: int | None = None, scheduler: str | None = None) -> Any:
    """The executor named ``engine`` (``"local"`` or ``"dask"``); use it as a context manager."""
    if scheduler and engine != "dask":
        raise DataError("--scheduler applies only to --engine dask")
    if jobs is not None and jobs < 1:
        raise DataError(f"--jobs must be >= 1, got {jobs}")
    if engine == "local":
        return LocalExecutor(jobs)
    if engine == "dask":
        return DaskExecutor(scheduler, jobs)
    raise DataError(f"--engine must be one of {', '.join(EXECUTORS)}, got {engine!r}")


def run_all(
    executor: Executor,
    fn: Callable[..., Any],
    arguments: Sequence[tuple[Any, ...]],
    *,
    phase: str,
    progress: Progress | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Run every call; raise the error of the lowest index that failed, after all finished.

    Results are returned in argument order (or handed to ``on_result`` as they arrive and not
    kept, so that their memory can be released). Reporting the lowest failing index makes the
    error the same whatever the engine and the order calls finish in.
    """
    results: list[Any] = [None] * len(arguments)
    failures: dict[int, BaseException] = {}
    if progress is not None:
        progress(phase, 0, len(arguments))
    for done, (index, outcome) in enumerate(executor.map(fn, arguments), start=1):
        if isinstance(outcome, BaseException):
            failures[index] = outcome
        elif on_result is not None:
            on_result(index, outcome)
        else:
            results[index] = outcome
        if progress is not None:
            progress(phase, done, len(arguments))
    if failures:
        raise failures[min(failures)]
    return results
