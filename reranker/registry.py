"""The weights registry (SPEC §2): versioned per-domain weights, atomic publish, rollback.

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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from reranker._files import default_file_mode
from reranker.errors import WeightsError
from reranker.features import feature_matrix, is_known_feature
from reranker.losses import LOSSES
from reranker.ranking import r0_score
from reranker.scoring import Scoring

try:  # POSIX advisory locks; elsewhere publishes of one domain must not race
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "REQUIRED_KEYS",
    "WeightsRegistry",
    "contributions",
    "document_logits",
    "score_with_registry",
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
CURRENT = "CURRENT"


def _finite_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def validate_weights_document(document: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Check a weights document against SPEC §2 and the features this code computes.

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
    if not isinstance(weights, list) or not all(_finite_number(w) for w in weights):
        raise WeightsError(f"{source}: 'weights' must be a list of finite numbers")
    if len(weights) != len(features):
        raise WeightsError(f"{source}: {len(weights)} weights for {len(features)} features")
    if not _finite_number(doc["bias"]):
        raise WeightsError(f"{source}: 'bias' must be a finite number")
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


def _check_domain_name(domain: str) -> str:
    if (
        not isinstance(domain, str)
        or not domain
        or domain.startswith(".")
        or any(c in domain for c in "/\\\x00")
    ):
        raise WeightsError(
            f"domain name {domain!r} cannot be stored in a registry "
            "(it must be non-empty, not start with '.', and contain no '/' or '\\')"
        )
    return domain


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(directory: Path, name: str, data: bytes, *, overwrite: bool) -> None:
    """Write ``directory/name`` via a fsynced temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
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
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _dumps(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n").encode()


class WeightsRegistry:
    """A weights directory: per-domain versions and current pointers (SPEC §2).

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
        if self.path.exists() and not self.path.is_dir():
            raise WeightsError(f"{self.path}: not a weights directory")

    def __repr__(self) -> str:
        return f"WeightsRegistry({str(self.path)!r})"

    def _dir(self, domain: str) -> Path:
        return self.path / _check_domain_name(domain)

    def domains(self) -> list[str]:
        """Domains with at least one published version, sorted."""
        if not self.path.is_dir():
            return []
        return sorted(
            p.name
            for p in self.path.iterdir()
            if p.is_dir() and not p.name.startswith(".") and self.versions(p.name)
        )

    def versions(self, domain: str) -> list[int]:
        """Published version numbers of ``domain``, ascending (empty if none)."""
        d = self._dir(domain)
        if not d.is_dir():
            return []
        found = (_VERSION_FILE.match(p.name) for p in d.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def current_version(self, domain: str) -> int | None:
        """The version ``CURRENT`` points to, or ``None`` if the domain has none."""
        pointer = self._dir(domain) / CURRENT
        try:
            text = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise WeightsError(f"{pointer}: cannot read ({e.strerror})") from e
        if not text.isdigit() or int(text) < 1:
            raise WeightsError(f"{pointer}: expected a version number, found {text[:40]!r}")
        version = int(text)
        if not (self._dir(domain) / f"v{version:04d}.json").is_file():
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
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            known = ", ".join(f"v{v}" for v in self.versions(domain)) or "none"
            raise WeightsError(
                f"{path}: no version {version} of domain {domain!r} (versions: {known})"
            ) from e
        except (OSError, UnicodeDecodeError) as e:
            raise WeightsError(f"{path}: cannot read: {e}") from e
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as e:
            raise WeightsError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from e
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
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
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
        _check_domain_name(domain)
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
            raise WeightsError(f"{directory}: cannot create ({e.strerror})") from e
        with self._lock(directory):
            existing = self.versions(domain)
            version = (existing[-1] if existing else 0) + 1
            doc["version"] = version
            ordered = {k: doc[k] for k in REQUIRED_KEYS}
            ordered.update({k: v for k, v in doc.items() if k not in ordered})
            _write_atomic(directory, f"v{version:04d}.json", _dumps(ordered), overwrite=False)
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


def document_logits(hypotheses: pd.DataFrame, document: Mapping[str, Any]) -> NDArray[np.float64]:
    """``z = w · φ(h) + b`` of every row with one domain's weights document."""
    X = feature_matrix(hypotheses, document["features"])
    return X @ np.asarray(document["weights"], dtype=np.float64) + float(document["bias"])


def contributions(hypotheses: pd.DataFrame, document: Mapping[str, Any]) -> pd.DataFrame:
    """Each feature's contribution ``value * weight`` to the logit of every row, plus the bias.

    Parameters
    ----------
    hypotheses : pandas.DataFrame
        Validated hypothesis rows (usually of the document's domain).
    document : mapping
        A weights document (:meth:`WeightsRegistry.load`).

    Returns
    -------
    pandas.DataFrame
        One column per feature, then ``bias``, ``logit`` (their sum) and ``score``
        (``sigmoid(logit)``), indexed like ``hypotheses``.
    """
    doc = validate_weights_document(document, source=f"weights of {document.get('domain')!r}")
    X = feature_matrix(hypotheses, doc["features"])
    parts = X * np.asarray(doc["weights"], dtype=np.float64)
    frame = pd.DataFrame(parts, columns=list(doc["features"]), index=hypotheses.index)
    frame["bias"] = doc["bias"]
    frame["logit"] = parts.sum(axis=1) + doc["bias"]
    frame["score"] = expit(frame["logit"].to_numpy())
    return frame


def score_with_registry(hypotheses: pd.DataFrame, path: str | os.PathLike[str]) -> Scoring:
    """Score a table with the current weights of each domain in a registry.

    Rows of a domain with published weights get ``sigmoid(w · φ(h) + b)``; rows of a domain
    without weights keep the R0 product and are reported with source ``"r0"``.

    Raises
    ------
    WeightsError
        If ``path`` holds no weights at all, or a current document is invalid.
    """
    registry = WeightsRegistry(path)
    available = set(registry.domains())
    if not available:
        raise WeightsError(f"{registry.path}: no published weights (not a weights registry?)")
    domain = hypotheses["domain"].to_numpy(dtype=object)
    score = r0_score(hypotheses).copy()
    source: dict[str, str] = {}
    for d in sorted(set(domain)):
        if d not in available or registry.current_version(d) is None:
            source[d] = "r0"
            continue
        doc = registry.load(d)
        mask = domain == d
        score[mask] = expit(document_logits(hypotheses.loc[mask], doc))
        source[d] = f"{doc['loss']} v{doc['version']}"
    return Scoring(score, source)
