"""Scored hypothesis tables: the per-row arrays every metric, view and chart reads.

The expensive work is split so that it can be cached and never repeated needlessly:

1. :func:`prepare` computes the utterance index and (with references) SemER and the correct bit
   once per table: they do not depend on scores;
2. :func:`scored_view` (or :func:`score_table` without a prepared table) attaches one set of
   scores and computes ranks and top-1 rows, cheap and per loss;
3. everything else (evaluation, calibration slices, utterance tables) reads those arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from reranker._validation import check_unit_interval
from reranker.bootstrap import utterance_keys
from reranker.errors import DataError
from reranker.hypotheses import has_references
from reranker.ranking import r0_score, rank_and_top, utterance_codes
from reranker.semer import table_errors

__all__ = [
    "PreparedTable",
    "ScoredTable",
    "column_at",
    "column_equals",
    "dataset_summary",
    "prepare",
    "score_table",
    "scored_view",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ScoredTable:
    """A hypothesis table with everything the metrics need, computed once.

    Attributes
    ----------
    codes : utterance code of each row.
    score : the re-ranker score of each row.
    rank : 1 = top of its utterance.
    top : row index of each utterance's top hypothesis (ordered by utterance code).
    semer, correct : per row; ``None`` without references.
    """

    hypotheses: pd.DataFrame
    codes: NDArray[np.int64]
    score: NDArray[np.float64]
    rank: NDArray[np.int64]
    top: NDArray[np.int64]
    semer: NDArray[np.float64] | None
    correct: NDArray[np.int64] | None

    @cached_property
    def utterance_keys(self) -> NDArray[np.uint64]:
        """Bootstrap key of each utterance, by utterance code (:func:`reranker.bootstrap.utterance_keys`)."""
        return utterance_keys(self.hypotheses["utterance_id"].to_numpy()[self.top])


def score_table(
    hypotheses: pd.DataFrame,
    scores: ArrayLike,
    *,
    errors: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None,
    codes: NDArray[np.int64] | None = None,
) -> ScoredTable:
    """Attach scores to a validated table and compute ranks, top-1 rows and (if possible) errors.

    ``errors`` lets a caller pass precomputed ``(semer, correct)`` and ``codes`` precomputed
    utterance codes (neither depends on scores).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size != len(hypotheses):
        raise DataError(f"got {s.size} scores for {len(hypotheses)} hypotheses")
    check_unit_interval(s, "score")
    if codes is None:
        codes = utterance_codes(hypotheses["utterance_id"])
    dscore = hypotheses["domain_score"].to_numpy(dtype=np.float64)
    rank, top = rank_and_top(codes, s, dscore)
    semer: NDArray[np.float64] | None = None
    correct: NDArray[np.int64] | None = None
    if errors is not None:
        semer, correct = errors
    elif has_references(hypotheses):
        semer, correct = table_errors(hypotheses)
    return ScoredTable(hypotheses, codes, s, rank, top, semer, correct)


@dataclass(frozen=True)
class PreparedTable:
    """A validated table with the score-independent per-row arrays, computed once.

    Attributes
    ----------
    frame : pandas.DataFrame
    codes : utterance code of each row (order of first appearance).
    first_row : each utterance's first row (for its text, device and reference).
    row_order, row_offsets : rows grouped by utterance: the rows of utterance ``c`` are
        ``row_order[row_offsets[c]:row_offsets[c + 1]]`` (table order within the group).
    utterance_ids : pandas.Index of the utterance ids in code order (O(1) lookup).
    semer, correct : per row, ``None`` without references.
    """

    frame: pd.DataFrame
    codes: NDArray[np.int64]
    first_row: NDArray[np.int64]
    row_order: NDArray[np.int64]
    row_offsets: NDArray[np.int64]
    utterance_ids: pd.Index
    semer: FloatArray | None
    correct: NDArray[np.int64] | None

    @property
    def n_utterances(self) -> int:
        return int(self.first_row.size)

    @property
    def has_references(self) -> bool:
        return self.correct is not None

    def rows_of(self, utterance_id: str) -> NDArray[np.int64]:
        """Row indices of one utterance's hypotheses, in table order."""
        try:
            code = self.utterance_ids.get_loc(utterance_id)
        except KeyError as e:
            raise DataError(f"no utterance with id {utterance_id!r}") from e
        if not isinstance(code, int | np.integer):
            raise DataError(f"utterance id {utterance_id!r} is ambiguous")
        return self.row_order[self.row_offsets[code] : self.row_offsets[code + 1]]


def column_at(frame: pd.DataFrame, column: str, rows: NDArray[np.int64]) -> NDArray[np.object_]:
    """``frame[column]`` at ``rows`` as an object array (converting only the rows taken)."""
    return frame[column].iloc[rows].to_numpy(dtype=object)


def column_equals(frame: pd.DataFrame, column: str, value: str) -> NDArray[np.bool_]:
    """Boolean mask ``frame[column] == value`` (vectorised on Arrow-backed strings)."""
    return (frame[column] == value).to_numpy(dtype=bool)


def prepare(frame: pd.DataFrame) -> PreparedTable:
    """Compute utterance codes, the row index per utterance and (with references) SemER."""
    codes = utterance_codes(frame["utterance_id"])
    n_utt = int(codes.max()) + 1 if codes.size else 0
    order = np.argsort(codes, kind="stable").astype(np.int64)
    offsets = np.r_[0, np.cumsum(np.bincount(codes, minlength=n_utt))].astype(np.int64)
    first = order[offsets[:-1]]  # stable sort: the first row of each group is its earliest
    ids = pd.Index(column_at(frame, "utterance_id", first))
    semer: FloatArray | None = None
    correct: NDArray[np.int64] | None = None
    if has_references(frame):
        semer, correct = table_errors(frame)
    return PreparedTable(frame, codes, first, order, offsets, ids, semer, correct)


def scored_view(prepared: PreparedTable, score: FloatArray | None = None) -> ScoredTable:
    """Attach scores (R0 when ``score`` is None) and compute ranks and top-1 rows.

    SemER, correct and the utterance codes are reused from ``prepared``, never recomputed.
    """
    frame = prepared.frame
    s = r0_score(frame) if score is None else score
    errors = None
    if prepared.semer is not None and prepared.correct is not None:
        errors = (prepared.semer, prepared.correct)
    return score_table(frame, s, errors=errors, codes=prepared.codes)


def dataset_summary(prepared: PreparedTable) -> dict[str, Any]:
    """Counts of a table and its oracle accuracy (share of utterances with a correct hypothesis)."""
    frame = prepared.frame
    out: dict[str, Any] = {
        "n_utterances": prepared.n_utterances,
        "n_hypotheses": len(frame),
        "n_domains": int(frame["domain"].nunique()),
        "n_devices": int(frame["device"].nunique()),
        "domains": sorted(frame["domain"].unique().tolist()),
        "devices": sorted(frame["device"].unique().tolist()),
        "mean_nbest": len(frame) / prepared.n_utterances if prepared.n_utterances else 0.0,
        "oracle_accuracy": None,
    }
    if prepared.correct is not None and prepared.n_utterances:
        any_correct = np.bincount(
            prepared.codes, weights=prepared.correct, minlength=prepared.n_utterances
        )
        out["oracle_accuracy"] = float((any_correct > 0).mean())
    return out
