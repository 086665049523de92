"""Searching the utterance rows of a large dataset by pushing the filters down to Parquet.

The rows are those :mod:`reranker.slice_statistics` writes (one per utterance, under one
scoring). A search reads only the columns its filters and its sort need, with the filters
handed to ``pyarrow.dataset`` (row groups whose statistics exclude a match are skipped), keeps
the best ``limit`` rows, and only then reads the displayed columns of those rows. One utterance's
hypotheses are read from the dataset itself with a filter on its id.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from reranker.errors import DataError

__all__ = ["search_utterances", "utterance_hypotheses"]


def _dataset(directory: str | os.PathLike[str]) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(os.fspath(directory), format="parquet")


def _filter(
    search: str,
    misranked_only: bool,
    domains: Sequence[str],
    devices: Sequence[str],
    semer_range: tuple[float, float] | None,
) -> Any:
    import pyarrow.compute as pc

    terms = []
    if search.strip():
        needle = search.strip()
        terms.append(
            pc.match_substring(pc.field("text"), needle, ignore_case=True)
            | pc.match_substring(pc.field("utterance_id"), needle, ignore_case=True)
        )
    if misranked_only:
        terms.append(pc.field("misranked"))
    if domains:
        terms.append(pc.field("reference_domain").isin(list(domains)))
    if devices:
        terms.append(pc.field("device").isin(list(devices)))
    if semer_range is not None:
        low, high = semer_range
        terms.append(pc.field("top_semer") >= low)
        if math.isfinite(high):
            terms.append(pc.field("top_semer") <= high)
    if not terms:
        return None
    expression = terms[0]
    for term in terms[1:]:
        expression = expression & term
    return expression


def search_utterances(
    directory: str | os.PathLike[str],
    *,
    search: str = "",
    misranked_only: bool = False,
    domains: Sequence[str] = (),
    devices: Sequence[str] = (),
    semer_range: tuple[float, float] | None = None,
    sort_by: str | None = None,
    descending: bool = False,
    limit: int = 500,
) -> tuple[pd.DataFrame, int]:
    """The first ``limit`` matching utterance rows in sort order, and the number of matches.

    Same filters and result as :func:`reranker.utterances.filter_utterances`, ties broken by
    utterance id.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    data = _dataset(directory)
    expression = _filter(search, misranked_only, domains, devices, semer_range)
    key = sort_by or "utterance_id"
    if key not in data.schema.names:
        raise DataError(f"cannot sort by {key!r}")
    columns = list(dict.fromkeys([key, "utterance_id"]))
    found = data.to_table(columns=columns, filter=expression)
    count = found.num_rows
    order = "descending" if descending else "ascending"
    keys = [(key, order)] + ([("utterance_id", "ascending")] if key != "utterance_id" else [])
    best = pc.select_k_unstable(found, k=min(limit, count), sort_keys=keys) if count else []
    ids = found.column("utterance_id").take(best) if count else pa.array([], pa.string())
    if not len(ids):
        return data.schema.empty_table().to_pandas(), count
    rows = data.to_table(filter=pc.field("utterance_id").isin(ids)).to_pandas()
    rows = rows.sort_values(
        [key, "utterance_id"] if key != "utterance_id" else [key],
        ascending=[not descending, True] if key != "utterance_id" else [not descending],
        kind="stable",
    )
    return rows.reset_index(drop=True), count


def utterance_hypotheses(spec: str | os.PathLike[str], utterance_id: str) -> pd.DataFrame:
    """The validated hypotheses of one utterance of a partitioned dataset (a filtered read)."""
    import pyarrow.compute as pc

    from reranker.hypotheses import validate_hypotheses
    from reranker.partitioned import open_dataset

    dataset = open_dataset(spec)
    data = _dataset_of_parts([p.path for p in dataset.parts])
    frame = data.to_table(filter=pc.field("utterance_id") == utterance_id).to_pandas()
    if frame.empty:
        raise DataError(f"{spec}: no utterance {utterance_id!r}")
    frame = validate_hypotheses(frame, source=os.fspath(spec))
    return frame.reset_index(drop=True)


def _dataset_of_parts(paths: list[str]) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(paths, format="parquet")


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
