"""The file-access layer: every read of a user file and every JSON parse goes through here.

A file the user names can be anything: missing, a directory, a symlink to an endless device, a
path whose components are too long, unreadable, not UTF-8, JSON nested thousands of levels deep.
Each of these becomes one project error naming the file, never a traceback:

- :func:`read_file_bytes` reads regular files only (a device, pipe or socket is refused before
  any byte is read), optionally bounded in size, and turns every :class:`OSError` into an error
  naming the path;
- :func:`parse_json` turns every way ``json.loads`` can fail (syntax, nesting too deep, numbers
  too long, duplicated keys) into one error naming the source and, where known, line and column;
- :func:`read_json_file` is the two together.

Size limits (bytes) for files that no real use needs to be large:
:data:`POINTER_LIMIT` (a registry ``CURRENT`` pointer) and :data:`DOCUMENT_LIMIT` (a weights
document, an NLU manifest or settings file, a domain map, a settings overrides file).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from reranker.errors import DataError, RerankerError

__all__ = [
    "DOCUMENT_LIMIT",
    "POINTER_LIMIT",
    "check_suffix",
    "decode_utf8",
    "default_file_mode",
    "json_object_lines",
    "os_error",
    "parse_json",
    "read_csv_text",
    "read_file_bytes",
    "read_json_file",
    "staged_directory",
]

POINTER_LIMIT = 64
DOCUMENT_LIMIT = 8 * 1024 * 1024

ErrorType = Callable[[str], RerankerError]


def default_file_mode() -> int:
    """The mode a plainly created file gets (0o666 less the umask); mkstemp's is 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def os_error(path: object, error: OSError, *, doing: str = "cannot read") -> str:
    """One-line description of an :class:`OSError` on ``path``: ``"<path>: <doing> (<reason>)"``."""
    reason = error.strerror or " ".join(str(error).split()) or type(error).__name__
    return f"{path}: {doing} ({reason})"


def read_file_bytes(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    limit: int | None = None,
    error: ErrorType = DataError,
) -> bytes:
    """Read a regular file whole.

    Parameters
    ----------
    path : str or path-like
        The file. Symlinks are followed, but what they lead to must be a regular file.
    what : str
        What the file should be, for messages (``"weights document"``).
    limit : int, optional
        Largest accepted size in bytes; a larger file is refused before it is read.
    error : callable
        The project error class raised (``DataError``, ``WeightsError``, ``ModelError``).

    Raises
    ------
    RerankerError
        Of type ``error``, naming the path: missing, a directory, not a regular file, too large,
        or any operating-system error (permissions, a name too long, ...).
    """
    p = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as e:
        raise error(f"{p}: no such file") from e
    except IsADirectoryError as e:
        raise error(f"{p}: is a directory, not a {what}") from e
    except OSError as e:
        raise error(os_error(p, e)) from e
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{p}: is a directory, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{p}: not a regular file (a device, pipe or socket is not a {what})")
        if limit is not None and info.st_size > limit:
            raise error(_too_large(p, what, limit))
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read() if limit is None else f.read(limit + 1)
    except OSError as e:
        raise error(os_error(p, e)) from e
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:
        raise error(_too_large(p, what, limit))
    return data


def _too_large(path: Path, what: str, limit: int) -> str:
    return f"{path}: too large for a {what} (more than {limit:,} bytes)"


def decode_utf8(path: object, data: bytes, *, error: ErrorType = DataError) -> str:
    """Decode a text file's bytes as UTF-8 (a leading BOM is dropped).

    Raises
    ------
    RerankerError
        Of type ``error``, naming the file and the line of the first undecodable byte.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(
            f"{path}: line {line}: bytes are not valid UTF-8 (byte offset {e.start})"
        ) from e


class _DuplicateKeyError(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return out


def parse_json(
    text: str | bytes, *, source: object, error: ErrorType = DataError, line: int | None = None
) -> Any:
    """``json.loads`` whose every failure is one project error naming ``source``.

    Syntax errors (with line and column), nesting too deep for the parser, integers too long to
    convert and keys that appear twice in one object are all reported, never raised as-is.
    ``line`` is the line of ``text`` in its file when ``text`` is one line of a JSONL file.
    """
    where = f"{source}: line {line}" if line is not None else f"{source}"
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as e:
        at = f"{source}: line {line}" if line is not None else f"{source}: line {e.lineno}"
        raise error(f"{at}, column {e.colno}: invalid JSON ({e.msg})") from e
    except _DuplicateKeyError as e:
        raise error(f"{where}: invalid JSON (key {e.args[0]!r} appears twice in one object)") from e
    except RecursionError as e:
        raise error(f"{where}: invalid JSON (nested too deeply)") from e
    except (ValueError, UnicodeDecodeError) as e:  # e.g. an integer of 5000 digits
        raise error(f"{where}: invalid JSON ({' '.join(str(e).split())[:200]})") from e


def read_json_file(
    path: str | os.PathLike[str],
    *,
    what: str,
    error: ErrorType = DataError,
    limit: int | None = DOCUMENT_LIMIT,
    suffix: str | None = ".json",
) -> Any:
    """Read and parse a JSON file, with one-line errors naming ``what`` it should have been.

    The file must be a regular UTF-8 file of at most ``limit`` bytes (and, unless ``suffix`` is
    ``None``, have that extension).
    """
    p = Path(path)
    if suffix is not None and p.suffix.lower() != suffix:
        raise error(f"{p}: unknown {what} format {p.suffix or '(no extension)'!r}; use {suffix}")
    data = read_file_bytes(p, what=what, limit=limit, error=error)
    return parse_json(decode_utf8(p, data, error=error), source=p, error=error)


def check_suffix(
    path: Path, suffixes: Sequence[str], *, what: str, no_suffix: str, advice: str
) -> str:
    """``path``'s lower-case suffix if it is one of ``suffixes``, else a :class:`DataError`.

    The message reads ``"<path>: unknown <what> '<suffix or no_suffix>'; <advice>"``.
    """
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise DataError(f"{path}: unknown {what} {path.suffix or no_suffix!r}; {advice}")
    return suffix


def json_object_lines(path: object, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of every non-blank line of a JSONL text, in order.

    A line that is not valid JSON or not a JSON object is a :class:`DataError` naming its line.
    """
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = parse_json(line, source=path, line=lineno)
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {lineno}: expected a JSON object, got {line[:40]!r}")
        yield lineno, record


def read_csv_text(path: object, text: str, *, empty: str) -> pd.DataFrame:
    """A CSV text as a frame of strings (nothing read as missing); ``empty`` names an empty one.

    An empty text is the :class:`DataError` ``"<path>: <empty>"``; a malformed one names the
    parser's complaint on one line.
    """
    try:
        return pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, engine="c"
        )
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path}: {empty}") from e
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: malformed CSV: {' '.join(str(e).split())}") from e


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``target`` that replaces ``target`` when the block succeeds.

    Build the folder's content inside the block. When it ends without an error the previous
    ``target`` (if any) is removed and the new folder renamed into place; on any error,
    interrupts included, the new folder is removed and ``target`` is left as it was.
    """
    parent = target.parent if str(target.parent) else Path(".")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
