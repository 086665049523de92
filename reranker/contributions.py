"""What each feature contributes to a hypothesis's logit, and what-if re-scoring of one utterance.

A weights document scores a hypothesis ``h`` of its domain as ``sigmoid(w · φ(h) + b)``; the
contribution of feature ``k`` is ``w_k φ_k(h)``. Hypotheses of a domain without a document keep
their R0 score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from reranker.errors import WeightsError
from reranker.features import DEVICE_PREFIX, feature_matrix
from reranker.ranking import r0_score, rank_within_utterance
from reranker.registry import validate_weights_document

__all__ = ["contributions", "device_weights", "hypothesis_contributions", "rescore_utterance"]

FloatArray = NDArray[np.float64]


def _check_document(
    document: Mapping[str, Any], domain: str
) -> tuple[list[str], FloatArray, float]:
    try:
        names = [str(n) for n in document["features"]]
        w = np.asarray(document["weights"], dtype=np.float64)
        bias = float(document["bias"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"weights of domain {domain!r} are malformed: {e}") from e
    if w.shape != (len(names),):
        raise WeightsError(
            f"weights of domain {domain!r} list {len(names)} features but {w.size} weights"
        )
    return names, w, bias


def hypothesis_contributions(
    rows: pd.DataFrame, documents: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Each feature's contribution ``value * weight`` to each hypothesis's logit.

    Parameters
    ----------
    rows : pandas.DataFrame
        All hypotheses of one utterance (validated columns), so that within-utterance features
        such as ``rank_in_domain`` see the whole n-best.
    documents : mapping
        Domain -> weights document (docs/formats.md#weights-document). Hypotheses of other domains
        are scored with R0 and get no rows here.

    Returns
    -------
    pandas.DataFrame
        Long format: ``hypothesis`` (position in ``rows``), ``domain``, ``feature``, ``value``,
        ``weight``, ``contribution``; the bias appears as feature ``bias`` with value 1.
    """
    parts = []
    rows = rows.reset_index(drop=True)
    domain = rows["domain"].to_numpy(dtype=object)
    for d, document in documents.items():
        idx = np.flatnonzero(domain == d)
        if idx.size == 0:
            continue
        names, w, bias = _check_document(document, d)
        x = feature_matrix(rows, names)[idx]
        k = len(names) + 1
        values = np.column_stack([x, np.ones(idx.size)])
        weights = np.r_[w, bias]
        parts.append(
            pd.DataFrame(
                {
                    "hypothesis": np.repeat(idx, k),
                    "domain": d,
                    "feature": np.tile([*names, "bias"], idx.size),
                    "value": values.ravel(),
                    "weight": np.tile(weights, idx.size),
                    "contribution": (values * weights).ravel(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            columns=["hypothesis", "domain", "feature", "value", "weight", "contribution"]
        )
    return pd.concat(parts, ignore_index=True)


def rescore_utterance(
    rows: pd.DataFrame, documents: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Score and rank one utterance's hypotheses with the given per-domain weights.

    Domains without a document fall back to R0 (docs/losses.md#r0). Returns ``rows`` (reset index)
    plus ``score``, ``rank`` and ``scored_by`` (``"weights"`` or ``"r0"``), sorted by rank with the
    tie-break of docs/metrics.md#top-1 (higher domain score, then earlier row).
    """
    rows = rows.reset_index(drop=True)
    score = r0_score(rows)
    source = np.full(len(rows), "r0", dtype=object)
    domain = rows["domain"].to_numpy(dtype=object)
    for d, document in documents.items():
        idx = np.flatnonzero(domain == d)
        if idx.size == 0:
            continue
        names, w, bias = _check_document(document, d)
        score[idx] = expit(feature_matrix(rows, names)[idx] @ w + bias)
        source[idx] = "weights"
    rank = rank_within_utterance(np.zeros(len(rows), dtype=np.int64), score, rows["domain_score"])
    out = rows.assign(score=score, rank=rank, scored_by=source)
    return out.sort_values("rank", kind="stable").reset_index(drop=True)


def device_weights(documents: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The learned device one-hot weights of each domain: ``domain, device, weight``.

    A positive weight means the domain's hypotheses are pushed up on that device.
    """
    records = []
    for d, document in sorted(documents.items()):
        names, w, _ = _check_document(document, d)
        for name, value in zip(names, w, strict=True):
            if name.startswith(DEVICE_PREFIX):
                records.append(
                    {"domain": d, "device": name[len(DEVICE_PREFIX) :], "weight": float(value)}
                )
    return pd.DataFrame(records, columns=["domain", "device", "weight"])


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
