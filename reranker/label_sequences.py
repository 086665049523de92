"""Columns of bracket annotations as integer label sequences, for millions of rows at once.

SemER (:mod:`reranker.semer`) compares the label sequences ``[(type, normalised value), ...]`` of
annotations (docs/metrics.md#semer). This module gives every row the sequence of its annotation as
integer label ids, equal ids meaning equal labels:

1. the columns are factorised together with Arrow's hash kernel, so each distinct annotation is
   handled once (real n-best tables have about one distinct slot string per three rows);
2. distinct annotations in printable ASCII that a regular expression recognises as well formed
   are split into slots by Arrow's string kernels (C++, no Python object per slot); the others
   (any other character, or malformed) go through the Python parser
   :func:`reranker.annotation.parse_slots`, which gives the same slots and reports errors. In
   printable ASCII the only white space is the space, so lower-casing, collapsing runs of
   spaces and trimming spaces is exactly :func:`reranker.annotation.normalize_value`;
3. ``(type, value)`` pairs are numbered by factorising types and values.

Arrow (``pyarrow``) is already what pandas stores string columns in, so columns read from
Parquet or CSV reach these kernels without conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike, NDArray

from reranker.annotation import normalize_value, parse_slots
from reranker.errors import DataError
from reranker.text_codes import joint_text_codes

__all__ = [
    "LabelSequences",
    "encode_annotations",
    "factorize_text",
    "first_malformed",
    "text_column",
]

IntArray = NDArray[np.int64]

# Printable ASCII without brackets; without ':' as well; and their non-space subsets.
_TEXT = r"[ -Z\\^-~]"
_TYPE = r"[ -9;-Z\\^-~]"
_TYPE_SOLID = r"[!-9;-Z\\^-~]"
_VALUE_SOLID = r"[!-Z\\^-~]"
_SLOT = rf"\[{_TYPE}*{_TYPE_SOLID}{_TYPE}*:{_TEXT}*{_VALUE_SOLID}{_TEXT}*\]"
_WELL_FORMED_ASCII = rf"^{_TEXT}*(?:{_SLOT}{_TEXT}*)*$"
_SLOT_BODY = r"^(?P<type>[^:]*):(?P<value>[^\]]*)\]"


@dataclass(frozen=True)
class LabelSequences:
    """Slot label sequences of the distinct annotations of some columns (CSR layout).

    Attributes
    ----------
    codes : list of ndarray of int64
        For each input column, the index of each row's distinct annotation.
    offsets : ndarray of int64, shape (n_distinct + 1,)
        Distinct annotation k has labels ``labels[offsets[k]:offsets[k + 1]]``.
    labels : ndarray of int64
        Label ids, ``0 .. n_labels - 1``; equal ids mean equal ``(type, normalised value)``.
    """

    codes: list[IntArray]
    offsets: IntArray
    labels: IntArray

    @property
    def lengths(self) -> IntArray:
        """Number of slots of each distinct annotation."""
        return np.diff(self.offsets)


def _arrow_strings(values: ArrayLike) -> pa.ChunkedArray | None:
    """``values`` as Arrow strings when they already are strings (or None where missing)."""
    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return None
    chunked = pa.chunked_array([arr]) if isinstance(arr, pa.Array) else arr
    kind = chunked.type
    if pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type):
        chunked = chunked.cast(kind.value_type)
        kind = chunked.type
    if pa.types.is_null(kind) and len(chunked):
        return chunked.cast(pa.large_string())
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None
    return chunked.cast(pa.large_string())


def text_column(values: ArrayLike, name: str, *, missing_as_empty: bool) -> pa.ChunkedArray:
    """A column of text as Arrow large strings; other values are written with ``str``.

    Missing values (None, NaN) become ``""`` with ``missing_as_empty``, else raise
    ``DataError("{name}[{row}] is missing")``.
    """
    chunked = _arrow_strings(values)
    if chunked is None:
        series = pd.Series(np.asarray(values, dtype=object), dtype=object)
        missing = series.isna()
        texts = series.where(~missing, None).map(str, na_action="ignore")
        chunked = pa.chunked_array([pa.array(texts, type=pa.large_string(), from_pandas=True)])
    if chunked.null_count:
        if missing_as_empty:
            return chunked.fill_null("")
        row = int(np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{name}[{row}] is missing")
    return chunked


def factorize_text(columns: Sequence[pa.ChunkedArray]) -> tuple[list[IntArray], pa.Array]:
    """Factorise several text columns together: their codes and the shared dictionary."""
    combined = pa.chunked_array(
        [c for col in columns for c in col.chunks], type=pa.large_string()
    ).dictionary_encode()
    if combined.num_chunks == 0:
        return [np.zeros(0, dtype=np.int64) for _ in columns], pa.array([], pa.large_string())
    indices = np.concatenate(
        [c.indices.to_numpy(zero_copy_only=False) for c in combined.chunks]
    ).astype(np.int64)
    bounds = np.cumsum([len(col) for col in columns])[:-1]
    return list(np.split(indices, bounds)), combined.chunk(0).dictionary


def _split_ascii(annotations: pa.Array) -> tuple[IntArray, pa.Array, pa.Array]:
    """Slots of well-formed printable-ASCII annotations: counts, types, normalised values.

    With ``]`` turned into ``[``, splitting at ``[`` leaves text and slot bodies alternating
    (text first); each body splits at its first ``:`` into type and value.
    """
    pieces = pc.split_pattern(pc.replace_substring(annotations, "]", "["), "[")
    offsets = pieces.offsets.to_numpy().astype(np.int64)
    counts = np.diff(offsets) // 2
    flat = pc.list_flatten(pieces)
    position = np.arange(len(flat)) - np.repeat(offsets[:-1], np.diff(offsets))
    bodies = pc.split_pattern(flat.filter(pa.array(position % 2 == 1)), ":", max_splits=1)
    types = pc.ascii_trim(pc.list_element(bodies, 0), " ")
    values = pc.ascii_lower(pc.list_element(bodies, 1))
    spaced = pc.match_substring(values, "  ")
    if pc.any(spaced).as_py():
        values = pc.if_else(spaced, pc.replace_substring_regex(values, " +", " "), values)
    return counts, types, pc.ascii_trim(values, " ")


def _escape_nul(text: str) -> str:
    """``text`` with every NUL character escaped, injectively (SOH doubled, NUL as SOH STX)."""
    if "\x00" not in text and "\x01" not in text:
        return text
    return text.replace("\x01", "\x01\x01").replace("\x00", "\x01\x02")


def _split_python(annotations: list[str]) -> tuple[IntArray, pa.Array, pa.Array]:
    """Slots of the remaining annotations through the Python parser (raises on bad ones)."""
    counts = np.zeros(len(annotations), dtype=np.int64)
    types: list[str] = []
    values: list[str] = []
    for k, text in enumerate(annotations):
        slots = parse_slots(text)
        counts[k] = len(slots)
        types.extend(_escape_nul(t) for t, _ in slots)
        values.extend(normalize_value(v) for _, v in slots)
    return counts, pa.array(types, pa.large_string()), pa.array(values, pa.large_string())


def _label_ids(
    types: Sequence[pa.Array | pa.ChunkedArray], values: Sequence[pa.Array | pa.ChunkedArray]
) -> IntArray:
    """One id per distinct ``(type, value)`` pair over all given slot arrays.

    The key is the type, a NUL character and the value: unique per pair because no type holds
    a NUL (printable ASCII has none; the Python path escapes it).
    """
    sep = pa.scalar("\x00", pa.large_string())
    keys = [
        pc.binary_join_element_wise(t.cast(pa.large_string()), v.cast(pa.large_string()), sep)
        for t, v in zip(types, values, strict=True)
    ]
    chunks = [c for k in keys for c in (k.chunks if isinstance(k, pa.ChunkedArray) else [k])]
    (ids,), _ = factorize_text([pa.chunked_array(chunks, type=pa.large_string())])
    return ids


_SLICE = 1 << 18  # distinct annotations split at a time


def _split_in_slices(
    dictionary: pa.Array | pa.ChunkedArray, is_fast: pa.Array | pa.ChunkedArray
) -> tuple[IntArray, pa.ChunkedArray, pa.ChunkedArray]:
    """:func:`_split_ascii` of the annotations where ``is_fast``, a slice at a time: the
    string kernels' intermediate copies of the text never hold more than one slice."""
    arrays = dictionary.chunks if isinstance(dictionary, pa.ChunkedArray) else [dictionary]
    masks = is_fast.chunks if isinstance(is_fast, pa.ChunkedArray) else [is_fast]
    mask = pa.concat_arrays(masks) if masks else pa.array([], pa.bool_())
    counts, types, values = [np.zeros(0, dtype=np.int64)], [], []
    start = 0
    for array in arrays:
        for at in range(0, len(array), _SLICE):
            part = array.slice(at, _SLICE)
            c, t, v = _split_ascii(part.filter(mask.slice(start + at, len(part))))
            counts.append(c)
            types.append(t)
            values.append(v)
        start += len(array)
    return (
        np.concatenate(counts),
        pa.chunked_array(types, type=pa.large_string()),
        pa.chunked_array(values, type=pa.large_string()),
    )


def _parse_distinct(dictionary: pa.Array) -> tuple[IntArray, IntArray]:
    """CSR ``(offsets, labels)`` of the distinct annotations in ``dictionary``."""
    is_fast = pc.match_substring_regex(dictionary, _WELL_FORMED_ASCII)
    fast_mask = is_fast.to_numpy(zero_copy_only=False)
    fast_rows, slow_rows = np.flatnonzero(fast_mask), np.flatnonzero(~fast_mask)
    fast_counts, fast_types, fast_values = _split_in_slices(dictionary, is_fast)
    slow_counts, slow_types, slow_values = _split_python(
        dictionary.take(pa.array(slow_rows)).to_pylist()
    )
    ids = _label_ids([fast_types, slow_types], [fast_values, slow_values])
    counts = np.zeros(len(dictionary), dtype=np.int64)
    counts[fast_rows], counts[slow_rows] = fast_counts, slow_counts
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    labels = np.empty(int(offsets[-1]), dtype=np.int64)
    n_fast = int(fast_counts.sum())
    for rows, k, part in ((fast_rows, counts, ids[:n_fast]), (slow_rows, counts, ids[n_fast:])):
        c = k[rows]
        within = np.arange(part.size) - np.repeat(np.cumsum(c) - c, c)
        labels[np.repeat(offsets[rows], c) + within] = part
    return offsets, labels


def encode_annotations(columns: Sequence[ArrayLike], names: Sequence[str]) -> LabelSequences:
    """Label sequences of the annotations in several columns, parsed once per distinct value.

    Missing annotations count as ``""`` (no slots). A malformed annotation raises
    ``DataError`` naming the column and the first row holding it.
    """
    codes, dictionary = joint_text_codes(columns, names, missing_as_empty=True)
    try:
        offsets, labels = _parse_distinct(dictionary)
    except DataError as e:
        bad = _first_bad_row(codes, dictionary, names)
        raise DataError(f"{bad}: {e}") from e
    return LabelSequences(codes, offsets, labels)


def _first_bad_row(codes: list[IntArray], dictionary: pa.Array, names: Sequence[str]) -> str:
    """``name[row]`` of the first row (in column order) whose annotation does not parse."""
    suspects = np.flatnonzero(
        ~pc.match_substring_regex(dictionary, _WELL_FORMED_ASCII).to_numpy(zero_copy_only=False)
    )
    bad = []
    for k in suspects:
        try:
            parse_slots(dictionary[int(k)].as_py())
        except DataError:
            bad.append(k)
    for column, name in zip(codes, names, strict=True):
        rows = np.flatnonzero(np.isin(column, bad))
        if rows.size:
            return f"{name}[{int(rows[0])}]"
    return "annotation"  # pragma: no cover - only reached when parsing is not deterministic


def first_malformed(values: ArrayLike) -> tuple[int, str] | None:
    """The first row whose annotation does not parse, and the parser's message, if any.

    Distinct annotations that the well-formedness expression accepts are not parsed; only the
    others go through :func:`reranker.annotation.parse_slots`. Missing values count as ``""``.
    """
    (codes,), dictionary = joint_text_codes([values], [""], missing_as_empty=True)
    suspects = np.flatnonzero(
        ~pc.match_substring_regex(dictionary, _WELL_FORMED_ASCII).to_numpy(zero_copy_only=False)
    )
    bad: dict[int, str] = {}
    for k in suspects:
        try:
            parse_slots(dictionary[int(k)].as_py())
        except DataError as e:
            bad[int(k)] = str(e)
    if not bad:
        return None
    rows = np.flatnonzero(np.isin(codes, list(bad)))
    row = int(rows[0])
    return row, bad[int(codes[row])]
