"""Turning hypotheses into re-ranker scores: the R0 baseline or per-domain weights documents.

This is the one scoring path of the package: the command line, evaluation, the partitioned
runner, training's frozen competitors and the dashboard's what-if editor all call it.

``--weights r0`` (or ``R0``) scores every hypothesis with the unweighted product of its NLU
confidences. Any other value names a weights registry directory
(docs/formats.md#weights-registry). A domain with a weights document scores its hypotheses ``h``
as ``sigmoid(w · φ(h) + b)``; hypotheses of a domain without one fall back to R0 and are
reported as such.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit, logit

from reranker.errors import WeightsError
from reranker.features import feature_matrix
from reranker.options import LOSSES
from reranker.ranking import r0_score
from reranker.registry import WeightsRegistry

__all__ = [
    "SCORERS",
    "Documents",
    "Scoring",
    "current_documents",
    "document_features",
    "document_logits",
    "document_source",
    "document_weights",
    "is_r0",
    "load_documents",
    "logits_with_documents",
    "score_hypotheses",
    "score_with_documents",
    "score_with_registry",
]

SCORERS: tuple[str, ...] = ("r0", *LOSSES)
"""The unweighted baseline and every trained loss, in display order."""

Documents = Mapping[str, Mapping[str, Any]]
"""Domain -> weights document."""

R0_LOGIT_EPS = 1e-6
"""R0 products are clipped to ``[eps, 1 - eps]`` before their logit is taken."""


@dataclass(frozen=True)
class Scoring:
    """Scores of a table and how each domain was scored.

    Attributes
    ----------
    score : ndarray of shape (n,)
    source : dict
        Domain -> ``"r0"`` or ``"<loss> v<version>"`` for the weights used.
    """

    score: NDArray[np.float64]
    source: dict[str, str] = field(default_factory=dict)

    @property
    def r0_domains(self) -> list[str]:
        """Domains scored with the R0 fallback."""
        return sorted(d for d, s in self.source.items() if s == "r0")


def is_r0(weights: str | os.PathLike[str]) -> bool:
    """Whether ``weights`` names the unweighted baseline rather than a registry."""
    return str(weights).strip().lower() == "r0"


def document_weights(
    document: Mapping[str, Any],
) -> tuple[list[str], NDArray[np.float64], float]:
    """The feature names, weights ``w`` and bias ``b`` of a weights document.

    Raises
    ------
    WeightsError
        If the document lacks ``features``, ``weights`` or ``bias``, or their lengths differ.
    """
    domain = document.get("domain") if isinstance(document, Mapping) else None
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


def document_features(
    hypotheses: pd.DataFrame, document: Mapping[str, Any]
) -> tuple[list[str], NDArray[np.float64], NDArray[np.float64], float]:
    """The feature names, feature matrix ``φ`` of the rows, weights ``w`` and bias ``b``."""
    names, w, bias = document_weights(document)
    return names, feature_matrix(hypotheses, names), w, bias


def document_logits(hypotheses: pd.DataFrame, document: Mapping[str, Any]) -> NDArray[np.float64]:
    """``z = w · φ(h) + b`` of every row with one domain's weights document."""
    _, X, w, bias = document_features(hypotheses, document)
    return X @ w + bias


def document_source(document: Mapping[str, Any]) -> str:
    """How the weights that scored a domain are named: ``"<loss> v<version>"`` (``"r3 v2"``)."""
    return f"{document.get('loss')} v{document.get('version')}"


def _logits_by_domain(
    hypotheses: pd.DataFrame, documents: Documents | None
) -> tuple[NDArray[np.float64], NDArray[np.bool_], dict[str, str]]:
    """Logit of every row with a document (NaN elsewhere), that mask, and each domain's source.

    Features are computed on the rows of one domain at a time; every feature is a function of a
    row and the other rows of its utterance and domain, so this equals computing them on the
    whole table.
    """
    z = np.full(len(hypotheses), np.nan)
    weighted = np.zeros(len(hypotheses), dtype=bool)
    source: dict[str, str] = {}
    column = hypotheses["domain"]
    for d in sorted(pd.unique(column)):  # hashed by Arrow: no Python string per row
        document = None if documents is None else documents.get(d)
        if document is None:
            source[d] = "r0"
            continue
        mask = (column == d).to_numpy(dtype=bool)
        z[mask] = document_logits(hypotheses.loc[mask], document)
        weighted |= mask
        source[d] = document_source(document)
    return z, weighted, source


