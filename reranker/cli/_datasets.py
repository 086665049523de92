"""Options and display shared by the commands that work on partitioned datasets."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from reranker.cli._common import err_console

EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="local (processes on this machine, streaming partitions) or dask. "
        "Default: in memory for one file, local for a dataset.",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="Dask scheduler address (default: start a local cluster)."),
]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs", "-j", help="Worker processes of the local engine or cluster (default: all cores)."
    ),
]
ScratchOpt = Annotated[
    str | None,
    typer.Option(
        "--scratch",
        help="Directory for the temporary regrouping files (default: the system temp "
        "directory); with --scheduler, storage every worker can reach.",
    ),
]


@contextlib.contextmanager
def partition_progress() -> Iterator[Any]:
    """A ``progress(phase, done, total)`` callback drawing one bar per phase on a terminal."""
    bars = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("partitions"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield report


@contextlib.contextmanager
def open_executor(engine: str, *, scheduler: str | None, jobs: int | None) -> Iterator[Any]:
    """The executor for ``--engine``; prints the Dask dashboard's address when there is one."""
    from reranker.executors import make_executor

    executor = make_executor(engine, jobs=jobs, scheduler=scheduler)
    try:
        if executor.dashboard:
            import importlib.util

            hint = (
                "" if importlib.util.find_spec("bokeh") else " (its pages need: pip install bokeh)"
            )
            err_console.print(f"dask dashboard: {executor.dashboard}{hint}", highlight=False)
        yield executor
    finally:
        executor.close()
