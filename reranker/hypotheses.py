"""Hypothesis tables (docs/formats.md#hypothesis-table): reading, validating and writing.

A hypothesis table has one row per hypothesis of an utterance's n-best list. It is read from
Parquet, CSV or JSONL (chosen by extension), validated against every rule of the contract and
returned as a :class:`pandas.DataFrame` whose required columns have fixed dtypes:

- ``utterance_id``, ``text``, ``device``, ``domain``, ``intent``, ``slots`` (and ``ref_*`` if
  present): ``str``; ``slots`` and ``ref_slots`` may be ``""`` (no slots);
- ``domain_score``, ``intent_score``, ``slot_score``: ``float64`` in [0, 1].

Extra columns are kept untouched. Every error names the file, the row (1-based, counting data
rows; for text formats the line number too) and the column.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from reranker._files import (
    check_suffix,
    decode_utf8,
    default_file_mode,
    json_object_lines,
    os_error,
    read_csv_text,
    read_file_bytes,
)
from reranker.arrow_memory import arrow_allocator
from reranker.errors import DataError
from reranker.label_sequences import first_malformed
from reranker.text_codes import factorize, kept_codes, text_codes

__all__ = [
    "OPTIONAL_COLUMNS",
    "REFERENCE_COLUMNS",
    "REQUIRED_COLUMNS",
    "SCORE_COLUMNS",
    "RowLocator",
    "duplicate_problem",
    "has_references",
    "read_hypotheses",
    "read_table",
    "reference_problem",
    "validate_hypotheses",
    "write_table",
]

SCORE_COLUMNS: tuple[str, ...] = ("domain_score", "intent_score", "slot_score")
REQUIRED_COLUMNS: tuple[str, ...] = ("utterance_id", "domain", "intent", "slots", *SCORE_COLUMNS)
OPTIONAL_COLUMNS: dict[str, str] = {"text": "", "device": "unknown"}
REFERENCE_COLUMNS: tuple[str, ...] = ("ref_domain", "ref_intent", "ref_slots")
_KEY = ("utterance_id", "domain", "intent", "slots")
_MAY_BE_EMPTY = frozenset({"slots", "ref_slots", "text"})
SUFFIXES = (".parquet", ".pq", ".csv", ".jsonl", ".ndjson")


def _suffix(path: Path) -> str:
    return check_suffix(
        path,
        SUFFIXES,
        what="file extension",
        no_suffix="(none)",
        advice="use .parquet, .csv or .jsonl",
    )


def _read_csv(path: Path, data: bytes) -> tuple[pd.DataFrame, int]:
    text = decode_utf8(path, data)
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    frame = read_csv_text(path, text, empty="file is empty")
    _check_csv_header(path, text)
    return frame, 2  # data row 1 is on line 2


def _check_csv_header(path: Path, text: str) -> None:
    """Refuse a header naming a column twice (pandas would rename the second ``name.1``)."""
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as e:
        raise DataError(f"{path}: line 1: malformed CSV header ({e})") from e
    _check_unique_names(path, header, "line 1: ")


def _read_jsonl(path: Path, data: bytes) -> tuple[pd.DataFrame, int]:
    text = decode_utf8(path, data)
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    records: list[dict[str, object]] = []
    first_line = 0
    for lineno, record in json_object_lines(path, text):
        if not first_line:
            first_line = lineno
        elif lineno != first_line + len(records):
            # Blank lines inside the file: keep line numbers honest by refusing them.
            raise DataError(f"{path}: line {lineno - 1}: blank line inside the file")
        records.append(record)
    return pd.DataFrame.from_records(records), first_line


def _read_parquet(path: Path, data: bytes) -> tuple[pd.DataFrame, int]:
    if not data:
        raise DataError(f"{path}: file is empty")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(pa.BufferReader(data)).names
        _check_unique_names(path, names)
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable Parquet file ({' '.join(str(e).split())})") from e
    return table.to_pandas(), 0


def _check_unique_names(path: Path, names: list[str], where: str = "") -> None:
    """Refuse a header or schema naming a column twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: {where}column {name!r} appears more than once")
        seen.add(name)


