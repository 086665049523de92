"""Turning a hypothesis table into re-ranker scores: the R0 baseline or a weights registry.

``--weights r0`` (or ``R0``) scores every hypothesis with the unweighted product of its NLU
confidences. Any other value names a weights registry directory (SPEC §2); hypotheses of a
domain without published weights fall back to R0 and are reported as such.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker.errors import WeightsError
from reranker.ranking import r0_score

__all__ = ["Scoring", "is_r0", "score_hypotheses"]


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
    from reranker.registry import score_with_registry

    return score_with_registry(hypotheses, path)
