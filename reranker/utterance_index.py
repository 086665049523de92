"""A search index over the utterance rows of a large dataset: every query in milliseconds.

The rows are those :mod:`reranker.slice_statistics` computes (one per utterance, under one
scoring, one part per bucket of utterances). The index of a directory is

- ``_index-NNNNN.arrow``, one per part: its rows as uncompressed Arrow (memory-mapped: a page of
  rows is read without decoding the rest), with the text and the id lower-cased once
  (``search_text``, ``search_id``, stored only where lower-casing changes something) for
  case-insensitive substring search, and the codes of the filtered string columns; the
  statistics pass writes them (:func:`build_index` makes them from Parquet parts
  ``part-NNNNN.parquet`` of utterance rows);
- ``_order.npy``: for the utterance id and every column of :data:`SORTABLE`, ascending and
  descending, the permutation of the rows in that order (ties in utterance id order), written
  last.

A query (:meth:`UtteranceIndex.search`) is then a boolean mask over cached columns, the first
``limit`` matches taken along a stored permutation, and only those rows materialised. It returns
what :func:`reranker.utterances.filter_utterances` returns for the same rows sorted by utterance
id.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker.errors import DataError

__all__ = [
    "ORDER",
    "SORTABLE",
    "UtteranceIndex",
    "build_index",
    "ensure_index",
    "open_index",
    "write_index_part",
    "write_orders",
]

ORDER = "_order.npy"
SORTABLE = ("top_semer", "top_score", "correct_rank", "n_hypotheses")
"""Columns whose sort orders are stored (any other column is sorted at query time)."""
ROW_COLUMNS = [
    "utterance_id", "text", "device", "reference_domain", "reference", "top_domain", "top_intent",
    "top_slots", "top_score", "top_semer", "top_correct", "has_correct", "misranked",
    "correct_rank", "n_hypotheses", "r0_top_domain", "r0_top_correct",
]  # fmt: skip
"""The columns of an utterance row (:func:`reranker.utterances.utterance_table`)."""
SEARCHED = {"text": "search_text", "utterance_id": "search_id"}
STRINGS = "_strings"
CODED = ("device", "reference_domain")
RECENT = 16
"""Text searches whose matches are kept (a mask of one byte per utterance each)."""


def _lower(column: Any) -> Any:
    """Lower-cased strings, as pandas lower-cases its (Arrow-backed) strings for the in-memory
    search: code point by code point, so "İ" becomes "i" (Python's ``str.lower`` would give
    "i̇")."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.utf8_lower(column.cast(pa.large_string()))


def _with_search_columns(table: Any) -> Any:
    """The rows (strings as large strings), the lower-cased text and id where they differ from
    the text and id themselves (NLU logs are often lower-case already), and each part's codes of
    the filtered string columns."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {n: table.column(n) for n in ROW_COLUMNS}
    for name in ("utterance_id", "text"):
        columns[name] = columns[name].cast(pa.large_string())
    for source, target in SEARCHED.items():
        lower = _lower(columns[source])
        if pc.all(pc.equal(lower, columns[source])).as_py() is not True:
            columns[target] = lower
    for name in CODED:
        columns[f"_code_{name}"] = pc.dictionary_encode(columns[name])
    columns[STRINGS] = _string_blobs(pa.table({n: columns[n] for n in ROW_COLUMNS}))
    return pa.table(columns)


def _string_blobs(rows: Any) -> Any:
    """Every row's strings as one JSON object keyed by column position: a page of results then
    reads two places of the file per row, not two per string column."""
    import pyarrow as pa

    names = [n for n in ROW_COLUMNS if pa.types.is_string(rows.schema.field(n).type)]
    names += [n for n in ROW_COLUMNS if pa.types.is_large_string(rows.schema.field(n).type)]
    frame = rows.select(names).to_pandas()
    frame.columns = [str(ROW_COLUMNS.index(n)) for n in names]
    # one line per row: JSON escapes every line break inside a string
    lines = frame.to_json(orient="records", lines=True, force_ascii=False).split("\n")
    return pa.array(lines[: len(frame)], pa.large_string())


def _orders(ids: Any, keys: dict[str, NDArray[Any]]) -> NDArray[np.int32]:
    """Row permutations: ids ascending, then every key ascending and descending (NaN last,
    ties in id order), as pandas' stable ``sort_values`` orders rows already sorted by id."""
    import pyarrow.compute as pc

    by_id = pc.sort_indices(ids).to_numpy().astype(np.int64)
    out = [by_id]
    for name in SORTABLE:
        values = keys[name][by_id]
        if values.dtype.kind == "b":
            values = values.astype(np.int8)
        out.append(by_id[np.argsort(values, kind="stable")])
        out.append(by_id[np.argsort(-values, kind="stable")])
    return np.stack(out).astype(np.int32)


