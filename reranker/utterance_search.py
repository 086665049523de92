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
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker.errors import DataError

__all__ = ["UtteranceQuery", "search_utterances", "utterance_hypotheses"]


@dataclass(frozen=True)
class UtteranceQuery:
    """A search of the utterance list: the keyword arguments of
    :func:`reranker.utterances.filter_utterances` and :func:`search_utterances`."""

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
    fragments = list(data.get_fragments())
    found = []
    for k, fragment in enumerate(fragments):
        table = fragment.to_table(columns=list(dict.fromkeys([key, "row"])), filter=expression)
        found.append(table.append_column("fragment", pa.array(np.full(table.num_rows, k))))
    hits = pa.concat_tables(found) if found else pa.table({key: [], "row": [], "fragment": []})
    count = hits.num_rows
    order = "descending" if descending else "ascending"
    keys = [(key, order), ("fragment", "ascending"), ("row", "ascending")]
    if not count or limit <= 0:
        return data.schema.empty_table().drop_columns(["row"]).to_pandas(), count
    best = hits.take(pc.select_k_unstable(hits, k=min(limit, count), sort_keys=keys))
    rows = _read_rows(fragments, best.column("fragment").to_numpy(), best.column("row").to_numpy())
    rows = rows.sort_values([key], ascending=[not descending], kind="stable")
    return rows.drop(columns=["row"]).reset_index(drop=True), count


def _read_rows(fragments: list[Any], which: NDArray[np.int64], rows: NDArray[np.int64]) -> Any:
    """Rows ``rows[i]`` of files ``fragments[which[i]]``, in that order, taken from the
    memory-mapped Arrow copy of each file (nothing else is read or decoded)."""

    import pyarrow as pa

    pieces = []
    for k in np.unique(which):
        part = Path(fragments[k].path)
        arrow = part.with_name(part.name.replace("part-", "_rows-").replace(".parquet", ".arrow"))
        with pa.memory_map(str(arrow)) as source:
            table = pa.ipc.open_file(source).read_all()
            pieces.append(table.take(pa.array(rows[which == k])).to_pandas())
    position = {(int(k), int(r)): i for i, (k, r) in enumerate(zip(which, rows, strict=True))}
    frame = pd.concat(pieces, ignore_index=True)
    frame_which = np.concatenate([np.full(int((which == k).sum()), k) for k in np.unique(which)])
    order = [position[(int(k), int(r))] for k, r in zip(frame_which, frame["row"], strict=True)]
    return frame.iloc[np.argsort(order)].reset_index(drop=True)


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
