"""The weights registry: versioned per-domain weights, atomic publish, rollback.

Formats: docs/formats.md#weights-registry; the document itself and its checks are in
:mod:`reranker.weights_document`.

Layout of a registry directory ``WEIGHTS``::

    WEIGHTS/<Domain>/v0001.json    one weights document per domain and version
    WEIGHTS/<Domain>/v0002.json
    WEIGHTS/<Domain>/CURRENT       the current version number of the domain, e.g. "2"

Every domain lives in its own directory and is versioned independently: publishing or rolling
back Music never opens a file of Books. Publishing writes the document to a temporary file in the
domain's directory, fsyncs it and renames it to the next free version (never over an existing
one), then replaces ``CURRENT`` the same way. A crash at any point leaves the previous
``CURRENT`` (hence the previous version) in force; at worst an unreferenced version file or a
hidden temporary file remains. Concurrent publishers of one domain are serialised by an advisory
lock on ``WEIGHTS/<Domain>/.lock``; publishers of different domains never contend.

Rollback moves ``CURRENT`` to the highest existing version below it; the newer files are kept,
and the next publish still takes a fresh number.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from reranker._files import (
    DOCUMENT_LIMIT,
    POINTER_LIMIT,
    decode_utf8,
    default_file_mode,
    os_error,
    parse_json,
    read_file_bytes,
)
from reranker.errors import WeightsError
from reranker.weights_document import (
    MAX_DOMAIN_NAME,
    MAX_WEIGHT,
    REQUIRED_KEYS,
    check_domain_name,
    compare_documents,
    is_domain_name,
    validate_weights_document,
)

try:  # POSIX advisory locks; elsewhere publishes of one domain must not race
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CURRENT",
    "MAX_DOMAIN_NAME",
    "MAX_WEIGHT",
    "REQUIRED_KEYS",
    "STALE_TEMP_SECONDS",
    "WeightsRegistry",
    "check_domain_name",
    "compare_documents",
    "registry_table",
    "validate_weights_document",
]

_VERSION_FILE = re.compile(r"^v(\d{4,})\.json$")
_POINTER_TEXT = re.compile(r"[0-9]{1,9}")  # ASCII digits only ("٣".isdigit() is True)
_TEMP_FILE = re.compile(r"^\.(?:v\d{4,}\.json|CURRENT)\..+\.tmp$")
CURRENT = "CURRENT"
#: A hidden temporary file of a publish older than this (seconds) is removed by the next publish
#: of its domain, under the domain's lock (so it cannot belong to a publish in progress).
STALE_TEMP_SECONDS = 600.0


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(directory: Path, name: str, data: bytes, *, overwrite: bool) -> None:
    """Write ``directory/name`` via a fsynced temporary file and a rename."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise WeightsError(os_error(directory, e, doing="cannot write")) from e
    try:
        os.chmod(tmp, default_file_mode())  # mkstemp creates 0600; publish readable files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        target = directory / name
        if not overwrite and target.exists():
            raise WeightsError(f"{target}: already exists; versions are never overwritten")
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise WeightsError(os_error(directory / name, e, doing="cannot write")) from e
        raise
    _fsync_dir(directory)


def _dumps(document: Mapping[str, Any], *, source: str) -> bytes:
    try:
        text = json.dumps(document, indent=2, sort_keys=False, allow_nan=False)
    except (TypeError, ValueError) as e:  # NaN or infinity in the metrics, an unknown type
        raise WeightsError(f"{source}: cannot be stored as JSON ({e})") from e
    return (text + "\n").encode()


def _remove_stale_temporaries(directory: Path, *, older_than: float = STALE_TEMP_SECONDS) -> None:
    """Delete the hidden temporaries that killed publishes left in a domain directory.

    Called with the domain's lock held: every publish writes its temporaries under that lock, so
    none of those found can belong to a publish in progress; the age bound is a second guard.
    """
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if not _TEMP_FILE.match(entry.name):
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and (
                    now - entry.stat(follow_symlinks=False).st_mtime > older_than
                ):
                    os.unlink(entry.path)