def index_part(directory: Path, number: int) -> Path:
    """The index file of part ``number`` of a directory's utterance rows."""
    return directory / f"_index-{number:05d}.arrow"


def _parquet_part_number(part: Path) -> int:
    return int(part.stem.split("-")[-1])


def write_index_part(table: Any, path: Path) -> None:
    """One part's rows with their search columns as uncompressed Arrow (written under a
    temporary name, then renamed)."""
    import pyarrow as pa

    table = _with_search_columns(table).combine_chunks()  # one record batch per part
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as handle:
            with pa.ipc.new_file(handle, table.schema) as writer:
                writer.write_table(table)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _index_tables(root: Path) -> tuple[list[Any], list[Any], list[Path]]:
    """The index table of every part, in part order, and the memory maps they are read from."""
    import pyarrow as pa

    parts = sorted(root.glob("_index-*.arrow"))
    if not parts:
        raise DataError(f"{root}: no utterance rows to index")
    tables, maps = [], []
    try:
        for part in parts:
            mapped = _mapped(part)
            maps.append(mapped)
            tables.append(pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapped))).read_all())
    except (OSError, ValueError, pa.ArrowInvalid) as e:
        raise DataError(f"{root}: unreadable utterance index ({e})") from e
    return tables, maps, parts


def _mapped(path: Path) -> Any:
    """A read-only memory map of ``path``."""
    import mmap

    with path.open("rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def release(maps: Sequence[Any]) -> None:
    """Unmap the pages of these read-only maps from this process (they stay in the page cache
    and are mapped again when next read): the kernel maps pages around each one read, so the
    few rows of a page of results would otherwise keep hundreds of megabytes resident."""
    import mmap

    for mapped in maps:
        if hasattr(mapped, "madvise"):
            mapped.madvise(mmap.MADV_DONTNEED)


def write_orders(directory: str | os.PathLike[str]) -> None:
    """Write ``_order.npy``, the sort orders of the indexed parts of ``directory`` (last: its
    presence means the index is complete)."""
    import pyarrow as pa

    root = Path(directory)
    tables, _, _ = _index_tables(root)
    ids = pa.chunked_array([c for t in tables for c in t.column("utterance_id").chunks])
    keys = {k: np.concatenate([_numpy(t.column(k)) for t in tables]) for k in SORTABLE}
    orders = _orders(ids, keys)
    tmp = root / f".{ORDER}.tmp"
    try:
        with tmp.open("wb") as handle:
            np.save(handle, orders, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, root / ORDER)
    finally:
        tmp.unlink(missing_ok=True)


def build_index(directory: str | os.PathLike[str]) -> None:
    """Index the Parquet parts of utterance rows in ``directory`` (one part in memory at a time;
    parts already indexed are kept)."""
    import pyarrow.parquet as pq

    root = Path(directory)
    for part in sorted(root.glob("part-*.parquet")):
        target = index_part(root, _parquet_part_number(part))
        if not target.is_file():
            write_index_part(pq.read_table(part), target)
    write_orders(root)


def ensure_index(directory: str | os.PathLike[str]) -> None:
    """Build the index of ``directory`` unless it is complete."""
    root = Path(directory)
    if not (root / ORDER).is_file():
        build_index(root)


def open_index(directory: str | os.PathLike[str]) -> UtteranceIndex:
    """The index of ``directory`` (built first if missing), memory-mapped."""
    import pyarrow as pa

    root = Path(directory)
    ensure_index(root)
    parts, maps, paths = _index_tables(root)
    try:
        table = pa.concat_tables([p.select(ROW_COLUMNS) for p in parts])
        orders = np.load(root / ORDER, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, KeyError, pa.ArrowInvalid) as e:
        raise DataError(f"{root}: unreadable utterance index ({e})") from e
    if orders.shape[1:] != (table.num_rows,):
        raise DataError(f"{root}: the utterance index does not match its rows")
    return UtteranceIndex(table, parts, orders, maps, paths)


def _numpy(column: Any) -> NDArray[Any]:
    """A chunked column as one numpy array (chunk by chunk: nothing else is touched)."""
    chunks = [c.to_numpy(zero_copy_only=False) for c in column.chunks]
    return np.concatenate(chunks) if chunks else np.zeros(0)


def _one_chunk(column: Any) -> Any:
    """The array of a one-chunk column (zero-copy; ``combine_chunks`` would copy it)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _codes(parts: list[Any], name: str) -> tuple[NDArray[np.int32], dict[str, int]]:
    """Codes of a string column over every part (from each part's dictionary codes)."""
    pieces = [_one_chunk(p.column(f"_code_{name}")) for p in parts]
    names = sorted(set().union(*(c.dictionary.to_pylist() for c in pieces)) - {None})
    lookup = {v: k for k, v in enumerate(names)}
    codes = []
    for piece in pieces:
        remap = np.array([lookup.get(v, len(names)) for v in piece.dictionary.to_pylist()])
        indices = piece.indices.fill_null(len(remap)).to_numpy(zero_copy_only=False)
        codes.append(np.append(remap, len(names)).astype(np.int32)[indices])
    return np.concatenate(codes), lookup


class UtteranceIndex:
    """The utterance rows of one scoring, with what a query needs kept in memory."""

    def __init__(
        self,
        table: Any,
        parts: list[Any],
        orders: NDArray[np.int32],
        maps: Sequence[Any],
        paths: Sequence[Path],
    ) -> None:
        import pyarrow as pa

        from reranker.substring_search import string_buffers

        self.table = table
        self.orders = orders
        self.n = int(table.num_rows)
        self.misranked = _numpy(table.column("misranked")).astype(bool)
        self.semer = _numpy(table.column("top_semer")).astype(np.float64)
        self.codes = {name: _codes(parts, name) for name in CODED}
        self.columns = ROW_COLUMNS
        self._searched = [
            [
                string_buffers(_one_chunk(p.column(target if target in p.column_names else source)))
                for source, target in SEARCHED.items()
            ]
            for p in parts
        ]
        self._recent: OrderedDict[str, NDArray[np.bool_]] = OrderedDict()
        self._paths = list(paths)
        self._bases = [pa.py_buffer(m).address for m in maps]
        strings = {n for n in ROW_COLUMNS if "string" in str(table.schema.field(n).type)}
        self._numbers = [n for n in ROW_COLUMNS if n not in strings]
        self._parts = parts
        self._maps = list(maps)
        release(self._maps)

    def _text_mask(self, needle: str) -> NDArray[np.bool_]:
        """Rows whose lower-cased text or id contains ``needle`` (recent searches kept)."""
        from reranker.substring_search import contains

        if needle in self._recent:
            self._recent.move_to_end(needle)
            return self._recent[needle]
        mask = np.concatenate(
            [
                np.logical_or.reduce([contains(data, offsets, needle) for data, offsets in part])
                for part in self._searched
            ]
        )
        release(self._maps)
        self._recent[needle] = mask
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        return mask

    def _in(self, name: str, values: Sequence[str]) -> NDArray[np.bool_]:
        codes, lookup = self.codes[name]
        allowed = np.zeros(len(lookup) + 1, dtype=bool)
        allowed[[lookup[v] for v in values if v in lookup]] = True
        return allowed[codes]

    def mask(
        self,
        search: str = "",
        misranked_only: bool = False,
        domains: Sequence[str] = (),
        devices: Sequence[str] = (),
        semer_range: tuple[float, float] | None = None,
    ) -> NDArray[np.bool_] | None:
        """The rows passing every filter (``None``: every row)."""
        terms = []
        if search.strip():
            terms.append(self._text_mask(search.strip().lower()))
        if misranked_only:
            terms.append(self.misranked)
        if domains:
            terms.append(self._in("reference_domain", domains))
        if devices:
            terms.append(self._in("device", devices))
        if semer_range is not None:
            low, high = semer_range
            terms.append((self.semer >= low) & (self.semer <= high))
        if not terms:
            return None
        out = terms[0].copy()
        for term in terms[1:]:
            out &= term
        return out

    def _order(self, sort_by: str | None, descending: bool) -> NDArray[Any] | None:
        """The stored permutation of this sort (``None``: not stored)."""
        if sort_by is None or sort_by == "utterance_id":
            return self.orders[0][::-1] if descending and sort_by else self.orders[0]
        if sort_by in SORTABLE:
            return self.orders[1 + 2 * SORTABLE.index(sort_by) + int(descending)]
        return None

    def _sorted_at_query(
        self, mask: NDArray[np.bool_] | None, sort_by: str, descending: bool, limit: int
    ) -> NDArray[np.int64]:
        if sort_by not in self.columns:
            raise DataError(f"cannot sort by unknown column {sort_by!r}")
        by_id = np.asarray(self.orders[0], dtype=np.int64)
        if mask is not None:
            by_id = by_id[mask[by_id]]
        values = self._take_arrow(by_id, [sort_by])[sort_by]
        order = values.sort_values(ascending=not descending, kind="stable").index.to_numpy()
        return by_id[order[:limit]]

    def search(
        self,
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
        """The first ``limit`` matching rows in sort order, and the number of matches."""
        mask = self.mask(search, misranked_only, domains, devices, semer_range)
        count = self.n if mask is None else int(np.count_nonzero(mask))
        limit = max(0, min(limit, count))
        order = self._order(sort_by, descending)
        if order is None:
            assert sort_by is not None
            rows = self._sorted_at_query(mask, sort_by, descending, limit)
        else:
            rows = first_matches(order, mask, limit)
        page = self.take(rows, self.columns)
        release(self._maps)
        return page, count

    def take(self, rows: NDArray[np.int64], columns: Sequence[str]) -> pd.DataFrame:
        """Rows ``rows`` (global positions, in that order) of ``columns``: strings from each
        row's JSON object, numbers from their columns, each value read from its part's file
        (:mod:`reranker.row_reads`)."""
        import json

        from reranker.row_reads import read_strings, read_values, readable

        wanted = [c for c in self._numbers if c in columns]
        if rows.size == 0 or any(STRINGS not in p.column_names for p in self._parts):
            return self._take_arrow(rows, columns)  # an index written before the JSON objects
        arrays = [[_one_chunk(p.column(c)) for c in [STRINGS, *wanted]] for p in self._parts]
        if not all(readable(a) for p in arrays for a in p):
            return self._take_arrow(rows, columns)
        starts = np.cumsum([0, *(len(p[0]) for p in arrays)])
        which = np.searchsorted(starts, rows, side="right") - 1
        blobs: list[str] = [""] * rows.size
        values = {
            c: np.empty(rows.size, dtype=a.type.to_pandas_dtype())
            for c, a in zip(wanted, arrays[0][1:], strict=True)
        }
        for k in np.unique(which).tolist():
            at = np.flatnonzero(which == k)
            local, path, base = rows[at] - starts[k], self._paths[k], self._bases[k]
            for j, text in zip(
                at.tolist(), read_strings(path, base, arrays[k][0], local), strict=True
            ):
                blobs[j] = text
            for c, array in zip(wanted, arrays[k][1:], strict=True):
                values[c][at] = read_values(path, base, array, local)
        strings = pd.DataFrame.from_records([json.loads(b) for b in blobs], index=range(rows.size))
        strings.columns = [ROW_COLUMNS[int(k)] for k in strings.columns]
        out = {c: strings[c] if c in strings else values[c] for c in columns}
        return pd.DataFrame(out, index=range(rows.size))

    def _take_arrow(self, rows: NDArray[np.int64], columns: Sequence[str]) -> pd.DataFrame:
        """Rows ``rows`` of ``columns`` taken from each part's memory-mapped batch (indexes
        written before the rows' JSON objects were)."""
        import pyarrow as pa

        table = self.table.select(list(columns))
        if rows.size == 0:
            return table.slice(0, 0).to_pandas()
        batches = table.to_batches()
        starts = np.cumsum([0] + [b.num_rows for b in batches])
        which = np.searchsorted(starts, rows, side="right") - 1
        pieces, taken = [], []
        for k in np.unique(which):
            at = np.flatnonzero(which == k)
            pieces.append(batches[k].take(pa.array(rows[at] - starts[k])))
            taken.append(at)
        frame = pa.Table.from_batches(pieces).to_pandas()
        back = np.empty(rows.size, dtype=np.int64)
        back[np.concatenate(taken)] = np.arange(rows.size)
        return frame.iloc[back].reset_index(drop=True)


def first_matches(
    order: NDArray[Any], mask: NDArray[np.bool_] | None, limit: int, *, step: int = 1 << 16
) -> NDArray[np.int64]:
    """The first ``limit`` positions of ``order`` where ``mask`` holds (read in steps)."""
    if mask is None:
        return np.asarray(order[:limit], dtype=np.int64)
    found, total = [], 0
    for start in range(0, len(order), step):
        if total >= limit:
            break
        chunk = np.asarray(order[start : start + step], dtype=np.int64)
        hits = chunk[mask[chunk]]
        found.append(hits)
        total += hits.size
    if not found:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(found)[:limit]
