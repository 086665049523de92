"""The files of an utterance index (:mod:`reranker.utterance_index`) and how they are written.

- ``_index-NNNNN.arrow``, one per part (:func:`write_index_part`): its rows as uncompressed
  Arrow, with the text and the id lower-cased once (``search_text``, ``search_id``, stored only
  where lower-casing changes something), the codes of the filtered string columns, and every
  row's strings as one JSON object;
- the query files, what a query needs, opened in milliseconds:
  ``_misranked.npy`` (bool), ``_semer.npy`` (float64, the top-1 SemER) and ``_code_<name>.npy``
  (the code of every filtered string column, over its sorted distinct values): one entry per
  utterance row, in the order of the parts, memory-mapped when opened (``allow_pickle=False``),
  and ``_query.json``, written after them: its ``format``, the distinct values of the coded
  columns, the number of misranked utterances, a digest of the searched text (indexes of the
  same rows share their text searches), and where every array of every part lies in its file
  (so a page of rows is read with ``pread`` and no Arrow file is parsed).

An index without these files, or with files of another format, gets them written from its Arrow
parts (:func:`compute_query`), which takes seconds, not the statistics pass's minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reranker.row_reads import array_place

__all__ = [
    "FORMAT",
    "QUERY",
    "QueryFiles",
    "compute_query",
    "index_part",
    "load_query",
    "save_query",
    "write_index_part",
]

QUERY = "_query.json"
FORMAT = 2
CODED = ("device", "reference_domain")
SEARCHED = {"text": "search_text", "utterance_id": "search_id"}
"""Searched column -> its lower-cased copy (stored only where lower-casing changes something)."""
ROW_COLUMNS = [
    "utterance_id", "text", "device", "reference_domain", "reference", "top_domain", "top_intent",
    "top_slots", "top_score", "top_semer", "top_correct", "has_correct", "misranked",
    "correct_rank", "n_hypotheses", "r0_top_domain", "r0_top_correct",
]  # fmt: skip
"""The columns of an utterance row (:func:`reranker.utterances.utterance_table`)."""
STRINGS = "_strings"


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


def index_part(directory: Path, number: int) -> Path:
    """The index file of part ``number`` of a directory's utterance rows."""
    return directory / f"_index-{number:05d}.arrow"


def parquet_part_number(part: Path) -> int:
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


def numpy_column(column: Any) -> NDArray[Any]:
    """A chunked column as one numpy array (chunk by chunk: nothing else is touched)."""
    chunks = [c.to_numpy(zero_copy_only=False) for c in column.chunks]
    return np.concatenate(chunks) if chunks else np.zeros(0)


def one_chunk(column: Any) -> Any:
    """The array of a one-chunk column (zero-copy; ``combine_chunks`` would copy it)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _codes(parts: list[Any], name: str) -> tuple[NDArray[Any], list[str]]:
    """Codes of a string column over every part (from each part's dictionary codes; a missing
    value is ``len(names)``) and the sorted distinct values they number."""
    pieces = [one_chunk(p.column(f"_code_{name}")) for p in parts]
    names = sorted(set().union(*(c.dictionary.to_pylist() for c in pieces)) - {None})
    lookup = {v: k for k, v in enumerate(names)}
    dtype = np.min_scalar_type(len(names))
    codes = []
    for piece in pieces:
        remap = np.array([lookup.get(v, len(names)) for v in piece.dictionary.to_pylist()])
        indices = piece.indices.fill_null(len(remap)).to_numpy(zero_copy_only=False)
        codes.append(np.append(remap, len(names)).astype(dtype)[indices])
    return np.concatenate(codes).astype(dtype, copy=False), names


def searched_arrays(part: Any) -> list[Any]:
    """The arrays a text search scans in one part: the lower-cased text and id (or the text
    and id themselves where lower-casing changes nothing)."""
    names = part.column_names
    return [one_chunk(part.column(t if t in names else s)) for s, t in SEARCHED.items()]


@dataclass(frozen=True)
class QueryFiles:
    """The per-utterance arrays of a query and where each part's arrays lie in its file."""

    misranked: NDArray[np.bool_]
    semer: NDArray[np.float64]
    codes: dict[str, tuple[NDArray[Any], dict[str, int]]]
    n_misranked: int
    semer_bounds: tuple[float, float] | None
    """The least and greatest top-1 SemER when none is missing (``None`` otherwise): a SemER
    range holding both keeps every row."""
    text_digest: str
    parts: list[dict[str, Any]]
    """Per part: ``file`` (name), ``size`` (bytes), ``rows``, ``strings`` (its string columns)
    and ``columns``: the place
    (:func:`reranker.row_reads.array_place`) of each array, the searched ones under
    ``"searched"`` as a list."""


