"""Helpers shared by the command modules: console, progress, output checks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from reranker._files import os_error
from reranker.errors import DataError

err_console = Console(stderr=True)
out_console = Console()


def print_table(console: Console, table: Table) -> None:
    """Print a table whole: never cut a header or a value to ``domai…``.

    Rich fits tables to the console, which is 80 columns wide when the output is a pipe or a
    file. Here every header keeps its full width and values wrap rather than being cut; when
    the output is not a terminal the table is printed at its natural width instead.
    """
    for column in table.columns:
        column.min_width = max(column.min_width or 0, len(str(column.header)))
        column.overflow = "fold"
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update(width=100_000), table).maximum
    Console(file=console.file, width=max(console.width, natural)).print(table)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on stderr while long work runs (silent when stderr is not a terminal)."""
    if err_console.is_terminal:
        with err_console.status(message):
            yield
    else:
        yield


def check_output_path(path: Path, *, inputs: Iterable[Path | None] = ()) -> None:
    """Fail early, before any work, if ``path`` cannot receive an output table.

    ``inputs`` are the command's input files: the output may not be one of them.
    """
    from reranker.hypotheses import SUFFIXES

    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"{path}: unknown output extension {path.suffix or '(none)'!r}; use .parquet, .csv or .jsonl"
        )
    check_output_target(path, inputs=inputs)


def check_output_target(
    path: Path, *, inputs: Iterable[Path | None] = (), directory: bool = False
) -> None:
    """``path`` can be written (its folder exists) and is none of ``inputs``.

    For a ``directory`` output (replaced as a whole), no input may lie inside it either.
    """
    parent = path.parent if str(path.parent) else Path(".")
    try:
        if not directory and path.is_dir():
            raise DataError(f"{path}: is a directory")
        if directory and path.exists() and not path.is_dir():
            raise DataError(f"{path}: exists and is not a directory")
        if not parent.is_dir():
            raise DataError(f"{path}: directory {parent} does not exist")
    except OSError as e:
        raise DataError(os_error(path, e, doing="cannot write")) from e
    refuse_input_as_output(path, inputs, directory=directory)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def refuse_input_as_output(
    out: Path, inputs: Iterable[Path | None], *, directory: bool = False
) -> None:
    """Refuse an output path that is (or, for a ``directory`` output, contains) an input.

    Paths are compared after resolving symlinks and ``..``, and by device and inode, so a hard
    link or a symlink to an input is caught too.
    """
    target = _resolved(out)
    for source in inputs:
        if source is None:
            continue
        inside = directory and _resolved(source).is_relative_to(target)
        if inside or _resolved(source) == target or _same_file(out, source):
            raise DataError(
                f"{out}: is {'where the input ' if inside else 'the input '}{source}"
                f"{' lives' if inside else ''}; writing it would destroy that input "
                "(choose another --out)"
            )
