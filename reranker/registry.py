"""The weights registry: versioned per-domain weights, atomic publish, rollback.

Formats: docs/formats.md#weights-registry and docs/formats.md#weights-document.

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
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
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
from reranker.features import is_known_feature
from reranker.options import LOSSES

try:  # POSIX advisory locks; elsewhere publishes of one domain must not race
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
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

REQUIRED_KEYS: tuple[str, ...] = (
    "domain",
    "loss",
    "version",
    "features",
    "weights",
    "bias",
    "trained_at",
    "training_data",
    "metrics",
    "options",
)
_VERSION_FILE = re.compile(r"^v(\d{4,})\.json$")
_POINTER_TEXT = re.compile(r"[0-9]{1,9}")  # ASCII digits only ("٣".isdigit() is True)
_TEMP_FILE = re.compile(r"^\.(?:v\d{4,}\.json|CURRENT)\..+\.tmp$")
CURRENT = "CURRENT"
#: Largest accepted absolute value of a weight or bias. Features are bounded (log-scores are
#: clipped at log(1e-6), ranks count hypotheses), so ``|z|`` stays far below float64 overflow;
#: trained re-rankers have weights of order 1 to 100.
MAX_WEIGHT = 1e6
#: Longest domain name, in characters (a domain is a directory name in a registry).
MAX_DOMAIN_NAME = 100
#: A hidden temporary file of a publish older than this (seconds) is removed by the next publish
#: of its domain, under the domain's lock (so it cannot belong to a publish in progress).
STALE_TEMP_SECONDS = 600.0


def _finite_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _weight(value: object) -> bool:
    """A usable weight or bias: a finite number with ``|value| <= MAX_WEIGHT``."""
    return _finite_number(value) and abs(float(value)) <= MAX_WEIGHT  # type: ignore[arg-type]


def _is_domain_name(name: str) -> bool:
    try:
        check_domain_name(name)
    except WeightsError:
        return False
    return True


def check_domain_name(domain: object, *, source: str | None = None) -> str:
    """The one rule for domain names: usable as a single path component, everywhere.

    Non-empty, at most :data:`MAX_DOMAIN_NAME` characters, not starting with ``.`` (no ``..``,
    no hidden directory), without ``/``, ``\\``, NUL or any other control character.

    Raises
    ------
    WeightsError
        Naming ``source`` (when given) and the rejected name.
    """
    ok = (
        isinstance(domain, str)
        and 0 < len(domain) <= MAX_DOMAIN_NAME
        and not domain.startswith(".")
        and not any(c in "/\\" or not c.isprintable() for c in domain)
    )
    if not ok:
        prefix = f"{source}: " if source else ""
        raise WeightsError(
            f"{prefix}domain name {str(domain)[: MAX_DOMAIN_NAME + 20]!r} cannot be stored in a "
            f"registry (it must be 1 to {MAX_DOMAIN_NAME} printable characters, not start with "
            "'.', and contain no '/' or '\\')"
        )
    assert isinstance(domain, str)
    return domain


def validate_weights_document(document: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Check a weights document (docs/formats.md#weights-document) and the features it names.

    Parameters
    ----------
    document : mapping
        A parsed weights JSON.
    source : str
        Where it came from, for error messages (a file path).

    Returns
    -------
    dict
        A copy of the document with ``weights`` and ``bias`` as floats.

    Raises
    ------
    WeightsError
        Naming ``source`` and the offending key.
    """
    if not isinstance(document, Mapping):
        raise WeightsError(f"{source}: a weights document must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in document]
    if missing:
        raise WeightsError(f"{source}: missing key(s) {', '.join(map(repr, missing))}")
    doc = dict(document)
    if not isinstance(doc["domain"], str) or not doc["domain"]:
        raise WeightsError(f"{source}: 'domain' must be a non-empty string")
    check_domain_name(doc["domain"], source=source)
    if doc["loss"] not in LOSSES:
        raise WeightsError(
            f"{source}: 'loss' must be one of {', '.join(LOSSES)}, got {doc['loss']!r}"
        )
    version = doc["version"]
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or version < 1
    ):
        raise WeightsError(f"{source}: 'version' must be a positive integer, got {version!r}")
    features = doc["features"]
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise WeightsError(f"{source}: 'features' must be a list of feature names")
    if len(set(features)) != len(features):
        raise WeightsError(f"{source}: 'features' names a feature twice")
    unknown = [f for f in features if not is_known_feature(f)]
    if unknown:
        raise WeightsError(
            f"{source}: feature(s) {', '.join(map(repr, unknown))} are not computed by this "
            "version of reranker (register them or retrain)"
        )
    weights = doc["weights"]
    if not isinstance(weights, list) or not all(_weight(w) for w in weights):
        raise WeightsError(
            f"{source}: 'weights' must be a list of finite numbers within ±{MAX_WEIGHT:g}"
        )
    if len(weights) != len(features):
        raise WeightsError(f"{source}: {len(weights)} weights for {len(features)} features")
    if not _weight(doc["bias"]):
        raise WeightsError(f"{source}: 'bias' must be a finite number within ±{MAX_WEIGHT:g}")
    if not isinstance(doc["trained_at"], str):
        raise WeightsError(f"{source}: 'trained_at' must be a string")
    td = doc["training_data"]
    if not isinstance(td, Mapping) or not {"sha256", "n_utterances", "n_hypotheses"} <= set(td):
        raise WeightsError(
            f"{source}: 'training_data' must hold sha256, n_utterances and n_hypotheses"
        )
    for key in ("metrics", "options"):
        if not isinstance(doc[key], Mapping):
            raise WeightsError(f"{source}: {key!r} must be an object")
    doc["weights"] = [float(w) for w in weights]
    doc["bias"] = float(doc["bias"])
    return doc


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
            if not name.startswith(".") and _is_domain_name(name) and self.versions(name)
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
        directory = self._dir(domain)
        with self._lock(directory) if directory.is_dir() else contextlib.nullcontext():
            current = self.current_version(domain)
            if current is None:
                raise WeightsError(f"{self.path}: no published weights for domain {domain!r}")
            older = [v for v in self.versions(domain) if v < current]
            if not older:
                raise WeightsError(
                    f"{self.path}: domain {domain!r} is at its first version v{current}; "
                    "nothing to roll back to"
                )
            target = older[-1]
            self.load(domain, target)
            _write_atomic(directory, CURRENT, f"{target}\n".encode(), overwrite=True)
        return target

    def roll_forward(self, domain: str) -> int:
        """Point ``CURRENT`` at the lowest version above the current one (undo a rollback)."""
        directory = self._dir(domain)
        with self._lock(directory) if directory.is_dir() else contextlib.nullcontext():
            current = self.current_version(domain)
            if current is None:
                raise WeightsError(f"{self.path}: no published weights for domain {domain!r}")
            newer = [v for v in self.versions(domain) if v > current]
            if not newer:
                raise WeightsError(
                    f"{self.path}: domain {domain!r} is at its latest version v{current}; "
                    "nothing to roll forward to"
                )
            target = newer[0]
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


