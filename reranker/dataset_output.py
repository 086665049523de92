"""Writing partitioned Parquet datasets, published atomically as a whole.

:class:`DatasetWriter` writes every part into a hidden temporary sibling of the output
directory, fsyncs the files and the directories, then renames the temporary directory into
place. A crash or an error leaves either the previous output (if there was one) or no output,
never a mix of old and new parts. An existing output is replaced only if it is a dataset this
writer published (it holds the marker file ``_reranker_dataset.json``), so a mistyped ``--out``
never deletes unrelated files.

:func:`layout_parts` splits a table into parts in one of three layouts: ``flat``
(``part-00000.parquet``, ...), ``hive`` (``domain=<D>/part-00000.parquet``, the ``domain``
column kept in the directory name only) or ``domain`` (one file per domain, ``<D>.parquet``).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from reranker._files import default_file_mode
from reranker.errors import DataError

__all__ = ["LAYOUTS", "MARKER", "DatasetWriter", "layout_parts", "write_parquet"]

LAYOUTS: tuple[str, ...] = ("flat", "hive", "domain")
MARKER = "_reranker_dataset.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_parquet(frame: pd.DataFrame, path: Path, *, sync: bool = True) -> None:
    """Write ``frame`` to ``path`` as Parquet (no index column), fsynced unless ``sync=False``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with open(path, "wb") as fh:
        pq.write_table(table, fh)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.chmod(path, default_file_mode())


def _is_ours(path: Path) -> bool:
    return (path / MARKER).is_file()


class DatasetWriter:
    """Write a dataset's parts, then publish the directory atomically.

    Parameters
    ----------
    out : path
        The output directory. It must not exist, or be a dataset published by this writer.
    description : dict, optional
        Stored in the marker file (the command and its inputs).

    Use as a context manager; leaving it with an exception discards everything written.
    """

    def __init__(self, out: str | os.PathLike[str], *, description: dict[str, Any] | None = None):
        self.out = Path(out)
        self.description = dict(description or {})
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{uuid.uuid4().hex[:12]}"
        self.written: list[str] = []
        check_dataset_output(self.out)

    def __enter__(self) -> DatasetWriter:
        self.tmp.mkdir(mode=0o777)
        return self

    def part_path(self, relative: str) -> Path:
        """Where part ``relative`` (``/``-separated, below the root) goes in the temporary tree."""
        pieces = [p for p in relative.split("/") if p not in ("", ".", "..")]
        if not pieces:
            raise DataError(f"{relative!r}: not a part path")
        return self.tmp.joinpath(*pieces)

    def write(self, relative: str, frame: pd.DataFrame) -> None:
        """Write one part (Parquet) at ``relative``."""
        write_parquet(frame, self.part_path(relative))
        self.written.append(relative)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            self._publish()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _publish(self) -> None:
        marker = {**self.description, "parts": sorted(self.written)}
        (self.tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        for directory in sorted({p.parent for p in self.tmp.rglob("*")}, key=str, reverse=True):
            _fsync_dir(directory)
        old = None
        if self.out.exists():
            check_dataset_output(self.out)
            old = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:12]}"
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        _fsync_dir(self.out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def check_dataset_output(out: Path) -> None:
    """Fail before any work if ``out`` cannot receive a dataset."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise DataError(f"{out}: directory {parent} does not exist")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not _is_ours(out):
        raise DataError(
            f"{out}: exists and is not a dataset written by reranker (no {MARKER}); "
            "choose a new directory"
        )


def _hive_value(value: str) -> str:
    return urllib.parse.quote(value, safe=" -_.")


def layout_parts(
    frame: pd.DataFrame, *, layout: str, parts: int, first: int = 0
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Split ``frame`` into ``(relative path, part)`` pairs in one of :data:`LAYOUTS`.

    ``flat`` cuts the rows into ``parts`` consecutive slices (so an utterance may straddle two
    parts); ``hive`` writes each slice's rows of domain D under ``domain=<D>/`` without the
    ``domain`` column; ``domain`` gives one part per domain (``parts`` is ignored). ``first``
    numbers the slices from there (writers called chunk by chunk).
    """
    if layout not in LAYOUTS:
        raise DataError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "domain":
        for d, rows in frame.groupby("domain", sort=True):
            yield f"{_hive_value(str(d))}.parquet", rows.reset_index(drop=True)
        return
    bounds = np.linspace(0, len(frame), max(1, parts) + 1).round().astype(int)
    for k in range(len(bounds) - 1):
        piece = frame.iloc[bounds[k] : bounds[k + 1]].reset_index(drop=True)
        name = f"part-{first + k:05d}.parquet"
        if layout == "flat":
            yield name, piece
            continue
        for d, rows in piece.groupby("domain", sort=True):
            yield (
                f"domain={_hive_value(str(d))}/{name}",
                rows.drop(columns="domain").reset_index(drop=True),
            )