_READERS: dict[str, Callable[[Path, bytes], tuple[pd.DataFrame, int]]] = {
    ".csv": _read_csv,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".parquet": _read_parquet,
    ".pq": _read_parquet,
}


class RowLocator(Protocol):
    """Names a 0-based row of a table in error messages."""

    def at(self, row: int, column: str | None = None) -> str:
        """The ``file: row N, column 'c'`` prefix of a message about ``row``."""
        ...

    def row(self, row: int) -> str:
        """How a message refers to another row, e.g. ``row 3``."""
        ...


class _Locator:
    """Turns a 0-based row index into the ``file: row N (line L), column 'c'`` prefix."""

    def __init__(self, source: str, first_line: int) -> None:
        self.source = source
        self.first_line = first_line

    def at(self, row: int, column: str | None = None) -> str:
        where = f"{self.source}: row {row + 1}"
        if self.first_line:
            where += f" (line {row + self.first_line})"
        if column is not None:
            where += f", column {column!r}"
        return where

    def row(self, row: int) -> str:
        return f"row {row + 1}"


def read_table(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, int]:
    """Read a Parquet, CSV or JSONL file as raw columns (no validation).

    Returns the frame and the line number of its first data row (0 for Parquet).
    """
    p = Path(path)
    suffix = _suffix(p)
    data = read_file_bytes(p, what="hypothesis file")
    return _READERS[suffix](p, data)


