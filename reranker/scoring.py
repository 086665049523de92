"""Turning a hypothesis table into re-ranker scores: the R0 baseline or a weights registry.

``--weights r0`` (or ``R0``) scores every hypothesis with the unweighted product of its NLU
confidences. Any other value names a weights registry directory (docs/formats.md#weights-registry);
hypotheses of a domain without published weights fall back to R0 and are reported as such.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from reranker.errors import WeightsError
from reranker.features import feature_matrix
from reranker.losses import LOSSES
from reranker.ranking import r0_score
from reranker.registry import WeightsRegistry

__all__ = [
    "SCORERS",
    "Scoring",
    "document_logits",
    "is_r0",
    "score_hypotheses",
    "score_with_documents",
    "score_with_registry",
]

SCORERS: tuple[str, ...] = ("r0", *LOSSES)
"""The unweighted baseline and every trained loss, in display order."""


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


def score_hypotheses(hypotheses: pd.DataFrame, weights: str | os.PathLike[str]) -> Scoring:
    """Score every row of a validated table with R0 or with a weights registry's current versions."""
    domains = sorted(hypotheses["domain"].unique())
    if is_r0(weights):
        return Scoring(r0_score(hypotheses), {d: "r0" for d in domains})
    path = Path(weights)
    if not path.exists():
        raise WeightsError(f"{path}: no such weights directory (use a registry directory or 'r0')")
    if not path.is_dir():
        raise WeightsError(f"{path}: not a weights directory (use a registry directory or 'r0')")
    return score_with_registry(hypotheses, path)


def document_logits(hypotheses: pd.DataFrame, document: Mapping[str, Any]) -> NDArray[np.float64]:
    """``z = w · φ(h) + b`` of every row with one domain's weights document."""
    X = feature_matrix(hypotheses, document["features"])
    return X @ np.asarray(document["weights"], dtype=np.float64) + float(document["bias"])


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
    documents = {
        d: registry.load(d)
        for d in sorted(set(hypotheses["domain"]) & available)
        if registry.current_version(d) is not None
    }
    return score_with_documents(hypotheses, documents)


def score_with_documents(
    hypotheses: pd.DataFrame, documents: Mapping[str, Mapping[str, Any]] | None
) -> Scoring:
    """Score a table with one weights document per domain (R0 for a domain without one).

    The rows must hold every hypothesis of their utterances' domains (the rank feature looks at
    them). ``documents=None`` scores everything with R0.
    """
    domain = hypotheses["domain"].to_numpy(dtype=object)
    score = r0_score(hypotheses).copy()
    source: dict[str, str] = {}
    for d in sorted(set(domain)):
        doc = None if documents is None else documents.get(d)
        if doc is None:
            source[d] = "r0"
            continue
        mask = domain == d
        score[mask] = expit(document_logits(hypotheses.loc[mask], doc))
        source[d] = f"{doc['loss']} v{doc['version']}"
    return Scoring(score, source)
