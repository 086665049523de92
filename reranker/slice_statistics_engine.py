"""The one pass of the partitioned engine behind :mod:`reranker.slice_statistics`.

Parts are scattered into buckets of whole utterances (:mod:`reranker.regroup`); each bucket is
checked, its SemER computed once, then scored under every requested scoring and reduced to slice
sums and utterance rows. Sums are merged as buckets finish, so the driver holds one merged set
per scoring, never the data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from reranker._validation import require_references
from reranker.executors import make_executor, run_all
from reranker.partitioned import PartitionedDataset
from reranker.regroup import (
    PART,
    ROW,
    gather_bucket,
    raise_first,
    scatter_dataset,
    scratch_directory,
)
from reranker.slice_statistics import Progress, bucket_statistics, merge_buckets, write_entry
from reranker.utterance_index import (
    ROW_COLUMNS,
    index_part,
    write_index_part,
    write_orders,
)

__all__ = ["ROW_GROUP", "run_pass"]

ROW_GROUP = 2048
"""Rows per row group of the hypotheses files: one utterance's read decodes one group."""

UTTERANCE_COLUMNS = ROW_COLUMNS


def score_bucket(
    dataset: PartitionedDataset,
    scratch: str,
    bucket: int,
    documents: Mapping[str, Any],
    utterance_dirs: Mapping[str, str],
) -> tuple[tuple[int, int, int, str] | None, dict[str, Any]]:
    """Sums and utterance rows of one bucket under every scoring (runs on a worker)."""
    from reranker.scoring import score_with_documents
    from reranker.tables import score_table
    from reranker.utterances import utterance_table

    frame, problem = gather_bucket(dataset, scratch, bucket)
    if problem is not None or len(frame) == 0:
        return problem, {}
    r0 = score_table(frame, score_with_documents(frame, None).score)
    assert r0.semer is not None and r0.correct is not None
    errors, codes = (r0.semer, r0.correct), r0.codes
    out: dict[str, Any] = {}
    for key, docs in documents.items():
        scoring = score_with_documents(frame, docs)
        t = r0 if docs is None else score_table(frame, scoring.score, errors=errors, codes=codes)
        rows = utterance_table(t, r0=r0)[UTTERANCE_COLUMNS]
        # one utterance's hypotheses are read from the R0 entry only: written there alone
        hyps = frame if key == "r0" else None
        write_bucket_rows(rows, hyps, Path(utterance_dirs[key]), bucket)
        out[key] = (bucket_statistics(t), dict(scoring.source))
    return None, out


def _write(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    with path.open("wb") as handle:
        pq.write_table(table, handle, row_group_size=ROW_GROUP)
        handle.flush()
        os.fsync(handle.fileno())


def write_bucket_rows(
    rows: pd.DataFrame, hypotheses: pd.DataFrame | None, directory: Path, bucket: int
) -> None:
    """One bucket's utterance rows (an index part of :mod:`reranker.utterance_index`) and, when
    given, its hypotheses (Parquet in id order: one utterance is one row group's read)."""
    import pyarrow as pa

    rows = rows.sort_values("utterance_id", kind="stable").reset_index(drop=True)
    write_index_part(
        pa.Table.from_pandas(rows, preserve_index=False), index_part(directory, bucket)
    )
    if hypotheses is not None:
        hyps = hypotheses.drop(columns=[PART, ROW]).sort_values("utterance_id", kind="stable")
        _write(
            pa.Table.from_pandas(hyps, preserve_index=False),
            directory / f"_hypotheses-{bucket:05d}.parquet",
        )


def run_pass(
    dataset: PartitionedDataset,
    entries: Mapping[str, Path],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Compute and publish the cache entry of every scoring in ``entries`` (weights -> dir)."""
    from reranker.scoring import load_documents

    documents = {w: (None if w == "r0" else load_documents(w)) for w in entries}
    staging = {
        w: tempfile.mkdtemp(prefix=".utterances-", dir=_parent(d)) for w, d in entries.items()
    }
    merged: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, str]] = {w: {} for w in entries}
    problems: list[tuple[int, int, int, str] | None] = []

    def keep(_index: int, outcome: Any) -> None:
        problem, by_key = outcome
        problems.append(problem)
        for key, (stats, source) in by_key.items():
            merged[key] = stats if key not in merged else merge_buckets([merged[key], stats])
            sources[key].update(source)

    try:
        with scratch_directory(None) as scratch, make_executor("local", jobs=jobs) as executor:
            summaries = scatter_dataset(executor, dataset, scratch, progress)
            require_references(summaries[0].has_references, "calibration", source=dataset.source)
            n = len(dataset.parts)
            arguments = [(dataset, scratch, b, documents, staging) for b in range(n)]
            run_all(
                executor,
                score_bucket,
                arguments,
                phase="scoring",
                progress=progress,
                on_result=keep,
            )
        raise_first(problems)
        for key, directory in entries.items():
            write_orders(staging[key])
            write_entry(Path(directory), merged[key], sources[key], Path(staging[key]))
    finally:
        for path in staging.values():
            shutil.rmtree(path, ignore_errors=True)


def _parent(directory: Path) -> str:
    Path(directory).parent.mkdir(parents=True, exist_ok=True)
    return str(Path(directory).parent)
