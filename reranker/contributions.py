"""What each feature contributes to a hypothesis's logit, and what-if re-scoring of one utterance.

A weights document scores a hypothesis ``h`` of its domain as ``sigmoid(w · φ(h) + b)``; the
contribution of feature ``k`` is ``w_k φ_k(h)``. Hypotheses of a domain without a document keep
their R0 score. Scores come from :mod:`reranker.scoring`, ranks from :mod:`reranker.ranking`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from reranker.features import DEVICE_PREFIX
from reranker.ranking import rank_within_utterance
from reranker.scoring import Documents, document_features, document_weights, score_with_documents
from reranker.weights_document import validate_weights_document

__all__ = ["contributions", "device_weights", "hypothesis_contributions", "rescore_utterance"]

_LONG_COLUMNS = ["hypothesis", "domain", "feature", "value", "weight", "contribution"]


def hypothesis_contributions(rows: pd.DataFrame, documents: Documents) -> pd.DataFrame:
    """Each feature's contribution ``value * weight`` to each hypothesis's logit.

    Parameters
    ----------
    rows : pandas.DataFrame
        All hypotheses of one utterance (validated columns).
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
        names, x, w, bias = document_features(rows.iloc[idx], document)
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
        return pd.DataFrame(columns=_LONG_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def rescore_utterance(rows: pd.DataFrame, documents: Documents) -> pd.DataFrame:
    """Score and rank one utterance's hypotheses with the given per-domain weights.

    Domains without a document fall back to R0 (docs/losses.md#r0). Returns ``rows`` (reset index)
    plus ``score``, ``rank`` and ``scored_by`` (``"weights"`` or ``"r0"``), sorted by rank with the
    tie-break of docs/metrics.md#top-1 (higher domain score, then earlier row).
    """
    rows = rows.reset_index(drop=True)
    scoring = score_with_documents(rows, documents)
    by_r0 = rows["domain"].map(scoring.source).to_numpy(dtype=object) == "r0"
    source = np.where(by_r0, "r0", "weights").astype(object)
    rank = rank_within_utterance(
        np.zeros(len(rows), dtype=np.int64), scoring.score, rows["domain_score"]
    )
    out = rows.assign(score=scoring.score, rank=rank, scored_by=source)
    return out.sort_values("rank", kind="stable").reset_index(drop=True)


def device_weights(documents: Documents) -> pd.DataFrame:
    """The learned device one-hot weights of each domain: ``domain, device, weight``.

    A positive weight means the domain's hypotheses are pushed up on that device.
    """
    records = []
    for d, document in sorted(documents.items()):
        names, w, _ = document_weights(document)
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
        A weights document (:meth:`reranker.registry.WeightsRegistry.load`), validated here.

    Returns
    -------
    pandas.DataFrame
        One column per feature, then ``bias``, ``logit`` (their sum) and ``score``
        (``sigmoid(logit)``), indexed like ``hypotheses``.
    """
    doc = validate_weights_document(document, source=f"weights of {document.get('domain')!r}")
    names, x, w, bias = document_features(hypotheses, doc)
    parts = x * w
    frame = pd.DataFrame(parts, columns=names, index=hypotheses.index)
    frame["bias"] = bias
    frame["logit"] = parts.sum(axis=1) + bias
    frame["score"] = expit(frame["logit"].to_numpy())
    return frame
