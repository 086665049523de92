"""Limits on what a user of a shared server may store and which server folders they may name.

A dashboard session keeps its uploads and the weights it trains or loads in its own workspace
folder. :class:`Quota` bounds that folder (bytes and files); :func:`check_quota` refuses a write
that would exceed it. :func:`confine_path` resolves a folder typed by a user and accepts it only
inside the allowed roots (the data folder and the session's workspace) unless the operator allows
any server path; its refusal says nothing about whether the folder exists.

Operator settings (environment):

``RERANKER_QUOTA_MB``
    Bytes one session may store, in MiB (default 500).
``RERANKER_QUOTA_FILES``
    Files one session may store (default 2000: uploads plus every weights version it publishes).
``RERANKER_ALLOW_SERVER_PATHS``
    ``1`` lets users name any server folder (``reranker dashboard --allow-server-paths``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reranker.errors import DataError

__all__ = [
    "ALLOW_PATHS_ENV",
    "Quota",
    "check_quota",
    "confine_path",
    "safe_upload_name",
    "server_paths_allowed",
    "usage",
]

ALLOW_PATHS_ENV = "RERANKER_ALLOW_SERVER_PATHS"
_UNSAFE = re.compile(r"[^\w .,+=@-]+")


@dataclass(frozen=True)
class Quota:
    """What one session may store: at most ``max_bytes`` bytes in at most ``max_files`` files."""

    max_bytes: int = 500 * 2**20
    max_files: int = 2000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Quota:
        """The operator's quota (``RERANKER_QUOTA_MB``, ``RERANKER_QUOTA_FILES``) or the default."""
        env = os.environ if env is None else env
        default = cls()
        try:
            mb = float(env.get("RERANKER_QUOTA_MB", default.max_bytes / 2**20))
            files = int(env.get("RERANKER_QUOTA_FILES", default.max_files))
        except ValueError as e:
            raise DataError(f"RERANKER_QUOTA_MB / RERANKER_QUOTA_FILES: not a number ({e})") from e
        if not (mb >= 0 and files >= 0):
            raise DataError("RERANKER_QUOTA_MB / RERANKER_QUOTA_FILES must be >= 0")
        return cls(int(mb * 2**20), files)


def usage(directory: str | os.PathLike[str]) -> tuple[int, int]:
    """``(files, bytes)`` stored under ``directory`` (0, 0 when it does not exist)."""
    files = size = 0
    for root, _, names in os.walk(directory):
        for name in names:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            files += 1
            size += info.st_size
    return files, size


def check_quota(
    directory: str | os.PathLike[str], quota: Quota, *, add_files: int, add_bytes: int
) -> None:
    """Refuse storing ``add_files`` more files of ``add_bytes`` bytes under ``directory``.

    Raises
    ------
    DataError
        When the session's quota would be exceeded, saying how much is used and allowed.
    """
    files, size = usage(directory)
    if files + add_files > quota.max_files or size + add_bytes > quota.max_bytes:
        raise DataError(
            f"this session's storage quota is reached ({files} files, {size / 2**20:.1f} MiB "
            f"used; {quota.max_files} files and {quota.max_bytes / 2**20:.0f} MiB allowed): "
            "start a new session or ask the operator to raise RERANKER_QUOTA_MB / RERANKER_QUOTA_FILES"
        )


def safe_upload_name(name: str) -> str:
    """A file name for an upload: its last component, unsafe characters replaced, never hidden.

    The extension (which chooses the reader) is kept; the name is at most about 120 characters.
    """
    base = _UNSAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" ._")
    if len(base) > 120:
        base = base[:100] + Path(base).suffix[:16]
    return base or "upload"


def server_paths_allowed(env: Mapping[str, str] | None = None) -> bool:
    """Whether the operator lets users name any server folder (``RERANKER_ALLOW_SERVER_PATHS=1``)."""
    env = os.environ if env is None else env
    return env.get(ALLOW_PATHS_ENV, "").strip().lower() in ("1", "true", "yes")


def confine_path(
    text: str, roots: Iterable[str | os.PathLike[str]], *, allow_any: bool = False
) -> Path:
    """Resolve a folder a user typed; it must lie inside one of ``roots`` unless ``allow_any``.

    A relative path is taken relative to the first root. Symlinks and ``..`` are resolved before
    the check, and the check runs before anything is looked up, so a refusal is the same whether
    the folder exists or not.

    Raises
    ------
    DataError
        ``"<text>: only folders inside the data folder can be used here"``.
    """
    refusal = DataError(f"{text}: only folders inside the data folder can be used here")
    bases = [Path(os.path.realpath(r)) for r in roots]
    if not text.strip() or "\x00" in text or not bases:
        raise refusal
    try:
        raw = Path(text.strip())
        resolved = Path(os.path.realpath(raw if raw.is_absolute() else bases[0] / raw))
    except (OSError, ValueError) as e:
        raise refusal from e
    if allow_any or any(resolved.is_relative_to(b) for b in bases):
        return resolved
    raise refusal
