"""Helpers shared by the command modules: console, progress, output checks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from reranker.errors import DataError

err_console = Console(stderr=True)
out_console = Console()


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on stderr while long work runs (silent when stderr is not a terminal)."""
    if err_console.is_terminal:
        with err_console.status(message):
            yield
    else:
        yield


def check_output_path(path: Path) -> None:
    """Fail early, before any work, if ``path`` cannot receive an output file."""
    from reranker.hypotheses import SUFFIXES

    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"{path}: unknown output extension {path.suffix or '(none)'!r}; use .parquet, .csv or .jsonl"
        )
    if path.is_dir():
        raise DataError(f"{path}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise DataError(f"{path}: directory {parent} does not exist")
