"""A search index over the utterance rows of a large dataset: every query in milliseconds.

The rows are those :mod:`reranker.slice_statistics` computes (one per utterance, under one
scoring, one part per bucket of utterances). The index of a directory is

- ``_index-NNNNN.arrow``, one per part: its rows as uncompressed Arrow (memory-mapped: a page of
  rows is read without decoding the rest), with the text and the id lower-cased once
  (``search_text``, ``search_id``, stored only where lower-casing changes something) for
  case-insensitive substring search, and the codes of the filtered string columns; the
  statistics pass writes them (:func:`build_index` makes them from Parquet parts
  ``part-NNNNN.parquet`` of utterance rows);
- the query files (:mod:`reranker.utterance_index_files`): the columns a filter reads, one
  ``.npy`` file each, and where every array of every part lies in its file;
- ``_order.npy``: for the utterance id and every column of :data:`SORTABLE`, ascending and
  descending, the permutation of the rows in that order (ties in utterance id order), written
  last.

Opening an index maps these files (no Arrow file is parsed). A query
(:meth:`UtteranceIndex.search`) is then a boolean mask over mapped columns, the first ``limit``
matches taken along a stored permutation, and only those rows read. It returns
what :func:`reranker.utterances.filter_utterances` returns for the same rows sorted by utterance
id.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker.errors import DataError
from reranker.row_reads import STRING
from reranker.utterance_index_files import (
    ROW_COLUMNS,
    STRINGS,
    QueryFiles,
    compute_query,
    load_query,
    numpy_column,
    parquet_part_number,
    save_query,
    searched_arrays,
)
from reranker.utterance_index_files import index_part as index_part
from reranker.utterance_index_files import write_index_part as write_index_part

__all__ = [
    "ORDER",
    "SORTABLE",
    "UtteranceIndex",
    "build_index",
    "ensure_index",
    "forget_text_searches",
    "index_complete",
    "open_index",
    "write_index_part",
    "write_orders",
]

ORDER = "_order.npy"
SORTABLE = ("top_semer", "top_score", "correct_rank", "n_hypotheses")
"""Columns whose sort orders are stored (any other column is sorted at query time)."""
RECENT = 16
"""Text searches whose matches are kept (a mask of one byte per utterance each), shared by every
index of the same rows."""


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
    """Write the files that complete the index of ``directory`` from its Arrow parts: its
    query files (:mod:`reranker.utterance_index_files`), then ``_order.npy``, the sort orders
    (last: its presence means the parts are complete)."""
    import pyarrow as pa

    root = Path(directory)
    tables, maps, paths = _index_tables(root)
    save_query(root, compute_query(tables, _bases(maps), paths))
    ids = pa.chunked_array([c for t in tables for c in t.column("utterance_id").chunks])
    keys = {k: np.concatenate([numpy_column(t.column(k)) for t in tables]) for k in SORTABLE}
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
        target = index_part(root, parquet_part_number(part))
        if not target.is_file():
            write_index_part(pq.read_table(part), target)
    write_orders(root)


def _bases(maps: Sequence[Any]) -> list[int]:
    import pyarrow as pa

    return [pa.py_buffer(m).address for m in maps]


def index_complete(directory: str | os.PathLike[str]) -> bool:
    """Whether the index of ``directory`` exists with query files of this format."""
    root = Path(directory)
    paths = sorted(root.glob("_index-*.arrow"))
    return (root / ORDER).is_file() and bool(paths) and load_query(root, paths) is not None


def ensure_index(directory: str | os.PathLike[str]) -> None:
    """Build the index of ``directory`` unless it is complete; an index written before its
    query files (or with files of another format) gets only those written."""
    root = Path(directory)
    if not (root / ORDER).is_file():
        build_index(root)
    elif not index_complete(root):
        tables, maps, paths = _index_tables(root)
        save_query(root, compute_query(tables, _bases(maps), paths))


def open_index(directory: str | os.PathLike[str]) -> UtteranceIndex:
    """The index of ``directory`` (built first if missing; its query files written first if
    missing or of another format), memory-mapped: a few maps and file reads, no Arrow file
    parsed."""
    root = Path(directory)
    if not (root / ORDER).is_file():
        build_index(root)
    paths = sorted(root.glob("_index-*.arrow"))
    query = load_query(root, paths)
    if query is None:
        tables, maps, paths = _index_tables(root)
        query = compute_query(tables, _bases(maps), paths)
        try:
            save_query(root, query)
        except OSError:  # a read-only cache: this process keeps what it computed
            pass
    try:
        maps = [_mapped(p) for p in paths]
        orders = np.load(root / ORDER, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{root}: unreadable utterance index ({e})") from e
    if orders.shape[1:] != query.misranked.shape:
        raise DataError(f"{root}: the utterance index does not match its rows")
    return UtteranceIndex(root, query, orders, maps, paths)


_TEXT_MASKS: OrderedDict[tuple[str, str], NDArray[np.bool_]] = OrderedDict()
_TEXT_LOCK = threading.Lock()


def forget_text_searches() -> None:
    """Drop the kept text search results of every index (the next search scans again)."""
    with _TEXT_LOCK:
        _TEXT_MASKS.clear()


class UtteranceIndex:
    """The utterance rows of one scoring, with what a query needs memory-mapped."""

    def __init__(
        self,
        root: Path,
        query: QueryFiles,
        orders: NDArray[np.int32],
        maps: Sequence[Any],
        paths: Sequence[Path],
    ) -> None:
        self.root = root
        self.orders = orders
        self.n = int(query.misranked.size)
        self.misranked = query.misranked
        self.semer = query.semer
        self.codes = query.codes
        self.n_misranked = query.n_misranked
        """Rows with ``misranked`` (the count of a query of misranked rows, without one)."""
        self.columns = ROW_COLUMNS
        self._query = query
        self._paths = list(paths)
        self._maps = list(maps)
        self._places = [p["columns"] for p in query.parts]
        self._starts = np.cumsum([0, *(p["rows"] for p in query.parts)])
        strings = set(query.parts[0]["strings"]) if query.parts else set()
        self._numbers = [n for n in ROW_COLUMNS if n not in strings]

    @functools.cached_property
    def _parts(self) -> list[Any]:
        """The Arrow table of every part (parsed on first use: a query does not need them)."""
        return [_read_mapped(m, p) for m, p in zip(self._maps, self._paths, strict=True)]

    @functools.cached_property
    def table(self) -> Any:
        """Every row (columns :data:`ROW_COLUMNS`) as one Arrow table on the mapped parts."""
        import pyarrow as pa

        return pa.concat_tables([p.select(ROW_COLUMNS) for p in self._parts])

    @functools.cached_property
    def _searched(self) -> list[list[tuple[NDArray[np.uint8], NDArray[np.int64]]]]:
        """The ``(data, offsets)`` of the searched strings of every part, on the maps."""
        from reranker.substring_search import string_buffers

        places = [p["searched"] for p in self._places]
        if all(place.get("kind") == STRING for part in places for place in part):
            return [
                [_strings_at(m, place, part["rows"]) for place in part["columns"]["searched"]]
                for m, part in zip(self._maps, self._query.parts, strict=True)
            ]
        return [[string_buffers(a) for a in searched_arrays(p)] for p in self._parts]

    def _text_mask(self, needle: str) -> NDArray[np.bool_]:
        """Rows whose lower-cased text or id contains ``needle`` (recent searches kept, shared
        by the indexes of the same rows)."""
        from reranker.substring_search import contains

        key = (self._query.text_digest, needle)
        with _TEXT_LOCK:
            if key in _TEXT_MASKS:
                _TEXT_MASKS.move_to_end(key)
                return _TEXT_MASKS[key]
        mask = np.concatenate(
            [
                np.logical_or.reduce([contains(data, offsets, needle) for data, offsets in part])
                for part in self._searched
            ]
        )
        release(self._maps)
        with _TEXT_LOCK:
            _TEXT_MASKS[key] = mask
            while len(_TEXT_MASKS) > RECENT:
                _TEXT_MASKS.popitem(last=False)
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
        bounds = self._query.semer_bounds
        if semer_range is not None:
            low, high = semer_range
            if bounds is None or low > bounds[0] or high < bounds[1]:  # else: every row
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
        row's JSON object, numbers from their columns, each value read from its part's file at
        the place the query files give (:mod:`reranker.row_reads`)."""
        import json

        from reranker.row_reads import read_strings, read_values, readable

        wanted = [c for c in ROW_COLUMNS if c in columns and c in self._numbers]
        places = [[p.get(c, {}) for c in [STRINGS, *wanted]] for p in self._places]
        if rows.size == 0 or not all(readable(c) for p in places for c in p):
            return self._take_arrow(rows, columns)  # no JSON objects, or a number with nulls
        which = np.searchsorted(self._starts, rows, side="right") - 1
        blobs: list[str] = [""] * rows.size
        values = {
            c: np.empty(rows.size, dtype=_dtype(places[0][1 + i])) for i, c in enumerate(wanted)
        }
        for k in np.unique(which).tolist():
            at = np.flatnonzero(which == k)
            local, path = rows[at] - self._starts[k], self._paths[k]
            for j, text in zip(at.tolist(), read_strings(path, places[k][0], local), strict=True):
                blobs[j] = text
            for c, place in zip(wanted, places[k][1:], strict=True):
                values[c][at] = read_values(path, place, local)
        # one parse of every row's object
        records = json.loads("[" + ",".join(blobs) + "]")
        strings = pd.DataFrame.from_records(records, index=range(rows.size))
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


def _dtype(place: dict[str, Any]) -> np.dtype[Any]:
    return np.dtype(bool) if place["kind"] == "bool" else np.dtype(place["kind"])


def _strings_at(
    mapped: Any, place: dict[str, Any], rows: int
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """``(data, offsets)`` of the large string array at ``place`` of a mapped file (as
    :func:`reranker.substring_search.string_buffers`), without copying."""
    offsets = np.frombuffer(mapped, np.int64, rows + 1, place["offsets"] + 8 * place["offset"])
    data = np.frombuffer(mapped, np.uint8, place["data_size"], place["data"])
    return data, offsets


def _read_mapped(mapped: Any, path: Path) -> Any:
    """The Arrow table of a mapped index part."""
    import pyarrow as pa

    try:
        return pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapped))).read_all()
    except (OSError, ValueError, pa.ArrowInvalid) as e:
        raise DataError(f"{path}: unreadable utterance index ({e})") from e


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
