"""Features of a hypothesis for the per-domain re-ranker (docs/features.md).

Every feature is a named, documented, vectorised function of a validated hypothesis table
(:func:`reranker.read_hypotheses`) returning one float per row. The defaults are

========================  ==========================================================
name                      value
========================  ==========================================================
``log_domain_score``      ``log(max(domain_score, 1e-6))``
``log_intent_score``      ``log(max(intent_score, 1e-6))``
``log_slot_score``        ``log(max(slot_score, 1e-6))``
``domain_score``          the domain classifier's confidence
``intent_score``          the intent classifier's confidence
``slot_score``            the slot tagger's confidence
``rank_in_domain``        1-based rank of the hypothesis among its own domain's
                          hypotheses of the same utterance, by the product of the three
                          scores (ties: earlier row first)
``device=<device>``       1.0 when the utterance's device is ``<device>``, else 0.0
========================  ==========================================================

Device features form a one-hot of the device, so each domain learns its own device preference;
a device that a weights document does not name gets all-zero device features at scoring time.

New features are added by name with :func:`register_feature` (usable as a decorator); a weights
document lists the names of its features, and scoring refuses a document naming a feature this
code does not compute (:class:`reranker.WeightsError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import overload

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker.errors import DataError, ParameterError, WeightsError

__all__ = [
    "DEVICE_PREFIX",
    "LOG_FLOOR",
    "FeatureFunction",
    "default_feature_names",
    "feature_description",
    "feature_matrix",
    "is_known_feature",
    "log_confidence",
    "rank_in_groups",
    "register_feature",
    "registered_features",
]

FeatureFunction = Callable[[pd.DataFrame], NDArray[np.float64]]

LOG_FLOOR = 1e-6
"""Scores are clipped at this floor before taking their log."""

DEVICE_PREFIX = "device="
"""Prefix of the device one-hot feature names (``device=fire_tv``)."""

_REGISTRY: dict[str, FeatureFunction] = {}
_DEFAULTS: list[str] = []


@overload
def register_feature(name: str, fn: FeatureFunction) -> FeatureFunction: ...
@overload
def register_feature(
    name: str, fn: None = None
) -> Callable[[FeatureFunction], FeatureFunction]: ...
def register_feature(
    name: str, fn: FeatureFunction | None = None
) -> FeatureFunction | Callable[[FeatureFunction], FeatureFunction]:
    """Register a feature function under ``name``; call directly or use as a decorator.

    Parameters
    ----------
    name : str
        The name weights documents use for the feature. It must be new, non-empty, and must not
        start with ``"device="`` (reserved for the device one-hot).
    fn : callable, optional
        ``fn(hypotheses: pandas.DataFrame) -> ndarray of shape (n,)``; a pure, vectorised function
        of the rows with a docstring saying what it computes.

    Examples
    --------
    >>> @register_feature("text_length")
    ... def text_length(hypotheses):
    ...     '''Number of characters of the utterance text.'''
    ...     return hypotheses["text"].str.len().to_numpy(dtype=float)
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ParameterError(
            f"feature name must be a non-empty string without padding, got {name!r}"
        )
    if name.startswith(DEVICE_PREFIX):
        raise ParameterError(
            f"feature names starting with {DEVICE_PREFIX!r} are reserved: {name!r}"
        )

    def decorate(f: FeatureFunction) -> FeatureFunction:
        if not callable(f):
            raise ParameterError(f"feature {name!r}: {f!r} is not callable")
        if name in _REGISTRY and _REGISTRY[name] is not f:
            raise ParameterError(f"feature {name!r} is already registered")
        _REGISTRY[name] = f
        return f

    if fn is None:
        return decorate
    return decorate(fn)


def _default(name: str) -> Callable[[FeatureFunction], FeatureFunction]:
    def decorate(f: FeatureFunction) -> FeatureFunction:
        register_feature(name, f)
        _DEFAULTS.append(name)
        return f

    return decorate


def _scores(hypotheses: pd.DataFrame, column: str) -> NDArray[np.float64]:
    return hypotheses[column].to_numpy(dtype=np.float64)