def score_with_documents(hypotheses: pd.DataFrame, documents: Documents | None) -> Scoring:
    """Score validated rows with per-domain documents; domains without one keep their R0 score.

    Parameters
    ----------
    hypotheses : pandas.DataFrame
        Validated rows holding whole utterances.
    documents : mapping or None
        Domain -> weights document; ``None`` scores every row with R0.
    """
    z, weighted, source = _logits_by_domain(hypotheses, documents)
    score = r0_score(hypotheses).copy()
    score[weighted] = expit(z[weighted])
    return Scoring(score, source)


def logits_with_documents(
    hypotheses: pd.DataFrame, documents: Documents | None
) -> NDArray[np.float64]:
    """Logit of every row under per-domain documents; ``logit(R0)`` for domains without one.

    The R0 product is clipped to ``[1e-6, 1 - 1e-6]`` first, so every logit is finite.
    """
    z, weighted, _ = _logits_by_domain(hypotheses, documents)
    r0 = np.clip(r0_score(hypotheses), R0_LOGIT_EPS, 1 - R0_LOGIT_EPS)
    return np.where(weighted, z, logit(r0))


def _registry_at(weights: str | os.PathLike[str]) -> WeightsRegistry:
    path = Path(weights)
    if not path.exists():
        raise WeightsError(f"{path}: no such weights directory (use a registry directory or 'r0')")
    if not path.is_dir():
        raise WeightsError(f"{path}: not a weights directory (use a registry directory or 'r0')")
    return WeightsRegistry(path)


def current_documents(
    registry: WeightsRegistry, domains: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The current document of every published domain (of ``domains`` only, when given)."""
    available = registry.domains()
    wanted = set(available) if domains is None else set(available) & set(domains)
    return {d: registry.load(d) for d in sorted(wanted) if registry.current_version(d) is not None}


def _published(registry: WeightsRegistry) -> WeightsRegistry:
    if not registry.domains():
        raise WeightsError(f"{registry.path}: no published weights (not a weights registry?)")
    return registry


def load_documents(
    weights: str | os.PathLike[str], domains: Iterable[str] | None = None
) -> dict[str, dict[str, Any]] | None:
    """The current weights document of every domain of a registry (``None`` for ``r0``).

    Loaded once by the caller and shipped to workers, which need no access to the registry.
    ``domains`` restricts the documents read to those domains.

    Raises
    ------
    WeightsError
        If ``weights`` is not a registry directory, holds no weights at all, or a current
        document is invalid.
    """
    if is_r0(weights):
        return None
    return current_documents(_published(_registry_at(weights)), domains)


def score_with_registry(hypotheses: pd.DataFrame, path: str | os.PathLike[str]) -> Scoring:
    """Score a table with the current weights of each domain in a registry.

    Rows of a domain with published weights get ``sigmoid(w · φ(h) + b)``; rows of a domain
    without weights keep the R0 product and are reported with source ``"r0"``.

    Raises
    ------
    WeightsError
        If ``path`` holds no weights at all, or a current document is invalid.
    """
    registry = _published(WeightsRegistry(path))
    documents = current_documents(registry, hypotheses["domain"].unique())
    return score_with_documents(hypotheses, documents)


def score_hypotheses(hypotheses: pd.DataFrame, weights: str | os.PathLike[str]) -> Scoring:
    """Score every row of a validated table with R0 or with a weights registry's current versions."""
    return score_with_documents(hypotheses, load_documents(weights, hypotheses["domain"].unique()))
