"""Small file-system helpers shared by the writers of tables and weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reranker.errors import DataError


def default_file_mode() -> int:
    """The mode a plainly created file gets (0o666 less the umask); mkstemp's is 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def decode_utf8(path: Path, data: bytes) -> str:
    """Decode a text file's bytes as UTF-8 (a leading BOM is dropped).

    Raises
    ------
    DataError
        Naming the file and the line of the first undecodable byte.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line}: bytes are not valid UTF-8 (byte offset {e.start})"
        ) from e


def read_json_file(path: Path, *, what: str) -> Any:
    """Parse a ``.json`` file, with one-line errors naming ``what`` it should have been."""
    if path.suffix.lower() != ".json":
        raise DataError(
            f"{path}: unknown {what} format {path.suffix or '(no extension)'!r}; use .json"
        )
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
