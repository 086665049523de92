"""Regrouping a partitioned dataset by utterance, through hash buckets on scratch storage.

Top-1 choice, ranks, the ``rank_in_domain`` feature and the dataset-wide validation rules need
all of an utterance's hypotheses together, but a dataset partitioned by domain or by time spreads
them over several parts. Regrouping takes two passes, each holding one partition in memory:

1. :func:`scatter_part` reads and validates one part and appends its rows, tagged with their
   part and row number, to ``n_buckets`` bucket files chosen by a hash of the utterance id;
2. :func:`gather_bucket` reads one bucket's files, restores dataset order and checks the rules
   spanning rows (duplicated hypotheses, references differing inside an utterance).

Every bucket then holds whole utterances in dataset order, so any whole-utterance computation on
a bucket gives what it gives on the full table. The scratch directory must be reachable by every
worker (a local directory for one machine, shared storage for a cluster).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker.errors import DataError
from reranker.executors import Executor, Progress, run_all
from reranker.partitioned import PartitionedDataset, PartsLocator, check_across_parts, read_part

__all__ = [
    "PART",
    "ROW",
    "PartSummary",
    "bucket_of",
    "check_bucket",
    "gather_bucket",
    "raise_first",
    "scatter_dataset",
    "scatter_part",
    "scratch_directory",
]

Problem = tuple[int, int, int, str]
"""A breach of a rule spanning rows, as :func:`reranker.partitioned.check_across_parts` gives."""

PART = "__part"
ROW = "__row"


@dataclass(frozen=True)
class PartSummary:
    """What scattering one part learned: its size, domains (with their row counts) and devices."""

    index: int
    n_rows: int
    domains: frozenset[str]
    devices: frozenset[str]
    has_references: bool
    domain_rows: tuple[tuple[str, int], ...] = ()


def bucket_of(utterance_ids: pd.Series, n_buckets: int) -> NDArray[np.int64]:
    """Bucket of each row: a stable 64-bit hash of the utterance id (as text) modulo ``n_buckets``."""
    ids = utterance_ids.astype(str).to_numpy(dtype=object)
    keys = np.asarray(pd.util.hash_array(ids, categorize=True), dtype=np.uint64)
    return (keys % np.uint64(n_buckets)).astype(np.int64)


def _bucket_dir(scratch: str, bucket: int) -> Path:
    return Path(scratch) / f"bucket-{bucket:05d}"


def scatter_part(
    dataset: PartitionedDataset,
    index: int,
    scratch: str,
    n_buckets: int,
    columns: Sequence[str] | None = None,
) -> PartSummary:
    """Validate part ``index`` and write its rows into the bucket files under ``scratch``.

    With ``columns``, only those of them the part has are written (enough to check the rules
    spanning rows without copying the whole dataset).
    """
    from reranker.dataset_output import write_parquet
    from reranker.hypotheses import has_references

    full = read_part(dataset, index)
    frame = full if columns is None else full[[c for c in columns if c in full.columns]].copy()
    frame[PART] = np.int64(index)
    frame[ROW] = np.arange(len(frame), dtype=np.int64)
    buckets = bucket_of(frame["utterance_id"], n_buckets)
    order = np.argsort(buckets, kind="stable")
    bounds = np.searchsorted(buckets[order], np.arange(n_buckets + 1))
    for b in range(n_buckets):
        rows = order[bounds[b] : bounds[b + 1]]
        if rows.size:
            path = _bucket_dir(scratch, b) / f"part-{index:06d}.parquet"
            write_parquet(frame.iloc[rows], path, sync=False)
    counts = full["domain"].value_counts(sort=False)
    return PartSummary(
        index,
        len(full),
        frozenset(counts.index.tolist()),
        frozenset(full["device"].unique().tolist()),
        has_references(full),
        tuple((str(d), int(c)) for d, c in counts.items()),
    )


def scatter_dataset(
    executor: Executor,
    dataset: PartitionedDataset,
    scratch: str,
    progress: Progress | None,
    *,
    columns: Sequence[str] | None = None,
) -> list[PartSummary]:
    """Scatter every part into as many buckets as there are parts; the parts' summaries.

    Parts must all have reference columns or none.
    """
    n_buckets = len(dataset.parts)
    arguments = [(dataset, i, scratch, n_buckets, columns) for i in range(n_buckets)]
    summaries: list[PartSummary] = run_all(
        executor, scatter_part, arguments, phase="reading parts", progress=progress
    )
    with_refs = [s.has_references for s in summaries]
    if any(with_refs) and not all(with_refs):
        bare = dataset.parts[with_refs.index(False)].path
        other = dataset.parts[with_refs.index(True)].path
        raise DataError(
            f"{bare}: no reference columns (ref_domain, ref_intent, ref_slots), which {other} has"
        )
    return summaries


def gather_bucket(
    dataset: PartitionedDataset, scratch: str, bucket: int
) -> tuple[pd.DataFrame, Problem | None]:
    """The rows of one bucket in dataset order, and the first breach of a rule spanning rows.

    The breach is ``None`` or :func:`reranker.partitioned.check_across_parts`'s tuple; the
    frame keeps the ``__part`` and ``__row`` columns.
    """
    directory = _bucket_dir(scratch, bucket)
    files = sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []
    if not files:
        return pd.DataFrame(), None
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(f) for f in files]
    try:  # concatenated as Arrow tables: one pandas copy of the bucket, not two
        frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # parts whose column types differ
        frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    del tables
    pa.default_memory_pool().release_unused()  # decoding buffers, else kept by the allocator
    part, row = frame[PART].to_numpy(), frame[ROW].to_numpy()
    in_order = np.all((np.diff(part) > 0) | ((np.diff(part) == 0) & (np.diff(row) > 0)))
    if not in_order:  # files are named and written in dataset order: seldom taken
        frame = frame.iloc[np.lexsort((row, part))].reset_index(drop=True)
    locator = PartsLocator(
        [p.path for p in dataset.parts], frame[PART].to_numpy(), frame[ROW].to_numpy()
    )
    return frame, check_across_parts(frame, locator)


def check_bucket(dataset: PartitionedDataset, scratch: str, bucket: int) -> Problem | None:
    """The first breach of a rule spanning rows in one bucket (runs on a worker)."""
    return gather_bucket(dataset, scratch, bucket)[1]


def raise_first(problems: Sequence[Problem | None]) -> None:
    """Raise the breach the in-memory path reports first: the least over the buckets."""
    found = [p for p in problems if p is not None]
    if found:
        raise DataError(min(found)[-1])


@contextlib.contextmanager
def scratch_directory(scratch: str | None) -> Iterator[str]:
    """A new directory under ``scratch`` (default: the system's), removed on leaving."""
    import shutil

    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    path = tempfile.mkdtemp(prefix="reranker-scratch-", dir=scratch)
    try:
        yield path
    finally:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
