"""Large partitioned datasets in the dashboard: pages served from cached slice statistics.

A split that is a directory of Parquet parts holding more than ``RERANKER_DASHBOARD_MAX_ROWS``
hypotheses (default two million) is never loaded: the Data, Calibration and Devices pages read
the statistics :mod:`reranker.slice_statistics` computes once per scoring and caches beside the
data, the Utterances page searches its utterance rows with filters pushed down to Parquet
(:mod:`reranker.utterance_search`) and reads one utterance's hypotheses by a filtered read.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st

from reranker.slice_statistics import (
    SliceStatistics,
    compute_statistics,
    entry_directory,
    load_statistics,
)

if TYPE_CHECKING:
    from dashboard.data_cache import Slice

DEFAULT_MAX_ROWS = 2_000_000


def _path(token: str) -> str:
    return token.split("|", 1)[0]


def max_rows() -> int:
    """Hypotheses above which a partitioned split is served from statistics."""
    try:
        return int(os.environ.get("RERANKER_DASHBOARD_MAX_ROWS") or DEFAULT_MAX_ROWS)
    except ValueError:
        return DEFAULT_MAX_ROWS


@st.cache_data(max_entries=32, show_spinner=False)
def large(token: str) -> bool:
    """Whether the table of ``token`` is a partitioned dataset too large to load."""
    from reranker.utterance_search import count_rows

    path = _path(token)
    return os.path.isdir(path) and count_rows(path) > max_rows()


def ensure_statistics(token: str, weights: tuple[str | None, ...]) -> None:
    """Compute, in one pass, the statistics of every scoring that has none yet."""
    path = _path(token)
    entries = {w or "r0": entry_directory(path, w) for w in weights}
    if all((d / "meta.json").is_file() for d in entries.values()):
        return
    with st.spinner(
        "Computing the statistics of this dataset once (they are cached beside it)…",
        show_time=True,
    ):
        compute_statistics(path, entries)


@st.cache_resource(max_entries=16, show_spinner=False)
def statistics(token: str, loss: str, weights: str | None, fingerprint: str) -> SliceStatistics:
    """The slice statistics of one scoring (computed first if missing)."""
    path = _path(token)
    directory = entry_directory(path, weights)
    if not (directory / "meta.json").is_file():
        ensure_statistics(token, (weights,))
    return load_statistics(directory)


def utterance_directory(token: str, weights: str | None) -> str:
    """The utterance rows of one scoring (Parquet parts)."""
    return str(entry_directory(_path(token), weights) / "utterances")


@st.cache_resource(max_entries=8, show_spinner=False)
def utterance_index(token: str, loss: str, weights: str | None, fingerprint: str) -> Any:
    """The search index of one scoring's utterance rows (statistics and index built first if
    missing)."""
    from reranker.utterance_index import index_complete, open_index

    statistics(token, loss, weights, fingerprint)
    directory = utterance_directory(token, weights)
    if not index_complete(directory):
        with st.spinner("Indexing the utterances of this dataset once…", show_time=True):
            return open_index(directory)
    return open_index(directory)


def large_summary(token: str) -> dict[str, Any]:
    return statistics(token, "r0", None, "r0").summary


def large_curve(stats: SliceStatistics, sl: Slice) -> pd.DataFrame:
    """A reliability curve frame (as :meth:`ReliabilityCurve.to_frame`) from the sums."""
    from reranker.bootstrap import bootstrap_intervals

    ev = stats.evaluation(sl.domain, sl.device, n_bins=sl.n_bins, n_boot=sl.n_boot)
    n = sl.n_bins
    edges = np.linspace(0.0, 1.0, n + 1)
    empty = pd.DataFrame(
        {"bin_low": edges[:-1], "bin_high": edges[1:], "count": np.zeros(n)}
        | {k: np.full(n, np.nan) for k in ("mean_score", "frac_correct")}
        | {k: np.full(n, np.nan) for k in ("frac_correct_low", "frac_correct_high")}
    )
    if ev is None:
        return empty
    offset = 6 if sl.population == "all" else 6 + 3 * n

    def rates(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        block = np.atleast_2d(v)[:, offset : offset + 3 * n].reshape(-1, 3, n)
        count = block[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            safe = np.where(count > 0, count, 1)
            mean = np.where(count > 0, block[:, 1] / safe, np.nan)
            frac = np.where(count > 0, block[:, 2] / safe, np.nan)
        return count, mean, frac

    count, mean, frac = (a[0] for a in rates(ev.overall))
    out = empty.assign(count=count, mean_score=mean, frac_correct=frac)
    if ev.replicates is not None:
        low, high = bootstrap_intervals(frac, rates(ev.replicates)[2])
        out["frac_correct_low"], out["frac_correct_high"] = low, high
    return out


def large_metrics(stats: SliceStatistics, sl: Slice) -> dict[str, dict[str, float | None]]:
    """The metrics of :func:`reranker.calibration_slices.calibration_metrics` from the sums.

    Smooth ECE needs every score and is not available from binned sums (``None``).
    """
    ev = stats.evaluation(sl.domain, sl.device, n_bins=sl.n_bins, n_boot=sl.n_boot)
    keys = ("ece", "mce", "brier", "ece_top1", "top1_semer", "top1_ie")
    out: dict[str, dict[str, float | None]] = {
        k: {"value": None, "low": None, "high": None} for k in (*keys, "smooth_ece")
    }
    if ev is None:
        out["n_utterances"] = {"value": 0.0, "low": None, "high": None}
        out["n_hypotheses"] = {"value": 0.0, "low": None, "high": None}
        return out
    report = ev.report(population=sl.population)
    intervals = report.get("intervals", {})
    for k in keys:
        low, high = intervals.get(k, (None, None))
        finite = low is not None and np.isfinite(low) and report[k] is not None
        out[k] = {
            "value": report[k],
            "low": float(low) if finite else None,
            "high": float(high) if finite else None,
        }
    top_count = float(ev.overall[6 + 3 * sl.n_bins : 6 + 4 * sl.n_bins].sum())
    n_sample = float(ev.overall[1]) if sl.population == "all" else top_count
    out["n_utterances"] = {"value": top_count, "low": None, "high": None}
    out["n_hypotheses"] = {"value": n_sample, "low": None, "high": None}
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def one_utterance(token: str, utterance_id: str) -> pd.DataFrame:
    """The hypotheses of one utterance, read with a filter on its id."""
    from reranker.partitioned import open_dataset
    from reranker.utterance_search import utterance_hypotheses

    n_buckets = len(open_dataset(_path(token)).parts)
    return utterance_hypotheses(utterance_directory(token, None), utterance_id, n_buckets)


@st.cache_data(max_entries=4, show_spinner=False)
def preview(token: str) -> pd.DataFrame:
    """The first rows of the dataset's first part."""
    from reranker.utterance_search import sample_rows

    return sample_rows(_path(token))


@st.cache_resource(max_entries=16, show_spinner=False)
def utterance_tables(token: str, utterance_id: str, weights: str | None, fingerprint: str) -> Any:
    """``(prepared, scored, r0)`` tables of one utterance of a large dataset."""
    from reranker.scoring import score_hypotheses
    from reranker.tables import prepare, scored_view

    prep = prepare(one_utterance(token, utterance_id))
    r0 = scored_view(prep)
    if weights is None:
        return prep, r0, r0
    return prep, scored_view(prep, score_hypotheses(prep.frame, weights).score), r0


def has_utterance(token: str, utterance_id: str) -> bool:
    """Whether the dataset holds this utterance (a filtered read)."""
    from reranker.errors import RerankerError

    try:
        one_utterance(token, utterance_id)
    except RerankerError:
        return False
    return True
