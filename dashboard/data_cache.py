"""Every cached computation of the dashboard, keyed on plain widget values.

Tables and scored arrays are read-only and large, so they live in ``st.cache_resource`` (shared,
never copied); small derived results (filtered rows, curves, metrics) live in ``st.cache_data``.
A table is keyed on its path and modification time, a weights registry on the fingerprint of its
``CURRENT`` pointers, so training or rollback invalidates exactly what depends on them and a
rerun that changes nothing else recomputes nothing (SemER and features included).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.large_data import (
    large,
    large_curve,
    large_metrics,
    large_summary,
    preview,
    statistics,
    utterance_index,
)
from reranker.calibration_slices import (
    calibration_metrics,
    calibration_sample,
    slice_curve,
    smooth_calibration,
)
from reranker.calibrators import recalibrate
from reranker.datasets import DatasetInfo, discover_datasets
from reranker.distribution_matching import rematch
from reranker.hypotheses import read_hypotheses
from reranker.scoring import score_hypotheses
from reranker.tables import PreparedTable, ScoredTable, dataset_summary, prepare, scored_view
from reranker.utterance_search import UtteranceQuery
from reranker.utterances import filter_utterances, top_domain_distribution, utterance_table

__all__ = ["Slice", "UtteranceQuery", "large", "preview"]


def _path(token: str) -> str:
    return token.split("|", 1)[0]


@st.cache_data(ttl=60, show_spinner=False)
def datasets(root: str) -> list[DatasetInfo]:
    """Datasets under the data directory (re-scanned every minute)."""
    return discover_datasets(root)


@st.cache_resource(max_entries=4, show_spinner="Reading the hypothesis table and computing SemER…")
def prepared(token: str) -> PreparedTable:
    """The validated table with SemER and correct computed once."""
    return prepare(read_hypotheses(_path(token)))


@st.cache_data(max_entries=8, show_spinner=False)
def summary(token: str) -> dict[str, Any]:
    """Counts, domains, devices and oracle accuracy of a table."""
    if large(token):
        return large_summary(token)
    return dataset_summary(prepared(token))


@st.cache_resource(max_entries=16, show_spinner="Scoring…")
def scored(
    token: str, loss: str, weights: str | None, fingerprint: str
) -> tuple[ScoredTable, dict[str, str]]:
    """One loss's scores, ranks and top-1 rows (``fingerprint`` keys the registry state)."""
    prep = prepared(token)
    if loss == "r0" or weights is None:
        return scored_view(prep), {d: "r0" for d in sorted(prep.frame["domain"].unique())}
    scoring = score_hypotheses(prep.frame, weights)
    return scored_view(prep, scoring.score), dict(scoring.source)


MATCHING = "matching"
"""Calibrator name of cross-domain score distribution matching (:mod:`reranker.distribution_matching`)."""


@st.cache_resource(max_entries=8, show_spinner="Fitting the calibrator…")
def calibrated(
    token: str, loss: str, weights: str | None, fingerprint: str, method: str
) -> ScoredTable:
    """One loss's scores after a cross-fitted post-hoc calibrator (temperature, isotonic or
    cross-domain distribution matching)."""
    table, _ = scored(token, loss, weights, fingerprint)
    if method == MATCHING:
        return rematch(table)
    return recalibrate(table, method)  # type: ignore[arg-type]


def _table(
    token: str, loss: str, weights: str | None, fingerprint: str, calibrator: str | None
) -> ScoredTable:
    if calibrator is None:
        return scored(token, loss, weights, fingerprint)[0]
    return calibrated(token, loss, weights, fingerprint, calibrator)


@st.cache_resource(max_entries=16, show_spinner=False)
def utterances(token: str, loss: str, weights: str | None, fingerprint: str) -> pd.DataFrame:
    """The per-utterance table under one loss (read-only)."""
    table, _ = scored(token, loss, weights, fingerprint)
    r0, _ = scored(token, "r0", None, "r0")
    return utterance_table(table, r0=r0)


@st.cache_data(max_entries=64, show_spinner=False)
def filtered_utterances(
    token: str, loss: str, weights: str | None, fingerprint: str, query: UtteranceQuery
) -> tuple[pd.DataFrame, int]:
    """Filtered, sorted utterances (at most ``query.limit`` rows) and the number of matches;
    on a large dataset, a query of the index of its utterance rows."""
    if large(token):
        return utterance_index(token, loss, weights, fingerprint).search(**query.kwargs())
    return filter_utterances(utterances(token, loss, weights, fingerprint), **query.kwargs())


@st.cache_data(max_entries=16, show_spinner=False)
def misranked_count(token: str, loss: str, weights: str | None, fingerprint: str) -> int:
    """Utterances misranked under one loss (on a large dataset, counted when its index was
    written)."""
    if large(token):
        return int(utterance_index(token, loss, weights, fingerprint).n_misranked)
    return int(utterances(token, loss, weights, fingerprint)["misranked"].sum())


