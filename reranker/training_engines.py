"""The training engines: how :func:`~reranker.training_tasks.fit_domain` runs over a run's domains.

``"serial"`` (in process), ``"local"`` (a process pool, default all cores) or ``"dask"`` (a Dask
cluster: ``scheduler="tcp://host:8786"`` or, with no scheduler, a local cluster); the last two
run on the partition executors of :mod:`reranker.executors`. Any object with an
:meth:`Engine.run` method can stand in for them. Each yields ``(task, outcome)`` in completion
order, the outcome being :func:`fit_domain`'s result or the exception it raised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from reranker.errors import DataError, RerankerError, TrainingError
from reranker.executors import DaskExecutor, LocalExecutor
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


class LocalEngine:
    """Train domains in a pool of worker processes (:class:`reranker.executors.LocalExecutor`).

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
        if not tasks:
            return
        with LocalExecutor(_workers(self.jobs, tasks)) as executor:
            yield from executor.run(tasks)


class DaskEngine:
    """Train domains on a Dask cluster (:class:`reranker.executors.DaskExecutor`).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Without one a local cluster of
        ``jobs`` single-threaded worker processes is started for the run and closed after it.
    jobs : int, optional
        Workers of the local cluster (default all cores, never more than there are domains).
    """

    def __init__(self, scheduler: str | None = None, jobs: int | None = None) -> None:
        self.scheduler = scheduler
        self.jobs = jobs

    def run(
        self, tasks: Sequence[DomainTask]
    ) -> Iterator[tuple[DomainTask, FitOutcome | BaseException]]:
        if not tasks:
            return
        try:
            executor = DaskExecutor(self.scheduler, _workers(self.jobs, tasks))
        except RerankerError as e:  # no dask installed, or no scheduler at that address
            raise TrainingError(str(e)) from e
        with executor:
            yield from executor.run(tasks)


def _workers(jobs: int | None, tasks: Sequence[DomainTask]) -> int:
    """Worker processes of a run: ``jobs`` (default all cores), at most one per domain."""
    return max(1, min(jobs or os.cpu_count() or 1, len(tasks)))


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
