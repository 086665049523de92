"""Partitioned hypothesis datasets: many Parquet files read as one hypothesis table.

A dataset is named by a directory, a glob (``logs/2024-*/part-*.parquet``) or an fsspec URL
(``s3://bucket/logs/``, needs ``fsspec`` and the store's driver). Every layout works: flat parts
(``part-0.parquet``, ``part-1.parquet``), hive partitions (``domain=Music/part-0.parquet``,
``date=2024-05-01/...``: the ``key=value`` directories become columns when the files lack them),
or one file per domain. Files whose name starts with ``.`` or ``_`` (``_SUCCESS``,
``_metadata``) are ignored; parts are taken in natural path order (``part-2`` before
``part-10``), which defines the row order of the dataset.

An utterance's hypotheses may be spread over several parts. Each part is validated with the
rules of a single table (:func:`reranker.hypotheses.validate_hypotheses`) and the rules that
span rows (duplicated hypotheses, references differing inside an utterance) are checked over the
whole dataset; every message names the part's file and its row.
"""

from __future__ import annotations

import glob
import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker._files import read_file_bytes
from reranker.errors import DataError
from reranker.hypotheses import (
    duplicate_problem,
    reference_problem,
    validate_hypotheses,
)

__all__ = [
    "Part",
    "PartitionedDataset",
    "PartsLocator",
    "check_across_parts",
    "is_dataset_path",
    "open_dataset",
    "read_dataset",
    "read_part",
    "read_rows",
]

PARQUET_SUFFIXES = (".parquet", ".pq")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Part:
    """One Parquet file of a dataset.

    Attributes
    ----------
    path : str
        Full path or URL of the file.
    relative : str
        Its path below the dataset root, with ``/`` separators (output datasets mirror it).
    partition : tuple of (key, value)
        Hive partition values of its directories (``domain=Music`` gives ``("domain", "Music")``).
    """

    path: str
    relative: str
    partition: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PartitionedDataset:
    """The parts of a dataset, in dataset order.

    Attributes
    ----------
    source : str
        What the user named (directory, glob or URL).
    root : str
        The directory the parts' ``relative`` paths start from.
    parts : tuple of Part
    storage_options : dict
        Passed to fsspec for URLs.
    """

    source: str
    root: str
    parts: tuple[Part, ...]
    storage_options: tuple[tuple[str, Any], ...] = ()

    @property
    def is_remote(self) -> bool:
        """Whether the parts live behind an fsspec URL rather than on a local path."""
        return _is_url(self.root)


def _is_url(spec: str) -> bool:
    scheme = urllib.parse.urlsplit(spec).scheme
    return len(scheme) > 1 and "://" in spec and scheme != "file"