def _text_digest(parts: list[Any]) -> str:
    """A digest of the searched strings of every part (equal digests: equal search results)."""
    from reranker.substring_search import string_buffers

    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        for array in searched_arrays(part):
            data, offsets = string_buffers(array)
            digest.update(np.int64(offsets.size).tobytes())
            digest.update((offsets - offsets[0]).tobytes())
            digest.update(data[int(offsets[0]) : int(offsets[-1])].data)
    return digest.hexdigest()


def compute_query(parts: list[Any], bases: list[int], paths: list[Path]) -> QueryFiles:
    """The query files of the index parts ``parts`` (Arrow tables read from the files
    ``paths`` memory-mapped at ``bases``)."""
    misranked = np.concatenate([numpy_column(p.column("misranked")) for p in parts]).astype(bool)
    semer = np.concatenate([numpy_column(p.column("top_semer")) for p in parts])
    codes = {}
    for name in CODED:
        values, names = _codes(parts, name)
        codes[name] = (values, {v: k for k, v in enumerate(names)})
    layout = []
    for part, base, path in zip(parts, bases, paths, strict=True):
        size = path.stat().st_size
        columns: dict[str, Any] = {
            n: array_place(one_chunk(part.column(n)), base, size)
            for n in part.column_names
            if not n.startswith("_code_")
        }
        columns["searched"] = [array_place(a, base, size) for a in searched_arrays(part)]
        strings = [f.name for f in part.schema if "string" in str(f.type)]
        layout.append(
            {
                "file": path.name,
                "size": size,
                "rows": part.num_rows,
                "strings": strings,
                "columns": columns,
            }
        )
    return QueryFiles(
        misranked,
        semer.astype(np.float64),
        codes,
        int(np.count_nonzero(misranked)),
        _bounds(semer),
        _text_digest(parts),
        layout,
    )


def _bounds(values: NDArray[np.float64]) -> tuple[float, float] | None:
    if values.size == 0 or np.isnan(values).any():
        return None
    return float(values.min()), float(values.max())


def _arrays(query: QueryFiles) -> dict[str, NDArray[Any]]:
    return {"misranked": query.misranked, "semer": query.semer} | {
        f"code_{name}": codes for name, (codes, _) in query.codes.items()
    }


def _replace(root: Path, name: str, write: Any) -> None:
    """Write ``root / name`` through ``write(handle)`` under a temporary name of this process
    and thread, then rename it (a reader sees the old file or the new one, never a part)."""
    tmp = root / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with tmp.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, root / name)
    finally:
        tmp.unlink(missing_ok=True)


def save_query(root: Path, query: QueryFiles) -> None:
    """Write the query files of ``root`` (``_query.json`` last)."""
    for name, array in _arrays(query).items():
        _replace(root, f"_{name}.npy", lambda h, a=array: np.save(h, a, allow_pickle=False))
    meta = {
        "format": FORMAT,
        "n": int(query.misranked.size),
        "n_misranked": query.n_misranked,
        "semer_bounds": query.semer_bounds,
        "text_digest": query.text_digest,
        "names": {name: list(lookup) for name, (_, lookup) in query.codes.items()},
        "parts": query.parts,
    }
    _replace(root, QUERY, lambda h: h.write(json.dumps(meta).encode()))


def _current(meta: Any, paths: list[Path]) -> bool:
    """Whether ``meta`` is of this format and describes the part files ``paths`` as they are."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return False
    parts = meta.get("parts")
    if not isinstance(parts, list) or [p.get("file") for p in parts] != [p.name for p in paths]:
        return False
    return all(p.get("size") == path.stat().st_size for p, path in zip(parts, paths, strict=True))


def load_query(root: Path, paths: list[Path]) -> QueryFiles | None:
    """The query files of ``root`` for the part files ``paths`` (memory-mapped); ``None`` when
    they are missing, of another format or written for other part files."""
    try:
        meta = json.loads((root / QUERY).read_text())
        if not _current(meta, paths):
            return None
        n = int(meta["n"])
        arrays = {
            name: np.load(root / f"_{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in ("misranked", "semer", *(f"code_{c}" for c in CODED))
        }
        codes = {
            c: (
                np.asarray(arrays[f"code_{c}"]),
                {str(v): k for k, v in enumerate(meta["names"][c])},
            )
            for c in CODED
        }
        low_high = meta["semer_bounds"]
        bounds = None if low_high is None else (float(low_high[0]), float(low_high[1]))
        counted, digest = int(meta["n_misranked"]), str(meta["text_digest"])
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    kinds = {"misranked": "b", "semer": "f"}
    for name, array in arrays.items():
        if array.shape != (n,) or array.dtype.kind != kinds.get(name, "u"):
            return None
    return QueryFiles(
        np.asarray(arrays["misranked"]),
        np.asarray(arrays["semer"]),
        codes,
        counted,
        bounds,
        digest,
        meta["parts"],
    )
