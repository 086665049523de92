"""The dashboard on a partitioned dataset served from cached statistics (never loaded whole).

Statistics are taken once by the partitioned engine; every number the pages show from them is
compared with the in-memory computation on the same rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from reranker.calibration_slices import calibration_metrics, calibration_sample, slice_curve
from reranker.partitioned import read_dataset
from reranker.scoring import score_hypotheses
from reranker.slice_statistics import (
    BASE_BINS,
    compute_statistics,
    entry_directory,
    load_statistics,
)
from reranker.synthetic_dataset import write_synthetic_dataset
from reranker.tables import prepare, scored_view
from reranker.training import train_domains
from reranker.utterance_search import search_utterances, utterance_hypotheses
from reranker.utterances import filter_utterances, utterance_table
from tests.conftest import REPO

APP = REPO / "dashboard" / "streamlit_app.py"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``big/hypotheses/test/``: 3 flat parts of realistic hypotheses, R2 weights."""
    root = tmp_path_factory.mktemp("large")
    parts = root / "big" / "hypotheses" / "test"
    parts.parent.mkdir(parents=True)
    write_synthetic_dataset(parts, 6000, parts=3, seed=3)
    table = read_dataset(parts)
    train_domains(table, loss="r2", out=root / "big" / "weights" / "r2", engine="serial")
    return root


def _scored(data_dir: Path):  # type: ignore[no-untyped-def]
    parts = data_dir / "big" / "hypotheses" / "test"
    weights = data_dir / "big" / "weights" / "r2"
    prep = prepare(read_dataset(parts))
    return parts, weights, scored_view(prep, score_hypotheses(prep.frame, weights).score), prep


def test_statistics_equal_the_in_memory_metrics_curves_and_intervals(data_dir: Path) -> None:
    parts, weights, table, _ = _scored(data_dir)
    entry = entry_directory(parts, weights)
    compute_statistics(parts, {str(weights): entry}, jobs=1)
    stats = load_statistics(entry)
    device = stats.summary["devices"][0]
    domain = stats.summary["domains"][0]
    for dom, dev, pop, n_bins in [
        (None, None, "all", 10), (domain, None, "top1", 15), (None, device, "all", 8),
        (domain, device, "all", 20),
    ]:  # fmt: skip
        assert BASE_BINS % n_bins == 0
        ref = calibration_metrics(
            table, n_bins=n_bins, population=pop, domain=dom, device=dev, n_boot=50, smooth=False
        )
        got = stats.evaluation(dom, dev, n_bins=n_bins, n_boot=50).report(population=pop)  # type: ignore[union-attr]
        for key in ("ece", "mce", "brier", "ece_top1", "top1_semer", "top1_ie"):
            assert math.isclose(got[key], ref[key]["value"], rel_tol=1e-9, abs_tol=1e-12)
            low, high = got["intervals"][key]
            # a score within rounding of a bin edge may fall on either side of it: MCE, the
            # worst single bin of a small resampled slice, shows that; every other metric
            # agrees to rounding
            tol = 0.01 if key == "mce" else 1e-9
            assert math.isclose(low, ref[key]["low"], rel_tol=tol, abs_tol=1e-12)
            assert math.isclose(high, ref[key]["high"], rel_tol=tol, abs_tol=1e-12)
            assert low <= got[key] <= high
    assert stats.summary["n_hypotheses"] == len(table.hypotheses)
    # a second call finds the entry and does not recompute it
    before = (entry / "meta.json").stat().st_mtime_ns
    compute_statistics(parts, {str(weights): entry}, jobs=1)
    assert (entry / "meta.json").stat().st_mtime_ns == before
    assert not any(p.name.startswith(".") for p in entry.parent.iterdir())


def test_reliability_curve_from_statistics_matches(data_dir: Path) -> None:
    from dashboard.data_cache import Slice
    from dashboard.large_data import large_curve

    parts, weights, table, _ = _scored(data_dir)
    entry = entry_directory(parts, weights)
    compute_statistics(parts, {str(weights): entry}, jobs=1)
    stats = load_statistics(entry)
    got = large_curve(stats, Slice(n_bins=12, n_boot=50))
    y, s, g = calibration_sample(table)
    ref = slice_curve(y, s, g, n_bins=12, n_boot=50).to_frame()
    for column in ("count", "mean_score", "frac_correct", "frac_correct_low", "frac_correct_high"):
        np.testing.assert_allclose(got[column], ref[column], rtol=1e-9, atol=1e-12)


def test_pushed_down_search_equals_the_in_memory_filter(data_dir: Path) -> None:
    parts, weights, table, _ = _scored(data_dir)
    entry = entry_directory(parts, weights)
    compute_statistics(parts, {str(weights): entry}, jobs=1)
    r0 = scored_view(prepare(table.hypotheses))
    full = utterance_table(table, r0=r0)
    device = sorted(full["device"].unique())[1]
    cases = [
        {"misranked_only": True, "sort_by": "top_semer"},
        {"devices": (device,), "semer_range": (0.5, math.inf), "sort_by": "correct_rank"},
        {"search": full["text"].iloc[7][:6], "sort_by": "utterance_id", "descending": False},
    ]
    for case in cases:
        got, n = search_utterances(entry / "utterances", limit=40, **case)  # type: ignore[arg-type]
        ref, m = filter_utterances(full, limit=40, **case)  # type: ignore[arg-type]
        assert n == m and n > 0
        assert len(got) == len(ref)
        key = case["sort_by"]
        assert got[key].tolist() == ref[key].tolist()
        assert set(got["utterance_id"]) <= set(full["utterance_id"])
        shown = got.set_index("utterance_id")
        expected = full.set_index("utterance_id").loc[shown.index, shown.columns]
        # each row read back by position is its utterance's row (scores to rounding: a bucket is
        # scored apart from the rest of the table)
        floats = [c for c in shown.columns if shown[c].dtype.kind == "f"]
        assert shown.drop(columns=floats).equals(expected.drop(columns=floats))
        np.testing.assert_allclose(shown[floats], expected[floats].astype(float), rtol=1e-12)
    uid = full["utterance_id"].iloc[11]
    one = utterance_hypotheses(entry / "utterances", uid, n_buckets=3)
    assert len(one) == int(full["n_hypotheses"].iloc[11])
    assert set(one["utterance_id"]) == {uid}


def test_every_page_works_served_from_statistics(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANKER_DATA", str(data_dir))
    monkeypatch.setenv("RERANKER_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("RERANKER_DASHBOARD_MAX_ROWS", "1000")  # the table counts as large
    import dashboard.data_cache as cache

    monkeypatch.setattr(cache, "prepared", _refuse)
    at = AppTest.from_file(str(APP), default_timeout=300).run()
    at.radio(key="loss").set_value("r2").run()
    for page in ["data", "calibration", "utterances", "devices", "compare", "weights"]:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        if page == "data":
            shown = {m.label: m.value for m in at.metric}
            assert shown["Hypotheses"] == "6,000"
        if page == "calibration":
            assert at.table
            at.select_slider(key="cal_bins").set_value(20).run()
            assert not at.exception and at.table
        if page == "utterances":
            assert at.selectbox(key="utt_id").value
            at.toggle(key="utt_misranked").set_value(True).run()
            assert not at.exception
            assert len(at.dataframe) >= 2  # the list and the one utterance's hypotheses


def _refuse(token: str) -> None:
    raise AssertionError(f"the large table {token} was loaded whole")