def is_dataset_path(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` names a dataset (directory, glob or URL) rather than one local file."""
    text = os.fspath(spec)
    if _is_url(text):
        return True
    if text.startswith("file://"):
        text = text[len("file://") :]
    return Path(text).is_dir() or (_GLOB_CHARS.search(text) is not None and not Path(text).exists())


def _natural_key(relative: str) -> list[tuple[int, int | str]]:
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", relative) if t]


def _hidden(relative: str) -> bool:
    return any(piece.startswith((".", "_")) for piece in relative.split("/"))


def _partition_of(relative: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for piece in relative.split("/")[:-1]:
        if "=" in piece:
            key, _, value = piece.partition("=")
            if key:
                pairs.append((urllib.parse.unquote(key), urllib.parse.unquote(value)))
    return tuple(pairs)


def _glob_root(pattern: str) -> str:
    pieces = pattern.split("/")
    fixed = []
    for piece in pieces[:-1]:
        if _GLOB_CHARS.search(piece):
            break
        fixed.append(piece)
    return "/".join(fixed) or ("/" if pattern.startswith("/") else ".")


def _url_files(spec: str, storage_options: dict[str, Any]) -> tuple[str, list[str]]:
    try:
        import fsspec
    except ImportError as e:  # pragma: no cover - fsspec comes with the dask extra
        raise DataError(f"{spec}: reading URLs needs fsspec (pip install 'reranker[dask]')") from e
    try:
        fs, path = fsspec.core.url_to_fs(spec, **storage_options)
    except (ImportError, ValueError) as e:
        raise DataError(f"{spec}: cannot open this URL ({e})") from e
    protocol = spec.split("://", 1)[0]
    try:
        if _GLOB_CHARS.search(path):
            root, found = _glob_root(path), list(fs.glob(path))
        elif fs.isdir(path):
            root, found = path, list(fs.find(path))
        else:
            root, found = path.rsplit("/", 1)[0], [path] if fs.exists(path) else []
    except OSError as e:
        raise DataError(f"{spec}: cannot list ({e})") from e
    return f"{protocol}://{root.rstrip('/')}", [f"{protocol}://{f}" for f in found]


def _local_files(spec: str) -> tuple[str, list[str]]:
    text = spec[len("file://") :] if spec.startswith("file://") else spec
    path = Path(text)
    if path.is_dir():
        return str(path), [str(p) for p in path.rglob("*") if p.is_file()]
    if _GLOB_CHARS.search(text):
        return _glob_root(text), [p for p in glob.glob(text, recursive=True) if Path(p).is_file()]
    if path.is_file():
        return str(path.parent), [str(path)]
    raise DataError(f"{spec}: no such file or directory")


def open_dataset(
    spec: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> PartitionedDataset:
    """Find the Parquet parts of a dataset.

    Parameters
    ----------
    spec : str or path-like
        A directory, a glob, a single Parquet file, or an fsspec URL of any of these.
    storage_options : dict, optional
        fsspec options for URLs (credentials, endpoint).

    Raises
    ------
    DataError
        If nothing matches, or the matches hold no Parquet file.
    """
    text = os.fspath(spec)
    options = dict(storage_options or {})
    root, found = _url_files(text, options) if _is_url(text) else _local_files(text)
    root = root.rstrip("/") or "/"
    parts = []
    for f in found:
        relative = os.path.relpath(f, root) if not _is_url(root) else f[len(root) + 1 :]
        relative = relative.replace(os.sep, "/")
        if _hidden(relative) or not relative.lower().endswith(PARQUET_SUFFIXES):
            continue
        parts.append(Part(f, relative, _partition_of(relative)))
    if not parts:
        others = [f for f in found if not _hidden(f)]
        hint = f" (found {len(others)} other file(s), e.g. {others[0]})" if others else ""
        what = "directory" if not _is_url(text) and Path(text).is_dir() else "dataset"
        raise DataError(f"{text}: no Parquet files (.parquet) in the {what}{hint}")
    parts.sort(key=lambda p: _natural_key(p.relative))
    return PartitionedDataset(text, root, tuple(parts), tuple(sorted(options.items())))


def _read_bytes(dataset: PartitionedDataset, part: Part) -> bytes:
    try:
        if dataset.is_remote:
            import fsspec

            with fsspec.open(part.path, "rb", **dict(dataset.storage_options)) as fh:
                return bytes(fh.read())
        return read_file_bytes(part.path, what="Parquet part")
    except OSError as e:
        raise DataError(f"{part.path}: cannot read ({e})") from e


def read_part_raw(
    dataset: PartitionedDataset, index: int, *, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The raw columns of part ``index`` (no validation), with its hive partition columns.

    A partition key the file lacks becomes a column holding the directory's value; a file
    holding the key's column must agree with its directory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = dataset.parts[index]
    data = _read_bytes(dataset, part)
    if not data:
        raise DataError(f"{part.path}: file is empty")
    try:
        reader = pq.ParquetFile(pa.BufferReader(data))
        present = set(reader.schema_arrow.names)
        wanted = None if columns is None else [c for c in columns if c in present]
        frame = reader.read(columns=wanted).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(
            f"{part.path}: not a readable Parquet file ({' '.join(str(e).split())})"
        ) from e
    return _with_partition(frame, part, None if columns is None else set(columns))


def _with_partition(
    frame: pd.DataFrame,
    part: Part,
    columns: set[str] | None,
    rows: NDArray[np.int64] | None = None,
) -> pd.DataFrame:
    """Add the hive partition columns a file lacks; check those it holds against its path."""
    for key, value in part.partition:
        if columns is not None and key not in columns:
            continue
        if key not in frame.columns:
            frame[key] = value
            continue
        as_text = frame[key].astype(str).str.strip().to_numpy()
        differs = as_text != value
        if differs.any():
            k = int(np.flatnonzero(differs)[0])
            row = k if rows is None else int(rows[k])
            raise DataError(
                f"{part.path}: row {row + 1}, column {key!r}: {frame[key].iloc[k]!r} differs "
                f"from the partition value {value!r} of its directory"
            )
    return frame


def _parquet_file(dataset: PartitionedDataset, part: Part) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if dataset.is_remote:
            import fsspec

            handle = fsspec.open(part.path, "rb", **dict(dataset.storage_options)).open()
            return pq.ParquetFile(handle)
        return pq.ParquetFile(part.path, memory_map=True)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(
            f"{part.path}: not a readable Parquet file ({' '.join(str(e).split())})"
        ) from e


def _text(column: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.utf8_trim_whitespace(pc.cast(column, pa.string()))


def _stats_exclude(row_group: Any, position: int, value: str) -> bool:
    """Whether a row group's min/max statistics prove that no row's stripped text is ``value``.

    A row equal to ``value`` after stripping white space sorts inside ``[min, max]`` unless it
    has leading white space (then the minimum starts below ``"!"``) or trailing white space
    (then the minimum starts with ``value``).
    """
    stats = row_group.column(position).statistics
    if stats is None or not stats.has_min_max:
        return False
    low, high = stats.min, stats.max
    if not isinstance(low, str) or not isinstance(high, str) or not low or low[0] <= " ":
        return False
    return (value < low and not low.startswith(value)) or value > high


def read_rows(
    dataset: PartitionedDataset,
    index: int,
    *,
    domain: str,
    utterances: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, NDArray[np.int64]]:
    """The validated rows of part ``index`` of one domain, or of its competitors.

    With ``utterances=None``: the rows whose ``domain`` is ``domain``. Otherwise: the rows of
    other domains whose ``utterance_id`` is in ``utterances``. The filter is pushed down: a hive
    ``domain=`` directory or the row groups' min/max statistics skip data without reading it,
    and only the filter's columns are read from the remaining row groups before the matching
    rows. Returns the rows and their 0-based row numbers in the part.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    part = dataset.parts[index]
    hive = dict(part.partition).get("domain")
    if hive is not None and (hive != domain) == (utterances is None):
        return pd.DataFrame(), np.zeros(0, dtype=np.int64)
    reader = _parquet_file(dataset, part)
    names = reader.schema_arrow.names
    wanted = pa.array(sorted(set(utterances)), type=pa.string()) if utterances is not None else None
    tables, rows, offset = [], [], 0
    for g in range(reader.num_row_groups):
        meta = reader.metadata.row_group(g)
        n = meta.num_rows
        mask = None
        if hive is None and "domain" in names:
            if utterances is None and _stats_exclude(meta, names.index("domain"), domain):
                offset += n
                continue
            column = reader.read_row_group(g, columns=["domain"]).column(0)
            same = pc.equal(_text(column), domain)
            mask = same if utterances is None else pc.invert(same)
        if wanted is not None:
            ids = reader.read_row_group(g, columns=["utterance_id"]).column(0)
            inside = pc.is_in(_text(ids), value_set=wanted)
            mask = inside if mask is None else pc.and_(mask, inside)
        if mask is None:
            chosen = np.arange(n)
        else:
            chosen = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
        if chosen.size:
            tables.append(reader.read_row_group(g).take(pa.array(chosen)))
            rows.append(chosen + offset)
        offset += n
    if not tables:
        return pd.DataFrame(), np.zeros(0, dtype=np.int64)
    frame = pa.concat_tables(tables).to_pandas()
    positions = np.concatenate(rows).astype(np.int64)
    frame = _with_partition(frame, part, None, positions)
    return validate_hypotheses(frame, source=part.path), positions


def read_part(dataset: PartitionedDataset, index: int) -> pd.DataFrame:
    """Part ``index`` read and validated as one hypothesis table (errors name its file and row)."""
    frame = read_part_raw(dataset, index)
    return validate_hypotheses(frame, source=dataset.parts[index].path)


class PartsLocator:
    """Names rows of a table gathered from several parts: ``file: row N``.

    Parameters
    ----------
    paths : sequence of str
        File of each part.
    part, row : arrays of shape (n,)
        For every row of the gathered table, its part index and 0-based row in that part.
    """

    def __init__(
        self, paths: Sequence[str], part: NDArray[np.int64], row: NDArray[np.int64]
    ) -> None:
        self.paths = list(paths)
        self.part = np.asarray(part, dtype=np.int64)
        self.rows = np.asarray(row, dtype=np.int64)

    def at(self, row: int, column: str | None = None) -> str:
        where = f"{self.paths[self.part[row]]}: row {self.rows[row] + 1}"
        return where if column is None else f"{where}, column {column!r}"

    def row(self, row: int) -> str:
        return f"row {self.rows[row] + 1} of {self.paths[self.part[row]]}"


def check_across_parts(
    frame: pd.DataFrame, locator: PartsLocator
) -> tuple[int, int, int, str] | None:
    """The first breach of a rule spanning rows, in a table gathered in dataset order.

    Returns ``(rule, column, row, message)``, ordered as the checks of a single table run:
    duplicated hypotheses first, then references column by column, each at its first row; or
    ``None``. Comparing these tuples picks the same error whichever rows were gathered together.
    """
    dup = duplicate_problem(frame, locator)
    if dup is not None:
        return 0, 0, _global_row(locator, dup[0]), dup[1]
    ref = reference_problem(frame, locator)
    if ref is not None:
        return 1, ref[0], _global_row(locator, ref[1]), ref[2]
    return None


def _global_row(locator: PartsLocator, row: int) -> int:
    # rank of (part, row) in dataset order; parts hold far fewer than 2**40 rows
    return int(locator.part[row]) << 40 | int(locator.rows[row])


def read_dataset(spec: str | os.PathLike[str] | PartitionedDataset) -> pd.DataFrame:
    """Read and validate a whole dataset into memory, parts concatenated in dataset order.

    Returns the same table :func:`reranker.read_hypotheses` returns for one file holding every
    part's rows; errors name the part's file and row.
    """
    dataset = spec if isinstance(spec, PartitionedDataset) else open_dataset(spec)
    frames = [read_part(dataset, i) for i in range(len(dataset.parts))]
    sizes = np.array([len(f) for f in frames], dtype=np.int64)
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(frames) > 1:
        part = np.repeat(np.arange(len(frames), dtype=np.int64), sizes)
        row = np.arange(len(table), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        problem = check_across_parts(
            table, PartsLocator([p.path for p in dataset.parts], part, row)
        )
        if problem is not None:
            raise DataError(problem[-1])
    return table