@dataclass(frozen=True)
class Slice:
    """What a calibration view shows: bins, population, the domain/device slice, resamples."""

    n_bins: int = 10
    strategy: str = "uniform"
    population: str = "all"
    domain: str | None = None
    device: str | None = None
    n_boot: int = 0
    calibrator: str | None = None


@st.cache_data(max_entries=128, show_spinner=False)
def curve(token: str, loss: str, weights: str | None, fingerprint: str, sl: Slice) -> pd.DataFrame:
    """A reliability curve frame of one slice, optionally after a cross-fitted calibrator."""
    if large(token):
        return large_curve(statistics(token, loss, weights, fingerprint), sl)
    table = _table(token, loss, weights, fingerprint, sl.calibrator)
    y, s, g = calibration_sample(
        table,
        population=sl.population,  # type: ignore[arg-type]
        domain=sl.domain,
        device=sl.device,
    )
    return slice_curve(
        y,
        s,
        g,
        n_bins=sl.n_bins,
        strategy=sl.strategy,  # type: ignore[arg-type]
        n_boot=sl.n_boot,
    ).to_frame()


@st.cache_data(max_entries=128, show_spinner=False)
def metrics(
    token: str, loss: str, weights: str | None, fingerprint: str, sl: Slice
) -> dict[str, dict[str, float | None]]:
    """Calibration and top-1 metrics of one slice with bootstrap intervals.

    Smooth ECE does not depend on the bins, so it is cached apart (:func:`smooth`) and a change
    of bins or strategy does not recompute it.
    """
    if large(token):
        return large_metrics(statistics(token, loss, weights, fingerprint), sl)
    table = _table(token, loss, weights, fingerprint, sl.calibrator)
    out = calibration_metrics(
        table,
        n_bins=sl.n_bins,
        strategy=sl.strategy,  # type: ignore[arg-type]
        population=sl.population,  # type: ignore[arg-type]
        domain=sl.domain,
        device=sl.device,
        n_boot=sl.n_boot,
        smooth=False,
    )
    unbinned = replace(sl, n_bins=0, strategy="")
    out["smooth_ece"] = smooth(token, loss, weights, fingerprint, unbinned)
    return out


@st.cache_data(max_entries=128, show_spinner=False)
def smooth(
    token: str, loss: str, weights: str | None, fingerprint: str, sl: Slice
) -> dict[str, float | None]:
    """Smooth ECE of one slice with its bootstrap interval (bins ignored)."""
    table = _table(token, loss, weights, fingerprint, sl.calibrator)
    return smooth_calibration(
        table,
        population=sl.population,  # type: ignore[arg-type]
        domain=sl.domain,
        device=sl.device,
        n_boot=sl.n_boot,
    )


@st.cache_data(max_entries=32, show_spinner=False)
def documents(weights: str, fingerprint: str) -> dict[str, dict[str, Any]]:
    """The current weights document of every domain of a registry."""
    from reranker.registry import WeightsRegistry

    registry = WeightsRegistry(weights)
    return {d: registry.load(d) for d in registry.domains()}


@st.cache_data(max_entries=16, show_spinner=False)
def top_domains(token: str, loss: str, weights: str | None, fingerprint: str) -> pd.DataFrame:
    """Per device, the share of utterances each domain wins top-1."""
    if large(token):
        return statistics(token, loss, weights, fingerprint).top_domains
    table, _ = scored(token, loss, weights, fingerprint)
    return top_domain_distribution(table)


@st.cache_resource(max_entries=4, show_spinner="Loading the NLU models…")
def nlu_models(path: str) -> Any:
    """The NLU models of a dataset (read-only)."""
    from reranker.nlu import load_models

    return load_models(path)


@st.cache_data(max_entries=64, show_spinner="Running the NLU models…")
def probe(
    models: str, text: str, devices: tuple[str, ...], weights: str, fingerprint: str
) -> dict[str, pd.DataFrame]:
    """Live NLU hypotheses of ``text`` ranked per device."""
    from reranker.probe import probe_text

    return probe_text(nlu_models(models), text, list(devices), weights)


@st.cache_data(max_entries=8, show_spinner="Comparing…")
def comparison(
    a: tuple[str, str, str | None, str], b: tuple[str, str, str | None, str], n_boot: int
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """B minus A with paired bootstrap intervals (``a``, ``b``: :meth:`Context.args` of each)."""
    from reranker.compare import compare_scorings

    table_a, _ = scored(*a)
    table_b, _ = scored(*b)
    result = compare_scorings(table_a.hypotheses, table_a.score, table_b.score, n_boot=n_boot)
    return result.metrics, result.changed, result.n_utterances


@st.cache_resource(max_entries=32, show_spinner=False)
def contributions_chart(
    key: tuple[str, str, str, str], _contributions: pd.DataFrame, _labels: dict[int, str]
) -> Any:
    """The contributions figure of one utterance under one scoring, built once per
    ``key = (table token, loss, weights fingerprint, utterance id)`` (a plotly figure takes
    longer to build than the rest of the page's rerun; it is only read afterwards)."""
    from reranker.charts import contributions_figure

    return contributions_figure(_contributions, _labels)
