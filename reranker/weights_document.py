"""The weights document: its keys, the rules it must follow, and two documents side by side.

A weights document is one domain's trained re-ranker as JSON (docs/formats.md#weights-document):
its features, weights and bias, how and on what it was trained. :func:`validate_weights_document`
is the one check every reader and writer of a document calls (the registry, the scoring path, the
dashboard's upload); :func:`check_domain_name` is the one rule for domain names, which are
directory names in a registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from reranker.errors import WeightsError
from reranker.features import is_known_feature
from reranker.options import LOSSES

__all__ = [
    "MAX_DOMAIN_NAME",
    "MAX_WEIGHT",
    "REQUIRED_KEYS",
    "check_domain_name",
    "compare_documents",
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
#: Largest accepted absolute value of a weight or bias. Features are bounded (log-scores are
#: clipped at log(1e-6), ranks count hypotheses), so ``|z|`` stays far below float64 overflow;
#: trained re-rankers have weights of order 1 to 100.
MAX_WEIGHT = 1e6
#: Longest domain name, in characters (a domain is a directory name in a registry).
MAX_DOMAIN_NAME = 100


def _finite_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _weight(value: object) -> bool:
    """A usable weight or bias: a finite number with ``|value| <= MAX_WEIGHT``."""
    return _finite_number(value) and abs(float(value)) <= MAX_WEIGHT  # type: ignore[arg-type]


def check_domain_name(domain: object, *, source: str | None = None) -> str:
    """The one rule for domain names: usable as a single path component, everywhere.

    Non-empty, at most :data:`MAX_DOMAIN_NAME` characters, not starting with ``.`` (no ``..``,
    no hidden directory), without ``/``, ``\\``, NUL or any other control character.

    Raises
    ------
    WeightsError
        Naming ``source`` (when given) and the rejected name.
    """
    if (
        isinstance(domain, str)
        and 0 < len(domain) <= MAX_DOMAIN_NAME
        and not domain.startswith(".")
        and not any(c in "/\\" or not c.isprintable() for c in domain)
    ):
        return domain
    prefix = f"{source}: " if source else ""
    raise WeightsError(
        f"{prefix}domain name {str(domain)[: MAX_DOMAIN_NAME + 20]!r} cannot be stored in a "
        f"registry (it must be 1 to {MAX_DOMAIN_NAME} printable characters, not start with "
        "'.', and contain no '/' or '\\')"
    )


def is_domain_name(name: str) -> bool:
    """Whether ``name`` passes :func:`check_domain_name`."""
    try:
        check_domain_name(name)
    except WeightsError:
        return False
    return True


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
    _check_identity(doc, source)
    _check_features(doc["features"], source)
    _check_coefficients(doc, source)
    _check_records(doc, source)
    doc["weights"] = [float(w) for w in doc["weights"]]
    doc["bias"] = float(doc["bias"])
    return doc


def _check_identity(doc: Mapping[str, Any], source: str) -> None:
    """``domain``, ``loss`` and ``version``: what the document is."""
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


def _check_features(features: object, source: str) -> None:
    """``features``: distinct names of features this version of reranker computes."""
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


def _check_coefficients(doc: Mapping[str, Any], source: str) -> None:
    """``weights`` (one per feature) and ``bias``: finite numbers within ±MAX_WEIGHT."""
    weights = doc["weights"]
    if not isinstance(weights, list) or not all(_weight(w) for w in weights):
        raise WeightsError(
            f"{source}: 'weights' must be a list of finite numbers within ±{MAX_WEIGHT:g}"
        )
    if len(weights) != len(doc["features"]):
        raise WeightsError(f"{source}: {len(weights)} weights for {len(doc['features'])} features")
    if not _weight(doc["bias"]):
        raise WeightsError(f"{source}: 'bias' must be a finite number within ±{MAX_WEIGHT:g}")


def _check_records(doc: Mapping[str, Any], source: str) -> None:
    """``trained_at``, ``training_data``, ``metrics`` and ``options``: how it was trained."""
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
