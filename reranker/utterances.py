"""Utterances of a scored table: one row per utterance, filters, one n-best in detail, alignments.

Every function reads the arrays of a :class:`~reranker.tables.ScoredTable`; an utterance's
top hypothesis, misranking and best correct rank come from the one ranking of
:mod:`reranker.ranking`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker.errors import DataError
from reranker.semer import align_interpretations
from reranker.tables import PreparedTable, ScoredTable, column_at

__all__ = [
    "alignment_frame",
    "filter_utterances",
    "top_domain_distribution",
    "utterance_detail",
    "utterance_table",
]


def utterance_table(scored: ScoredTable, *, r0: ScoredTable | None = None) -> pd.DataFrame:
    """One row per utterance: its text, device, reference, top hypothesis and error.

    Columns: ``utterance_id, text, device, reference_domain, reference, top_domain, top_intent,
    top_slots, top_score, top_semer, top_correct, has_correct, misranked, correct_rank,
    n_hypotheses`` and, with ``r0``, ``r0_top_domain, r0_top_correct``. ``misranked`` means a
    correct hypothesis exists but is not top-1; ``correct_rank`` is the best rank of a correct
    hypothesis (0 when none). Rows are in utterance order.
    """
    frame = scored.hypotheses
    top = scored.top
    n_utt = top.size
    counts = np.bincount(scored.codes, minlength=n_utt)
    out = pd.DataFrame(
        {
            "utterance_id": column_at(frame, "utterance_id", top),
            "text": column_at(frame, "text", top),
            "device": column_at(frame, "device", top),
            "top_domain": column_at(frame, "domain", top),
            "top_intent": column_at(frame, "intent", top),
            "top_slots": column_at(frame, "slots", top),
            "top_score": scored.score[top],
            "n_hypotheses": counts,
        }
    )
    if scored.correct is not None and scored.semer is not None:
        out.insert(3, "reference_domain", column_at(frame, "ref_domain", top))
        out.insert(
            4,
            "reference",
            column_at(frame, "ref_intent", top) + "  " + column_at(frame, "ref_slots", top),
        )
        correct_rank = np.where(scored.correct == 1, scored.rank, np.iinfo(np.int64).max)
        best = pd.Series(correct_rank).groupby(scored.codes, sort=True).min().to_numpy()
        has_correct = best < np.iinfo(np.int64).max
        out["top_semer"] = scored.semer[top]
        out["top_correct"] = scored.correct[top].astype(bool)
        out["has_correct"] = has_correct
        out["misranked"] = has_correct & (best > 1)
        out["correct_rank"] = np.where(has_correct, best, 0)
        if r0 is not None and r0.correct is not None:
            out["r0_top_domain"] = column_at(frame, "domain", r0.top)
            out["r0_top_correct"] = r0.correct[r0.top].astype(bool)
    return out


def filter_utterances(
    table: pd.DataFrame,
    *,
    search: str = "",
    misranked_only: bool = False,
    domains: Sequence[str] = (),
    devices: Sequence[str] = (),
    semer_range: tuple[float, float] | None = None,
    sort_by: str | None = None,
    descending: bool = False,
    limit: int | None = None,
) -> tuple[pd.DataFrame, int]:
    """Filter and sort an :func:`utterance_table`; returns the (limited) rows and the match count.

    Parameters
    ----------
    search : str
        Case-insensitive literal substring of the text or utterance id.
    misranked_only : bool
        Keep utterances with a correct hypothesis that is not top-1.
    domains : sequence of str
        Keep utterances whose reference domain (or, without references, top domain) is one of
        these; empty keeps all.
    devices : sequence of str
        Keep these devices; empty keeps all.
    semer_range : (low, high), optional
        Keep utterances whose top-1 SemER lies in ``[low, high]`` (``high`` may be ``inf``).
    sort_by : str, optional
        A column name; the sort is stable.
    limit : int, optional
        Return at most this many rows (the count still covers all matches).
    """
    keep = _matching(
        table,
        search=search,
        misranked_only=misranked_only,
        domains=domains,
        devices=devices,
        semer_range=semer_range,
    )
    out = table.loc[keep]
    if sort_by:
        if sort_by not in out.columns:
            raise DataError(f"cannot sort by unknown column {sort_by!r}")
        out = out.sort_values(sort_by, ascending=not descending, kind="stable")
    count = len(out)
    if limit is not None:
        out = out.head(limit)
    return out, count


def _matching(
    table: pd.DataFrame,
    *,
    search: str,
    misranked_only: bool,
    domains: Sequence[str],
    devices: Sequence[str],
    semer_range: tuple[float, float] | None,
) -> NDArray[np.bool_]:
    """The rows of ``table`` that pass every filter of :func:`filter_utterances`."""
    keep = np.ones(len(table), dtype=bool)
    if search.strip():
        needle = search.strip().lower()
        keep &= (
            table["text"].str.lower().str.contains(needle, regex=False).to_numpy()
            | table["utterance_id"].str.lower().str.contains(needle, regex=False).to_numpy()
        )
    if misranked_only:
        if "misranked" not in table.columns:
            raise DataError("the misranked filter needs references")
        keep &= table["misranked"].to_numpy()
    if domains:
        column = "reference_domain" if "reference_domain" in table.columns else "top_domain"
        keep &= table[column].isin(list(domains)).to_numpy()
    if devices:
        keep &= table["device"].isin(list(devices)).to_numpy()
    if semer_range is not None and "top_semer" in table.columns:
        lo, hi = semer_range
        semer = table["top_semer"].to_numpy()
        keep &= (semer >= lo) & (semer <= hi)
    return keep


def utterance_detail(
    prepared: PreparedTable,
    scored: ScoredTable,
    utterance_id: str,
    *,
    r0: ScoredTable | None = None,
) -> pd.DataFrame:
    """Every hypothesis of one utterance with its scores, ranks, SemER and correct bit.

    Columns: ``row`` (index in the table), ``domain, intent, slots, domain_score,
    intent_score, slot_score``, ``semer, correct`` (with references), ``r0_score, r0_rank``
    (with ``r0``), ``score, rank``; sorted by ``rank``.
    """
    frame = scored.hypotheses
    rows = prepared.rows_of(utterance_id)
    cols = ["domain", "intent", "slots", "domain_score", "intent_score", "slot_score"]
    out = frame.iloc[rows][cols].reset_index(drop=True)
    out.insert(0, "row", rows)
    if scored.semer is not None and scored.correct is not None:
        out["semer"] = scored.semer[rows]
        out["correct"] = scored.correct[rows].astype(bool)
    if r0 is not None:
        out["r0_score"] = r0.score[rows]
        out["r0_rank"] = r0.rank[rows]
    out["score"] = scored.score[rows]
    out["rank"] = scored.rank[rows]
    return out.sort_values("rank", kind="stable").reset_index(drop=True)


def _qualified_intent(domain: str, intent: str) -> str:
    return intent if intent.startswith(f"{domain}.") else f"{domain}.{intent}"


def alignment_frame(
    ref_domain: str,
    ref_intent: str,
    ref_slots: str,
    hyp_domain: str,
    hyp_intent: str,
    hyp_slots: str,
) -> pd.DataFrame:
    """The minimum edit alignment of a hypothesis to its reference as a table.

    Intents are shown qualified by their domain (``Books.ReadBook``), as SemER compares them
    (a Books intent never equals a Music intent). One row per step: ``operation`` (match,
    substitution, deletion, insertion), ``reference`` and ``hypothesis`` labels (the intent or
    ``type=value``; empty where absent).
    """
    ref_intent = _qualified_intent(ref_domain, ref_intent)
    hyp_intent = _qualified_intent(hyp_domain, hyp_intent)
    steps = align_interpretations(ref_intent, ref_slots, hyp_intent, hyp_slots)
    return pd.DataFrame(
        {
            "operation": [s.op for s in steps],
            "reference": [s.ref or "" for s in steps],
            "hypothesis": [s.hyp or "" for s in steps],
        }
    )


def top_domain_distribution(scored: ScoredTable) -> pd.DataFrame:
    """Per device, how often each domain wins top-1: ``device, domain, count, share``."""
    frame = scored.hypotheses
    top = pd.DataFrame(
        {
            "device": column_at(frame, "device", scored.top),
            "domain": column_at(frame, "domain", scored.top),
        }
    )
    counts = top.groupby(["device", "domain"], sort=True).size().rename("count").reset_index()
    totals = counts.groupby("device")["count"].transform("sum")
    counts["share"] = counts["count"] / totals
    return counts
