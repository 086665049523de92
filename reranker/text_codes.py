"""Integer codes of a table's text columns, hashed once per column.

Validation (the duplicate-key check, references), SemER and the ranking of one table all need
the distinct values of the same Arrow string columns, and hashing millions of strings is the
costly part. So the codes of an Arrow-backed column are kept while its Arrow data lives (every
pandas column sharing those immutable Arrow arrays shares them), and dropped when the data are
collected. Only small dictionaries are kept with them: keeping the distinct values of a large
column would raise the peak memory of ``evaluate``. Codes number the distinct values in order
of first appearance (as ``pandas.factorize`` does) and are of the smallest integer type that
holds them (``int8`` for a column of a few domains), so keeping them costs little memory.
"""

from __future__ import annotations

import mmap
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SMALL_DICTIONARY",
    "drop_dictionary",
    "factorize",
    "joint_text_codes",
    "kept_codes",
    "text_codes",
]

IntArray = NDArray[np.int64]

SMALL_DICTIONARY = 32767  # distinct values kept with a column's codes (int16 codes)
_MEMO: dict[int, tuple[NDArray[np.signedinteger[Any]], pa.Array | None]] = {}


def _arrow_column(values: Any) -> pa.ChunkedArray | None:
    """The Arrow strings of an Arrow-backed pandas text column without nulls."""
    to_arrow = getattr(getattr(values, "array", None), "__arrow_array__", None)
    if to_arrow is None:
        return None
    chunked = to_arrow()
    if not isinstance(chunked, pa.ChunkedArray) or chunked.null_count:
        return None
    if not (pa.types.is_string(chunked.type) or pa.types.is_large_string(chunked.type)):
        return None
    return chunked


def _encode(chunked: pa.ChunkedArray) -> tuple[NDArray[np.signedinteger[Any]], pa.Array]:
    """Codes (first-appearance order, the smallest integer type that holds them) and
    dictionary of strings without nulls."""
    encoded = chunked.cast(pa.large_string()).dictionary_encode()
    if encoded.num_chunks == 0:
        return np.zeros(0, dtype=np.int8), pa.array([], pa.large_string())
    dictionary = encoded.chunk(0).dictionary
    kind = np.int8 if len(dictionary) <= 127 else np.int16 if len(dictionary) <= 32767 else np.int32
    codes = _outside_heap(len(chunked), np.dtype(kind))
    start = 0
    for chunk in encoded.chunks:
        codes[start : start + len(chunk)] = chunk.indices.to_numpy(zero_copy_only=False)
        start += len(chunk)
    codes.flags.writeable = False  # shared by every caller
    return codes, dictionary


def _outside_heap(n: int, dtype: np.dtype[Any]) -> NDArray[Any]:
    """An array in its own anonymous memory map. Kept codes outlive the large temporaries of
    validation and SemER; on the allocator's heap they would pin the memory those free, and
    the process's peak would grow by far more than their size."""
    if n * dtype.itemsize < 1 << 20:
        return np.empty(n, dtype=dtype)
    return np.frombuffer(mmap.mmap(-1, n * dtype.itemsize), dtype=dtype, count=n)


def text_codes(
    values: ArrayLike, *, keep_dictionary: bool = False
) -> tuple[NDArray[np.signedinteger[Any]], pa.Array] | None:
    """Codes and dictionary of an Arrow-backed text column without nulls; ``None`` for any
    other column. The codes are kept while the column lives, the dictionary only when it has
    at most :data:`SMALL_DICTIONARY` values or ``keep_dictionary`` asks for it until
    :func:`drop_dictionary` (a dictionary not kept is hashed again when asked for)."""
    chunked = _arrow_column(values)
    if chunked is None:
        return None
    key = id(chunked)  # Arrow arrays are immutable: same object, same codes
    kept = _MEMO.get(key)
    if kept is not None and kept[1] is not None:
        return kept[0], kept[1]
    codes, dictionary = _encode(chunked)
    if kept is None:
        weakref.finalize(chunked, _MEMO.pop, key, None)
    else:
        codes = kept[0]  # the same values: the codes callers already hold
    keep = keep_dictionary or len(dictionary) <= SMALL_DICTIONARY
    _MEMO[key] = (codes, dictionary if keep else None)
    return codes, dictionary


def drop_dictionary(values: ArrayLike) -> None:
    """Stop keeping the dictionary of a column (its codes stay) unless it is small."""
    chunked = _arrow_column(values)
    kept = None if chunked is None else _MEMO.get(id(chunked))
    if kept is not None and kept[1] is not None and len(kept[1]) > SMALL_DICTIONARY:
        _MEMO[id(chunked)] = (kept[0], None)


def kept_codes(values: ArrayLike) -> NDArray[np.signedinteger[Any]] | None:
    """Codes of an Arrow-backed text column without nulls, made once per column (no
    dictionary); ``None`` for any other column."""
    chunked = _arrow_column(values)
    if chunked is None:
        return None
    kept = _MEMO.get(id(chunked))
    return kept[0] if kept is not None else text_codes(values)[0]  # type: ignore[index]


def factorize(values: Any) -> NDArray[np.signedinteger[Any]]:
    """Codes of a column in order of first appearance: the kept codes of an Arrow text column
    (:func:`kept_codes`), else ``pandas.factorize``'s."""
    import pandas as pd

    codes = kept_codes(values)
    return pd.factorize(values)[0] if codes is None else codes


def joint_text_codes(
    columns: Sequence[ArrayLike], names: Sequence[str], *, missing_as_empty: bool
) -> tuple[list[IntArray], pa.Array]:
    """Codes of several text columns over one shared dictionary (first appearance, column by
    column), as :func:`reranker.label_sequences.factorize_text` of their
    :func:`~reranker.label_sequences.text_column` gives them."""
    from reranker.label_sequences import factorize_text, text_column

    kept = [_kept_with_dictionary(values) for values in columns]
    if any(k is None for k in kept):  # one hash over all the columns' values
        texts = [
            text_column(values, name, missing_as_empty=missing_as_empty)
            for values, name in zip(columns, names, strict=True)
        ]
        return factorize_text(texts)
    parts = [k for k in kept if k is not None]
    if len(parts) == 1:
        return [parts[0][0].astype(np.int64)], parts[0][1]
    dictionary, remaps = _union([d.cast(pa.large_string()) for _, d in parts])
    return [r[c] for r, (c, _) in zip(remaps, parts, strict=True)], dictionary


def _kept_with_dictionary(values: ArrayLike) -> tuple[NDArray[Any], pa.Array] | None:
    """The kept codes and dictionary of a column, if both are kept."""
    chunked = _arrow_column(values)
    kept = None if chunked is None else _MEMO.get(id(chunked))
    if kept is None or kept[1] is None:
        return None
    return kept[0], kept[1]


def _union(dictionaries: list[pa.Array]) -> tuple[pa.ChunkedArray, list[IntArray]]:
    """The distinct values of several dictionaries in order (the first whole, then each one's
    new values) without copying the first, and where each dictionary's values went."""
    pieces, size = [dictionaries[0]], len(dictionaries[0])
    remaps = [np.arange(size, dtype=np.int64)]
    for d in dictionaries[1:]:
        seen = pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)
        at = pc.index_in(d, value_set=seen)
        new = at.is_null().to_numpy(zero_copy_only=False)
        remap = at.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        remap[new] = size + np.arange(int(new.sum()))
        pieces.append(d.filter(pa.array(new)))
        remaps.append(remap)
        size += int(new.sum())
    return pa.chunked_array(pieces, type=pa.large_string()), remaps
