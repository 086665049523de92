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
from reranker.errors import (
    DataError,
    ModelError,
    RerankerError,
    TrainingError,
    WeightsError,
)
from reranker.evaluation import evaluate, score_table
from reranker.hypotheses import read_hypotheses, write_table
from reranker.ranking import r0_score, rank_within_utterance, top1_indices
from reranker.scoring import score_hypotheses
from reranker.semer import align_interpretations, interpretation_error, semer_error, table_errors

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "ModelError",
    "ReliabilityCurve",
    "ReliabilityStats",
    "RerankerError",
    "TrainingError",
    "WeightsError",
    "align_interpretations",
    "brier_loss",
    "evaluate",
    "expected_calibration_error",
    "interpretation_error",
    "maximum_calibration_error",
    "parse_annotation",
    "parse_slots",
    "r0_score",
    "rank_within_utterance",
    "read_hypotheses",
    "reliability_curve",
    "score_hypotheses",
    "score_table",
    "semer_error",
    "smooth_ece",
    "table_errors",
    "top1_indices",
    "write_table",
]