def read_hypotheses(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load and validate a hypothesis table (docs/formats.md#hypothesis-table).

    Parameters
    ----------
    path : str or path-like
        A ``.parquet``, ``.csv`` or ``.jsonl`` file, or a partitioned Parquet dataset: a
        directory, a glob or an fsspec URL (:mod:`reranker.partitioned`), read in dataset order.

    Returns
    -------
    pandas.DataFrame
        The validated table, in file order, with ``text`` and ``device`` filled with their
        defaults where absent.

    Raises
    ------
    DataError
        On any breach of the contract; the message names the file, row and column.
    """
    from reranker.partitioned import is_dataset_path, read_dataset

    try:
        is_dataset = is_dataset_path(path)
    except OSError as e:
        raise DataError(os_error(path, e)) from e
    with arrow_allocator():
        if is_dataset:
            return read_dataset(os.fspath(path))
        frame, first_line = read_table(path)
        return validate_hypotheses(frame, source=str(path), first_line=first_line)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


# Columns whose codes are made while validating them and used again later (duplicate keys,
# references, ranking, slices); the annotation columns keep their distinct values too, for the
# well-formedness check and SemER (which drops them once it has parsed them).
_CODED = frozenset({"utterance_id", "domain", "intent", "device", "ref_domain", "ref_intent"})
_ANNOTATIONS = frozenset({"slots", "ref_slots"})


def _stripped(values: pd.Series, found: tuple[np.ndarray, Any] | None) -> pd.Series:
    """``values`` with surrounding whitespace stripped; the same column (its own memory, its
    codes) when no value has any, decided on the distinct values when ``found`` gives them."""
    if found is not None:
        import pyarrow.compute as pc

        dictionary = found[1]
        if pc.all(pc.equal(pc.utf8_trim_whitespace(dictionary), dictionary)).as_py() is not False:
            return values
    stripped = values.str.strip()
    return values if (stripped == values).all() else stripped


def _empty_rows(values: pd.Series, found: tuple[np.ndarray, Any] | None) -> np.ndarray:
    """Where ``values`` is the empty string (among the distinct values when ``found`` gives
    ``values``' codes and dictionary)."""
    if found is None:
        return (values == "").to_numpy()
    import pyarrow.compute as pc

    codes, dictionary = found
    at = pc.index(dictionary, "").as_py()
    return codes == at if at >= 0 else np.zeros(len(values), dtype=bool)


def _as_str_column(
    frame: pd.DataFrame, column: str, loc: _Locator, *, may_be_empty: bool
) -> pd.Series:
    values = frame[column].reset_index(drop=True)
    missing = values.isna().to_numpy()
    if isinstance(values.dtype, pd.StringDtype):
        as_str = (values.fillna("") if missing.any() else values).astype(str)
    elif values.dtype == object:
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind not in ("string", "empty", "integer", "mixed-integer"):
            ok = values.map(lambda v: v is None or isinstance(v, str | int | np.integer))
            ok &= ~values.map(lambda v: isinstance(v, bool))
            bad = ~ok.to_numpy() & ~missing
            if bad.any():
                row = _first(bad)
                raise DataError(f"{loc.at(row, column)}: expected text, got {values.iloc[row]!r}")
        as_str = values.where(~missing, "").astype(str)
    elif pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"{loc.at(0, column)}: expected text, got true/false values")
    elif pd.api.types.is_integer_dtype(values.dtype):
        as_str = values.astype(str)
    elif pd.api.types.is_float_dtype(values.dtype):
        whole = (values == np.round(values)).to_numpy()
        if (~missing & ~whole).any():
            row = _first(~missing & ~whole)
            raise DataError(f"{loc.at(row, column)}: expected text, got {values.iloc[row]!r}")
        as_str = values.map(lambda v: "" if pd.isna(v) else str(int(v))).astype(str)
    else:
        as_str = values.astype(str)
    coded = column in _CODED or column in _ANNOTATIONS
    found = text_codes(as_str, keep_dictionary=column in _ANNOTATIONS) if coded else None
    if column != "text":
        kept = as_str
        as_str = _stripped(as_str, found)
        found = found if as_str is kept else None  # stripped: other values, other codes
    if not may_be_empty:
        empty = _empty_rows(as_str, found) | missing
        if empty.any():
            raise DataError(f"{loc.at(_first(empty), column)}: missing value")
    return as_str


_NAN_WORDS = frozenset({"nan", "-nan", "+nan"})


def _score_problem(value: object) -> str | None:
    """Why one raw score cell failed numeric conversion (slow path, only for failed cells)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "missing value"
    if isinstance(value, float) and np.isnan(value):
        return "score is NaN or missing"
    if isinstance(value, str) and value.strip().lower() in _NAN_WORDS:
        return "score is NaN or missing"
    return f"not a number: {value!r}"


def _as_score_column(frame: pd.DataFrame, column: str, loc: _Locator) -> pd.Series:
    raw = frame[column].reset_index(drop=True)
    if raw.dtype == object or isinstance(raw.dtype, pd.StringDtype):
        if raw.dtype == object:
            kind = pd.api.types.infer_dtype(raw, skipna=True)
            if kind not in ("string", "floating", "integer", "mixed-integer-float", "empty"):
                bad = raw.map(
                    lambda v: isinstance(v, bool) or not isinstance(v, str | int | float | None)
                ).to_numpy()
                if bad.any():
                    row = _first(bad)
                    raise DataError(f"{loc.at(row, column)}: not a number: {raw.iloc[row]!r}")
        numeric = pd.to_numeric(raw, errors="coerce")
        failed = numeric.isna().to_numpy()
        if failed.any():
            row = _first(failed)
            raise DataError(f"{loc.at(row, column)}: {_score_problem(raw.iloc[row])}")
    elif pd.api.types.is_bool_dtype(raw.dtype) or not pd.api.types.is_numeric_dtype(raw.dtype):
        raise DataError(f"{loc.at(0, column)}: expected numbers, got {raw.dtype} values")
    else:
        numeric = raw
    values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.isnan(values)
    if nan.any():
        raise DataError(f"{loc.at(_first(nan), column)}: score is NaN or missing")
    outside = (values < 0.0) | (values > 1.0)
    if outside.any():
        row = _first(outside)
        raise DataError(f"{loc.at(row, column)}: score {float(values[row])!r} is outside [0, 1]")
    return pd.Series(values, name=column)


def _check_annotations(series: pd.Series, column: str, loc: _Locator) -> None:
    bad = first_malformed(series)  # parses only what the well-formedness check rejects
    if bad is not None:
        row, message = bad
        raise DataError(f"{loc.at(row, column)}: {message}")


def validate_hypotheses(
    frame: pd.DataFrame, *, source: str = "<table>", first_line: int = 0
) -> pd.DataFrame:
    """Validate a raw hypothesis frame and return it with canonical dtypes.

    The rules are those of docs/formats.md#hypothesis-table.

    Parameters
    ----------
    frame : pandas.DataFrame
        Raw columns as read from a file or built in memory.
    source : str
        Name used in error messages (usually the file path).
    first_line : int
        Line number of the first data row in a text file (0 if the format has no lines).
    """
    frame, has_refs = _check_columns(frame, source)
    loc = _Locator(source, first_line)
    out = frame.reset_index(drop=True)  # copy-on-write: the caller's frame is never modified
    for column in ("utterance_id", "domain", "intent", "slots"):
        out[column] = _as_str_column(out, column, loc, may_be_empty=column in _MAY_BE_EMPTY)
    for column, default in OPTIONAL_COLUMNS.items():
        if column in out.columns:
            col = _as_str_column(out, column, loc, may_be_empty=True)
            out[column] = col.where(col != "", default) if default else col
        else:
            out[column] = default
    for column in SCORE_COLUMNS:
        out[column] = _as_score_column(out, column, loc)
    if has_refs:
        for column in REFERENCE_COLUMNS:
            out[column] = _as_str_column(out, column, loc, may_be_empty=column in _MAY_BE_EMPTY)

    _check_annotations(out["slots"], "slots", loc)
    if has_refs:
        _check_annotations(out["ref_slots"], "ref_slots", loc)

    for problem in (duplicate_problem(out, loc), reference_problem(out, loc)):
        if problem is not None:
            raise DataError(problem[-1])
    return out


def _check_columns(frame: pd.DataFrame, source: str) -> tuple[pd.DataFrame, bool]:
    """The frame with string column names, and whether it has references; else raise.

    Refuses an empty table, a column named twice, a missing required column, a header without
    rows and an incomplete set of reference columns.
    """
    if len(frame.columns) == 0 and len(frame) == 0:
        raise DataError(f"{source}: file is empty")
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise DataError(f"{source}: column {dup!r} appears more than once")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing required column {missing[0]!r}"
            + (f" (and {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else "")
        )
    if len(frame) == 0:
        raise DataError(f"{source}: the table has a header but no rows")
    present_refs = [c for c in REFERENCE_COLUMNS if c in frame.columns]
    if present_refs and len(present_refs) != len(REFERENCE_COLUMNS):
        absent = [c for c in REFERENCE_COLUMNS if c not in frame.columns]
        raise DataError(
            f"{source}: reference columns come together: has {', '.join(present_refs)} "
            f"but not column {absent[0]!r}"
        )
    return frame, bool(present_refs)


_KEY_SPAN = 2**62  # combined key codes stay below this


def _key_codes(frame: pd.DataFrame) -> np.ndarray | None:
    """One int64 per row, equal exactly when the rows' key columns are equal; ``None`` unless
    every key column is Arrow text without nulls."""
    found = [kept_codes(frame[column]) for column in _KEY]
    if any(f is None for f in found):
        return None
    key = np.zeros(len(frame), dtype=np.int64)
    span = 1
    for codes in (f for f in found if f is not None):
        size = int(codes.max(initial=0)) + 1
        if span > _KEY_SPAN // size:  # the combined key would overflow: renumber it first
            key = pd.factorize(key)[0].astype(np.int64)
            span = int(key.max(initial=0)) + 1
        key = key * size + codes
        span *= size
    return key


def duplicate_problem(frame: pd.DataFrame, loc: RowLocator) -> tuple[int, str] | None:
    """The first row repeating an earlier ``(utterance_id, domain, intent, slots)``, if any.

    Returns ``(row, message)``, ``row`` 0-based in ``frame``; ``None`` if the keys are unique.
    """
    key = _key_codes(frame)
    if key is None:
        duplicated = frame.duplicated(list(_KEY), keep="first").to_numpy()
    else:
        duplicated = pd.Series(key).duplicated(keep="first").to_numpy()
    if not duplicated.any():
        return None
    row = _first(duplicated)
    key = frame.loc[frame.index[row], list(_KEY)]
    same = (frame[list(_KEY)] == key).all(axis=1).to_numpy()
    first = int(np.flatnonzero(same)[0])
    return row, (
        f"{loc.at(row, 'slots')}: duplicated hypothesis (utterance_id, domain, intent, "
        f"slots) = ({key['utterance_id']!r}, {key['domain']!r}, {key['intent']!r}, "
        f"{key['slots']!r}), first at {loc.row(first)}"
    )


def reference_problem(frame: pd.DataFrame, loc: RowLocator) -> tuple[int, int, str] | None:
    """The first row whose reference differs from its utterance's first row, if any.

    Columns are checked in the order of :data:`REFERENCE_COLUMNS`. Returns ``(column index,
    row, message)``; ``None`` if every utterance has one reference (or there are none).
    """
    if not has_references(frame) or len(frame) == 0:
        return None
    codes = factorize(frame["utterance_id"])
    first_of = np.full(int(codes.max()) + 1, len(codes), dtype=np.int64)
    np.minimum.at(first_of, codes, np.arange(len(codes)))
    first_idx = first_of[codes]
    for k, column in enumerate(REFERENCE_COLUMNS):
        values = frame[column]
        ref_codes = factorize(values)  # Arrow strings: no Python object per row
        differs = ref_codes != ref_codes[first_idx]
        if differs.any():
            row = int(np.flatnonzero(differs)[0])
            first = int(first_idx[row])
            return (
                k,
                row,
                (
                    f"{loc.at(row, column)}: reference {values.iloc[row]!r} differs from "
                    f"{values.iloc[first]!r} at {loc.row(first)} of the same utterance "
                    f"{frame['utterance_id'].iloc[row]!r}"
                ),
            )
    return None


def has_references(hypotheses: pd.DataFrame) -> bool:
    """Whether the table carries the reference columns ``ref_domain``, ``ref_intent``, ``ref_slots``."""
    return all(c in hypotheses.columns for c in REFERENCE_COLUMNS)


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` atomically as Parquet, CSV or JSONL, chosen by the extension of ``path``.

    The data are written to a temporary file in the same directory and renamed over ``path``, so
    a failure never leaves a half-written or truncated file behind.
    """
    p = Path(path)
    suffix = _suffix(p)
    parent = p.parent if str(p.parent) else Path(".")
    try:
        if not parent.is_dir():
            raise DataError(f"{p}: directory {parent} does not exist")
        if p.is_dir():
            raise DataError(f"{p}: is a directory")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise DataError(os_error(p, e, doing="cannot write")) from e
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, default_file_mode())  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            if suffix in (".parquet", ".pq"):
                frame.to_parquet(fh, index=False)
            elif suffix == ".csv":
                fh.write(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
            else:
                body = frame.to_json(orient="records", lines=True, force_ascii=False)
                fh.write(body.encode("utf-8"))
                if body and not body.endswith("\n"):
                    fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise DataError(os_error(p, e, doing="cannot write")) from e
        raise
    return p
