"""reranker: per-domain re-ranking of NLU hypotheses with calibrated scores.

Implements Su, Gupta, Ananthakrishnan and Matsoukas, "A Re-ranker Scheme for Integrating Large
Scale NLU models" (IEEE SLT 2018): each domain owns a small re-ranker turning its domain, intent
and slot confidences plus context into a calibrated score.

The data flow: corpus -> NLU hypotheses -> features -> per-domain training -> scores -> SemER
and calibration -> dashboard.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reranker.annotation import parse_annotation, parse_slots
from reranker.calibration import (
    ReliabilityCurve,
    ReliabilityStats,
    brier_loss,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_curve,
    smooth_ece,
)
from reranker.errors import (
    DataError,
    ModelError,
    RerankerError,
    TrainingError,
    WeightsError,
)
from reranker.evaluation import evaluate
from reranker.hypotheses import read_hypotheses, write_table
from reranker.ranking import r0_score, rank_within_utterance, top1_indices
from reranker.scoring import score_hypotheses, score_with_registry
from reranker.semer import align_interpretations, interpretation_error, semer_error, table_errors
from reranker.tables import score_table

if TYPE_CHECKING:
    from reranker.calibrators import cross_fit, fit_isotonic, fit_temperature
    from reranker.estimator import DomainReranker
    from reranker.features import default_feature_names, feature_matrix, register_feature
    from reranker.registry import WeightsRegistry
    from reranker.training import DomainResult, train_domains

# Names whose modules pull in scikit-learn are imported on first use, so that importing the
# package (and starting the command line) stays fast.
_LAZY = {
    "cross_fit": "reranker.calibrators",
    "fit_isotonic": "reranker.calibrators",
    "fit_temperature": "reranker.calibrators",
    "DomainReranker": "reranker.estimator",
    "default_feature_names": "reranker.features",
    "feature_matrix": "reranker.features",
    "register_feature": "reranker.features",
    "WeightsRegistry": "reranker.registry",
    "DomainResult": "reranker.training",
    "train_domains": "reranker.training",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reranker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "DataError",
    "DomainReranker",
    "DomainResult",
    "ModelError",
    "ReliabilityCurve",
    "ReliabilityStats",
    "RerankerError",
    "TrainingError",
    "WeightsError",
    "WeightsRegistry",
    "align_interpretations",
    "brier_loss",
    "cross_fit",
    "default_feature_names",
    "evaluate",
    "expected_calibration_error",
    "feature_matrix",
    "fit_isotonic",
    "fit_temperature",
    "interpretation_error",
    "maximum_calibration_error",
    "parse_annotation",
    "parse_slots",
    "r0_score",
    "rank_within_utterance",
    "read_hypotheses",
    "register_feature",
    "reliability_curve",
    "score_hypotheses",
    "score_table",
    "score_with_registry",
    "semer_error",
    "smooth_ece",
    "table_errors",
    "top1_indices",
    "train_domains",
    "write_table",
]