def log_confidence(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log(max(score, 1e-6))`` elementwise: the value of the three log-score features.

    Shared by the table features below and by the one-utterance scorer of the service, so both
    compute the same numbers.
    """
    return np.log(np.maximum(scores, LOG_FLOOR))


def rank_in_groups(codes: NDArray[np.int64], product: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based rank of each row within its group, by ``product`` descending, ties in row order.

    Parameters
    ----------
    codes : ndarray of int, shape (n,)
        Group of each row (one group per utterance and domain).
    product : ndarray of float, shape (n,)
        ``domain_score * intent_score * slot_score`` of each row.
    """
    n = codes.size
    order = np.lexsort((-product, codes))  # stable: ties keep row order
    sorted_codes = codes[order]
    rank = np.empty(n, dtype=np.float64)
    # a row's rank: its place in the sorted order minus where its group starts there
    rank[order] = np.arange(1, n + 1) - np.searchsorted(sorted_codes, sorted_codes)
    return rank


@_default("log_domain_score")
def log_domain_score(hypotheses: pd.DataFrame) -> NDArray[np.float64]:
    """``log(max(domain_score, 1e-6))``: the domain classifier's log-confidence."""
    return log_confidence(_scores(hypotheses, "domain_score"))


@_default("log_intent_score")
def log_intent_score(hypotheses: pd.DataFrame) -> NDArray[np.float64]:
    """``log(max(intent_score, 1e-6))``: the intent classifier's log-confidence."""
    return log_confidence(_scores(hypotheses, "intent_score"))


@_default("log_slot_score")
def log_slot_score(hypotheses: pd.DataFrame) -> NDArray[np.float64]:
    """``log(max(slot_score, 1e-6))``: the slot tagger's log-confidence."""
    return log_confidence(_scores(hypotheses, "slot_score"))


@_default("domain_score")
def domain_score(hypotheses: pd.DataFrame) -> NDArray[np.float64]:
    """``domain_score``: the domain classifier's confidence in [0, 1]."""
    return _scores(hypotheses, "domain_score")


@_default("intent_score")
def intent_score(hypotheses: pd.DataFrame) -> NDArray[np.float64]:
    """``intent_score``: the intent classifier's confidence in [0, 1]."""
    return _scores(hypotheses, "intent_score")


@_default("slot_score")
def slot_score(hypotheses: pd.DataFrame) -> NDArray[np.float64]:
    """``slot_score``: the slot tagger's confidence in [0, 1]."""
    return _scores(hypotheses, "slot_score")


@_default("rank_in_domain")
def rank_in_domain(hypotheses: pd.DataFrame) -> NDArray[np.float64]:
    """1-based rank among the same domain's hypotheses of the utterance.

    Hypotheses of one ``(utterance_id, domain)`` are ordered by ``domain_score * intent_score *
    slot_score``, highest first; ties keep row order. The value depends only on the rows of the
    same domain, so it is the same whether computed on the whole table or on one domain's rows.
    """
    if len(hypotheses) == 0:
        return np.zeros(0, dtype=np.float64)
    utt, _ = pd.factorize(hypotheses["utterance_id"])
    dom, dom_names = pd.factorize(hypotheses["domain"])
    codes = utt.astype(np.int64) * max(len(dom_names), 1) + dom
    product = (
        _scores(hypotheses, "domain_score")
        * _scores(hypotheses, "intent_score")
        * _scores(hypotheses, "slot_score")
    )
    return rank_in_groups(codes, product)


def is_known_feature(name: str) -> bool:
    """Whether this code computes a feature called ``name`` (registered or a device one-hot)."""
    if not isinstance(name, str):
        return False
    if name.startswith(DEVICE_PREFIX):
        return len(name) > len(DEVICE_PREFIX)
    return name in _REGISTRY


def registered_features() -> list[str]:
    """Names of every registered (non-device) feature, defaults first, in registration order."""
    return list(_REGISTRY)


def feature_description(name: str) -> str:
    """The first docstring line of a feature, for display."""
    if name.startswith(DEVICE_PREFIX):
        return f"1 if the device is {name[len(DEVICE_PREFIX) :]!r}, else 0"
    if name not in _REGISTRY:
        raise WeightsError(f"unknown feature {name!r}")
    doc = (_REGISTRY[name].__doc__ or "").strip()
    return doc.splitlines()[0] if doc else name


def default_feature_names(devices: Iterable[str]) -> list[str]:
    """The default feature names: three log scores, three raw scores, rank, device one-hot.

    See docs/features.md#default-features.

    Parameters
    ----------
    devices : iterable of str
        Devices to give a one-hot feature (deduplicated and sorted, e.g. every device seen in
        the training data).

    Returns
    -------
    list of str
    """
    devs = sorted({str(d) for d in devices})
    if any(not d for d in devs):
        raise DataError("device names must be non-empty")
    return [*_DEFAULTS, *(f"{DEVICE_PREFIX}{d}" for d in devs)]


def feature_matrix(hypotheses: pd.DataFrame, names: Sequence[str]) -> NDArray[np.float64]:
    """Evaluate named features on every row.

    Parameters
    ----------
    hypotheses : pandas.DataFrame
        A validated hypothesis table (docs/formats.md#hypothesis-table).
    names : sequence of str
        Feature names (:func:`default_feature_names`, or those a weights document lists).

    Returns
    -------
    ndarray of shape (n, k)
        Column j holds feature ``names[j]``. Device features of a device the names do not
        mention are all zero.

    Raises
    ------
    WeightsError
        If a name is not a feature this code computes.
    """
    names = list(names)
    unknown = [n for n in names if not is_known_feature(n)]
    if unknown:
        raise WeightsError(
            f"unknown feature(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(registered_features())} and device=<device>"
        )
    if len(set(names)) != len(names):
        raise WeightsError("duplicated feature names")
    n = len(hypotheses)
    out = np.empty((n, len(names)), dtype=np.float64)
    device: NDArray[np.object_] | None = None
    for j, name in enumerate(names):
        if name.startswith(DEVICE_PREFIX):
            if device is None:
                device = (
                    hypotheses["device"].astype(str).to_numpy(dtype=object)
                    if "device" in hypotheses.columns
                    else np.full(n, "unknown", dtype=object)
                )
            out[:, j] = device == name[len(DEVICE_PREFIX) :]
        else:
            values = np.asarray(_REGISTRY[name](hypotheses), dtype=np.float64)
            if values.shape != (n,):
                raise WeightsError(
                    f"feature {name!r} returned shape {values.shape}, expected ({n},)"
                )
            if not np.isfinite(values).all():
                raise DataError(f"feature {name!r} has non-finite values")
            out[:, j] = values
    return out
