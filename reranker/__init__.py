"""reranker: per-domain re-ranking of NLU hypotheses with calibrated scores.

Implements Su, Gupta, Ananthakrishnan and Matsoukas, "A Re-ranker Scheme for Integrating Large
Scale NLU models" (IEEE SLT 2018): each domain owns a small re-ranker turning its domain, intent
and slot confidences plus context into a calibrated score.

The data flow: corpus -> NLU hypotheses -> features -> per-domain training -> scores -> SemER
and calibration -> dashboard.
"""

from __future__ import annotations

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
from reranker.calibrators import cross_fit, fit_isotonic, fit_temperature
from reranker.errors import (
    DataError,
    ModelError,
    RerankerError,
    TrainingError,
    WeightsError,
)
from reranker.estimator import DomainReranker
from reranker.evaluation import evaluate, score_table
from reranker.features import default_feature_names, feature_matrix, register_feature
from reranker.hypotheses import read_hypotheses, write_table
from reranker.ranking import r0_score, rank_within_utterance, top1_indices
from reranker.registry import WeightsRegistry, score_with_registry
from reranker.scoring import score_hypotheses
from reranker.semer import align_interpretations, interpretation_error, semer_error, table_errors
from reranker.training import DomainResult, train_domains

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
