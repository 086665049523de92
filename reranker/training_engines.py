"""The executors that run :func:`~reranker.training_tasks.fit_domain` over the domains of a run.

``"serial"`` (in process), ``"local"`` (a process pool, default all cores) or ``"dask"`` (a Dask
cluster: ``scheduler="tcp://host:8786"`` or, with no scheduler, a local cluster). Any object with
an :meth:`Engine.run` method can stand in for them. Each yields ``(task, outcome)`` in completion
order, the outcome being :func:`fit_domain`'s result or the exception it raised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

from reranker.errors import DataError, TrainingError
from reranker.training_tasks import DomainTask, FitOutcome, fit_domain

__all__ = ["ENGINES", "DaskEngine", "Engine", "LocalEngine", "SerialEngine", "make_engine"]

ENGINES: tuple[str, ...] = ("local", "serial", "dask")


class Engine(Protocol):
    """Runs :func:`fit_domain` over tasks, yielding each task's outcome as it completes."""

    def run(
        self, tasks: Sequence[DomainTask]
    ) -> Iterator[tuple[DomainTask, FitOutcome | BaseException]]:
        """Yield ``(task, result or exception)`` in completion order."""
        ...


class SerialEngine:
    """Train domains one after another in the calling process."""

    def run(
        self, tasks: Sequence[DomainTask]
    ) -> Iterator[tuple[DomainTask, FitOutcome | BaseException]]:
        for task in tasks:
            try:
                outcome: Any = fit_domain(task)
            except Exception as e:
                outcome = e
            yield task, outcome


def _single_threaded_worker() -> None:
    """Keep each worker's BLAS on one thread: the pool already uses every core."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class LocalEngine:
    """Train domains in a pool of worker processes.

    Workers start from a ``forkserver`` (``spawn`` where that does not exist), never by forking
    the caller, so training is safe from threaded callers such as the dashboard.

    Parameters
    ----------
    jobs : int, optional
        Worker processes; default all cores, never more than there are domains.
    """

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs

    def run(
        self, tasks: Sequence[DomainTask]
    ) -> Iterator[tuple[DomainTask, FitOutcome | BaseException]]:
        import multiprocessing.context

        if not tasks:
            return
        workers = max(1, min(self.jobs or os.cpu_count() or 1, len(tasks)))
        if workers == 1:
            yield from SerialEngine().run(tasks)
            return
        context: multiprocessing.context.BaseContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            # workers fork from a clean server that has imported the package once
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["reranker.training_tasks"])
        else:  # pragma: no cover
            context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_single_threaded_worker
        ) as pool:
            pending: dict[Future[Any], DomainTask] = {pool.submit(fit_domain, t): t for t in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f].domain):
                    task = pending.pop(future)
                    error = future.exception()
                    yield task, (error if error is not None else future.result())


class DaskEngine:
    """Train domains on a Dask cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Without one a local cluster of
        ``jobs`` single-threaded worker processes is started for the run and closed after it.
    jobs : int, optional
        Workers of the local cluster (default all cores).
    """

    def __init__(self, scheduler: str | None = None, jobs: int | None = None) -> None:
        self.scheduler = scheduler
        self.jobs = jobs

    def run(
        self, tasks: Sequence[DomainTask]
    ) -> Iterator[tuple[DomainTask, FitOutcome | BaseException]]:
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError as e:  # pragma: no cover
            raise TrainingError(
                "the dask engine needs dask[distributed]: pip install 'reranker[dask]'"
            ) from e
        if not tasks:
            return
        cluster = None
        try:
            if self.scheduler:
                client = Client(self.scheduler, timeout="10s")
            else:
                cluster = LocalCluster(
                    n_workers=max(1, min(self.jobs or os.cpu_count() or 1, len(tasks))),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                client = Client(cluster)
        except (OSError, TimeoutError, ValueError) as e:
            if cluster is not None:
                cluster.close()
            raise TrainingError(
                f"cannot connect to the dask scheduler {self.scheduler!r}: {e}"
            ) from e
        try:
            futures = {
                client.submit(fit_domain, t, key=f"reranker-train-{t.domain}-{i}", pure=False): t
                for i, t in enumerate(tasks)
            }
            for future in as_completed(list(futures)):
                task = futures[future]
                if future.status == "error":
                    yield task, future.exception()
                else:
                    yield task, future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def make_engine(engine: str, *, jobs: int | None = None, scheduler: str | None = None) -> Engine:
    """The executor named ``engine`` (``"local"``, ``"serial"`` or ``"dask"``)."""
    if scheduler and engine != "dask":
        raise DataError("--scheduler applies only to the dask engine")
    if engine == "local":
        return LocalEngine(jobs)
    if engine == "serial":
        return SerialEngine()
    if engine == "dask":
        return DaskEngine(scheduler, jobs)
    raise DataError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
