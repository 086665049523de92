"""Utterance queries and reads of a large dataset that is never loaded whole.

A query of the utterance list (:class:`UtteranceQuery`) is answered by
:mod:`reranker.utterance_index`; one utterance's hypotheses are read from the bucket files the
statistics pass writes, with a filter on its id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reranker.errors import DataError

__all__ = ["UtteranceQuery", "utterance_hypotheses"]


@dataclass(frozen=True)
class UtteranceQuery:
    """A search of the utterance list: the keyword arguments of
    :func:`reranker.utterances.filter_utterances` and
    :meth:`reranker.utterance_index.UtteranceIndex.search`."""

    search: str = ""
    misranked_only: bool = False
    domains: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    semer_range: tuple[float, float] | None = None
    sort_by: str | None = None
    descending: bool = False
    limit: int = 500

    def kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def utterance_hypotheses(
    directory: str | os.PathLike[str], utterance_id: str, n_buckets: int
) -> pd.DataFrame:
    """The validated hypotheses of one utterance, from the bucket files beside its utterance rows
    (the bucket comes from the id's hash; row-group statistics leave one group to read)."""
    import pyarrow.parquet as pq

    from reranker.hypotheses import validate_hypotheses
    from reranker.regroup import bucket_of

    bucket = int(bucket_of(pd.Series([utterance_id]), n_buckets)[0])
    path = Path(directory) / f"_hypotheses-{bucket:05d}.parquet"
    try:
        frame = pq.read_table(path, filters=[("utterance_id", "=", utterance_id)]).to_pandas()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from e
    if frame.empty:
        raise DataError(f"no utterance {utterance_id!r} in this dataset")
    return validate_hypotheses(frame, source=str(path)).reset_index(drop=True)


def sample_rows(spec: str | os.PathLike[str], n: int = 200) -> pd.DataFrame:
    """The first ``n`` rows of a partitioned dataset's first part (for a preview)."""
    import pyarrow.parquet as pq

    from reranker.partitioned import open_dataset

    first = open_dataset(spec).parts[0].path
    reader = pq.ParquetFile(first)
    batch = next(reader.iter_batches(batch_size=n), None)
    return pd.DataFrame() if batch is None else batch.to_pandas()


def count_rows(spec: str | os.PathLike[str]) -> int:
    """Rows of a partitioned dataset, from the parts' footers (no data read)."""
    import pyarrow.parquet as pq

    from reranker.partitioned import open_dataset

    return int(np.sum([pq.ParquetFile(p.path).metadata.num_rows for p in open_dataset(spec).parts]))
