"""Large realistic datasets on demand: :func:`reranker.synthetic.realistic_hypotheses`, partitioned.

:func:`write_synthetic_dataset` draws ``n_hypotheses`` rows chunk by chunk (memory stays at one
part's worth, whatever the size) and writes them as a partitioned Parquet dataset in one of the
layouts of :func:`reranker.dataset_output.layout_parts`:

- ``flat``: ``part-00000.parquet`` ... of equal row counts, cut wherever the count falls, so
  utterances straddle consecutive parts as in logs cut by time;
- ``hive``: the same parts split by domain under ``domain=<D>/`` (every multi-domain utterance
  straddles directories);
- ``domain``: one file per domain, ``<D>.parquet``, written row group by row group.

The dataset is published atomically (:class:`reranker.dataset_output.DatasetWriter`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from reranker.dataset_output import DatasetWriter, layout_parts
from reranker.errors import DataError
from reranker.synthetic import realistic_hypotheses

__all__ = ["synthetic_parts", "write_synthetic_dataset"]

_ROWS_PER_UTTERANCE = 6.0  # about what realistic_hypotheses draws; only sizes the chunks


def synthetic_parts(n_hypotheses: int, parts: int, *, seed: int = 0) -> Iterator[pd.DataFrame]:
    """``parts`` consecutive row slices of one stream of ``n_hypotheses`` realistic rows.

    Each chunk of utterances is drawn with its own seed and utterance ids prefixed by the chunk,
    so ids are unique across the dataset and the result depends only on the arguments.
    """
    if n_hypotheses < 1 or parts < 1 or parts > n_hypotheses:
        raise DataError(f"need 1 <= parts <= hypotheses, got {parts} parts of {n_hypotheses}")
    bounds = np.linspace(0, n_hypotheses, parts + 1).round().astype(np.int64)
    pending: list[pd.DataFrame] = []
    have, chunk = 0, 0
    for k in range(parts):
        need = int(bounds[k + 1] - bounds[k])
        while have < need:
            n_utt = max(1, int((need - have) / _ROWS_PER_UTTERANCE) + 8)
            frame = realistic_hypotheses(n_utt, seed=int(seed) * 1_000_003 + chunk)
            frame["utterance_id"] = f"c{chunk:05d}-" + frame["utterance_id"].astype(str)
            pending.append(frame)
            have += len(frame)
            chunk += 1
        stream = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
        yield stream.iloc[:need].reset_index(drop=True)
        rest = stream.iloc[need:].reset_index(drop=True)
        pending, have = ([rest] if len(rest) else []), len(rest)


def write_synthetic_dataset(
    out: str | os.PathLike[str],
    n_hypotheses: int,
    *,
    parts: int,
    layout: str = "flat",
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Write ``n_hypotheses`` realistic rows to ``out`` as a partitioned dataset.

    Returns ``{"rows", "files"}``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    description = {"command": "synth", "hypotheses": n_hypotheses, "parts": parts}
    writers: dict[str, Any] = {}
    rows, files = 0, set[str]()
    with DatasetWriter(out, description={**description, "layout": layout, "seed": seed}) as w:
        try:
            for k, frame in enumerate(synthetic_parts(n_hypotheses, parts, seed=seed)):
                rows += len(frame)
                for relative, piece in layout_parts(frame, layout=layout, parts=1, first=k):
                    files.add(relative)
                    if layout != "domain":
                        w.write(relative, piece)
                        continue
                    table = pa.Table.from_pandas(piece, preserve_index=False)
                    if relative not in writers:
                        path = w.part_path(relative)
                        writers[relative] = pq.ParquetWriter(str(path), table.schema)
                    writers[relative].write_table(table)
                if progress is not None:
                    progress("writing parts", k + 1, parts)
        finally:
            for writer in writers.values():
                writer.close()
        if layout == "domain":
            w.written.extend(sorted(files))
            for relative in files:
                with open(w.part_path(relative), "rb+") as fh:
                    os.fsync(fh.fileno())
    return {"rows": rows, "files": len(files)}
