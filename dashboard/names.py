"""Names the dashboard derives from files: cache tokens of tables and registries, download names.

A table is keyed on its path, modification time and size, a weights registry on its ``CURRENT``
pointers, so training or rollback invalidates exactly what depends on them.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

__all__ = ["registry_fingerprint", "safe_file_name", "table_token"]


def table_token(path: str | os.PathLike[str]) -> str:
    """``path|mtime|size``: the cache key of a table (changes when the table changes).

    For a partitioned dataset (a directory of parts) mtime and size are replaced by a
    fingerprint of every part's relative path, modification time and size.
    """
    p = Path(path)
    if p.is_dir():
        digest = hashlib.sha1()
        for part in sorted(f for f in p.rglob("*") if f.is_file()):
            stat = part.stat()
            digest.update(f"{part.relative_to(p)}|{stat.st_mtime_ns}|{stat.st_size}\n".encode())
        return f"{p}|dir|{digest.hexdigest()}"
    stat = p.stat()
    return f"{p}|{stat.st_mtime_ns}|{stat.st_size}"


def registry_fingerprint(path: str | os.PathLike[str] | None) -> str:
    """A cheap token that changes whenever a weights registry publishes or rolls back.

    Reads only the per-domain ``CURRENT`` pointers (and their modification times), so a cache
    keyed on it is invalidated by training and rollback but not by unrelated reruns.
    """
    if path is None:
        return "r0"
    p = Path(path)
    if not p.is_dir():
        return f"missing:{p}"
    digest = hashlib.sha1(str(p.resolve()).encode())
    for pointer in sorted(p.glob("*/CURRENT")):
        try:
            digest.update(pointer.parent.name.encode() + b"=" + pointer.read_bytes())
            digest.update(str(pointer.stat().st_mtime_ns).encode())
        except OSError:
            continue
    return digest.hexdigest()


def safe_file_name(text: str) -> str:
    """A file-name-safe slug of ``text`` for downloads."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    return slug or "data"