def compare_documents(
    a: Mapping[str, Any], b: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two weights documents side by side: their weights and their recorded metrics/options.

    Returns ``(weights, facts)``: ``weights`` has ``feature, a, b, change`` over the union of
    both feature lists (bias last; a feature one version lacks is ``nan``); ``facts`` has
    ``item, a, b`` for the version, loss, training time and data, every metric and option.
    """

    def as_map(doc: Mapping[str, Any]) -> dict[str, float]:
        out = {str(n): float(w) for n, w in zip(doc["features"], doc["weights"], strict=True)}
        out["bias"] = float(doc["bias"])
        return out

    wa, wb = as_map(a), as_map(b)
    names = [*dict.fromkeys([*a["features"], *b["features"]]), "bias"]
    weights = pd.DataFrame(
        {
            "feature": names,
            "a": [wa.get(n, np.nan) for n in names],
            "b": [wb.get(n, np.nan) for n in names],
        }
    )
    weights["change"] = weights["b"] - weights["a"]

    def facts_of(doc: Mapping[str, Any]) -> dict[str, Any]:
        f: dict[str, Any] = {
            "version": doc.get("version"),
            "loss": doc.get("loss"),
            "trained_at": doc.get("trained_at"),
        }
        for group in ("training_data", "metrics", "options"):
            for k, v in (doc.get(group) or {}).items():
                f[f"{group}.{k}"] = v
        return f

    fa, fb = facts_of(a), facts_of(b)
    items = list(dict.fromkeys([*fa, *fb]))
    facts = pd.DataFrame(
        {
            "item": items,
            "a": [str(fa.get(k, "")) for k in items],
            "b": [str(fb.get(k, "")) for k in items],
        }
    )
    return weights, facts