class WeightsRegistry:
    """A weights directory: per-domain versions and current pointers.

    The layout is docs/formats.md#weights-registry.

    Parameters
    ----------
    path : str or os.PathLike
        The registry directory; created on the first publish.

    Examples
    --------
    >>> reg = WeightsRegistry("weights")  # doctest: +SKIP
    >>> version = reg.publish("Music", document)  # doctest: +SKIP
    >>> reg.load("Music")["version"] == version  # doctest: +SKIP
    True
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            is_other = self.path.exists() and not self.path.is_dir()
        except OSError as e:
            raise WeightsError(os_error(self.path, e, doing="cannot open")) from e
        if is_other:
            raise WeightsError(f"{self.path}: not a weights directory")

    def __repr__(self) -> str:
        return f"WeightsRegistry({str(self.path)!r})"

    def _dir(self, domain: str) -> Path:
        return self.path / check_domain_name(domain)

    def domains(self) -> list[str]:
        """Domains with at least one published version, sorted."""
        try:
            if not self.path.is_dir():
                return []
            names = [p.name for p in self.path.iterdir() if p.is_dir()]
        except OSError as e:
            raise WeightsError(os_error(self.path, e, doing="cannot list")) from e
        return sorted(
            name
            for name in names
            if not name.startswith(".") and is_domain_name(name) and self.versions(name)
        )

    def versions(self, domain: str) -> list[int]:
        """Published version numbers of ``domain``, ascending (empty if none)."""
        d = self._dir(domain)
        try:
            if not d.is_dir():
                return []
            found = [_VERSION_FILE.match(p.name) for p in d.iterdir()]
        except OSError as e:
            raise WeightsError(os_error(d, e, doing="cannot list")) from e
        return sorted(int(m.group(1)) for m in found if m)

    def current_version(self, domain: str) -> int | None:
        """The version ``CURRENT`` points to, or ``None`` if the domain has none."""
        pointer = self._dir(domain) / CURRENT
        try:
            data = read_file_bytes(
                pointer, what="version pointer", limit=POINTER_LIMIT, error=WeightsError
            )
        except WeightsError:
            if not os.path.lexists(pointer):
                return None
            raise
        text = decode_utf8(pointer, data, error=WeightsError).strip()
        if not _POINTER_TEXT.fullmatch(text) or int(text) < 1:
            raise WeightsError(f"{pointer}: expected a version number, found {text[:40]!r}")
        version = int(text)
        if not self.version_path(domain, version).is_file():
            raise WeightsError(f"{pointer}: points to v{version:04d}.json, which does not exist")
        return version

    def version_path(self, domain: str, version: int) -> Path:
        """Path of one version's document."""
        return self._dir(domain) / f"v{int(version):04d}.json"

    def load(self, domain: str, version: int | None = None) -> dict[str, Any]:
        """Read and validate a domain's current (or given) version.

        Raises
        ------
        WeightsError
            If the domain or version does not exist or the document is invalid.
        """
        if version is None:
            version = self.current_version(domain)
            if version is None:
                raise WeightsError(f"{self.path}: no published weights for domain {domain!r}")
        path = self.version_path(domain, version)
        if not os.path.lexists(path):
            known = ", ".join(f"v{v}" for v in self.versions(domain)) or "none"
            raise WeightsError(
                f"{path}: no version {version} of domain {domain!r} (versions: {known})"
            )
        data = read_file_bytes(
            path, what="weights document", limit=DOCUMENT_LIMIT, error=WeightsError
        )
        text = decode_utf8(path, data, error=WeightsError)
        document = parse_json(text, source=path, error=WeightsError)
        doc = validate_weights_document(document, source=str(path))
        if doc["domain"] != domain:
            raise WeightsError(f"{path}: document is for domain {doc['domain']!r}, not {domain!r}")
        if doc["version"] != version:
            raise WeightsError(f"{path}: document says version {doc['version']!r}")
        return doc

    @contextlib.contextmanager
    def _lock(self, directory: Path) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        try:
            fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise WeightsError(os_error(directory, e, doing="cannot lock")) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def publish(self, domain: str, document: Mapping[str, Any]) -> int:
        """Store ``document`` as the domain's next version and make it current.

        The document's ``version`` is set to the new number. Returns that number.
        """
        check_domain_name(domain)
        doc = dict(document)
        doc["domain"] = doc.get("domain", domain)
        if doc["domain"] != domain:
            raise WeightsError(
                f"cannot publish a document of domain {doc['domain']!r} as {domain!r}"
            )
        doc["version"] = None
        validate_weights_document(doc, source=f"document for {domain!r}")
        directory = self._dir(domain)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WeightsError(os_error(directory, e, doing="cannot create")) from e
        with self._lock(directory):
            existing = self.versions(domain)
            version = (existing[-1] if existing else 0) + 1
            doc["version"] = version
            ordered = {k: doc[k] for k in REQUIRED_KEYS}
            ordered.update({k: v for k, v in doc.items() if k not in ordered})
            data = _dumps(ordered, source=f"document for {domain!r}")
            _remove_stale_temporaries(directory)
            _write_atomic(directory, f"v{version:04d}.json", data, overwrite=False)
            _write_atomic(directory, CURRENT, f"{version}\n".encode(), overwrite=True)
        return version

    def rollback(self, domain: str) -> int:
        """Point ``CURRENT`` at the highest version below the current one; return it."""
        return self._move_current(domain, forward=False)

    def roll_forward(self, domain: str) -> int:
        """Point ``CURRENT`` at the lowest version above the current one (undo a rollback)."""
        return self._move_current(domain, forward=True)

    def _move_current(self, domain: str, *, forward: bool) -> int:
        """Point ``CURRENT`` at the next version up (``forward``) or down; return it."""
        directory = self._dir(domain)
        with self._lock(directory) if directory.is_dir() else contextlib.nullcontext():
            current = self.current_version(domain)
            if current is None:
                raise WeightsError(f"{self.path}: no published weights for domain {domain!r}")
            versions = self.versions(domain)
            if forward:
                targets, end, verb = [v for v in versions if v > current], "latest", "forward"
            else:
                targets, end, verb = [v for v in versions if v < current][::-1], "first", "back"
            if not targets:
                raise WeightsError(
                    f"{self.path}: domain {domain!r} is at its {end} version v{current}; "
                    f"nothing to roll {verb} to"
                )
            target = targets[0]
            self.load(domain, target)
            _write_atomic(directory, CURRENT, f"{target}\n".encode(), overwrite=True)
        return target


def registry_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per domain of a weights registry: current version, versions and training facts.

    Columns: ``domain, current, versions, loss, trained_at, n_hypotheses, converged,
    n_iter, objective``.
    """
    registry = WeightsRegistry(path)
    records = []
    for d in registry.domains():
        current = registry.current_version(d)
        doc = registry.load(d) if current is not None else {}
        m = doc.get("metrics", {})
        records.append(
            {
                "domain": d,
                "current": current,
                "versions": ", ".join(f"v{v}" for v in registry.versions(d)),
                "loss": str(doc.get("loss", "")).upper(),
                "trained_at": doc.get("trained_at"),
                "n_hypotheses": doc.get("training_data", {}).get("n_hypotheses"),
                "converged": m.get("converged"),
                "n_iter": m.get("n_iter"),
                "objective": m.get("objective"),
            }
        )
    columns = [
        "domain", "current", "versions", "loss", "trained_at",
        "n_hypotheses", "converged", "n_iter", "objective",
    ]  # fmt: skip
    return pd.DataFrame(records, columns=columns)
