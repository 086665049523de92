"""The dashboard on a partitioned dataset served from cached statistics (never loaded whole).

Statistics are taken once by the partitioned engine; every number the pages show from them is
compared with the in-memory computation on the same rows.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
from reranker.utterance_index import (
    SORTABLE,
    build_index,
    ensure_index,
    first_matches,
    index_complete,
    open_index,
)
from reranker.utterance_index_files import FORMAT, QUERY
from reranker.utterance_search import utterance_hypotheses
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


def _indexed_entry(data_dir: Path) -> Path:
    parts, weights, _, _ = _scored(data_dir)
    entry = entry_directory(parts, weights)
    compute_statistics(parts, {str(weights): entry}, jobs=1)
    return entry / "utterances"


def test_index_search_equals_the_in_memory_filter(data_dir: Path) -> None:
    """Rows of the index are the in-memory utterance table's, in the same order (ties in
    utterance id order: the in-memory table sorted by id)."""
    table = _scored(data_dir)[2]
    index = open_index(_indexed_entry(data_dir))
    r0 = scored_view(prepare(table.hypotheses))
    full = utterance_table(table, r0=r0).sort_values("utterance_id", ignore_index=True)
    device = sorted(full["device"].unique())[1]
    cases = [
        {"misranked_only": True, "sort_by": "top_semer", "descending": True},
        {"devices": (device,), "semer_range": (0.5, math.inf), "sort_by": "correct_rank"},
        {"search": full["text"].iloc[7][:6].upper(), "sort_by": "utterance_id"},
        {"search": "e", "sort_by": "top_domain", "descending": True},
        {"sort_by": "n_hypotheses", "descending": True},
    ]
    for case in cases:
        got, n = index.search(limit=40, **case)  # type: ignore[arg-type]
        ref, m = filter_utterances(full, limit=40, **case)  # type: ignore[arg-type]
        assert n == m and n > 0
        assert got["utterance_id"].tolist() == ref["utterance_id"].tolist()
        ref = ref[got.columns].reset_index(drop=True)
        # scores to rounding: a bucket is scored apart from the rest of the table
        floats = [c for c in got.columns if got[c].dtype.kind == "f"]
        pd.testing.assert_frame_equal(got.drop(columns=floats), ref.drop(columns=floats))
        np.testing.assert_allclose(got[floats], ref[floats].astype(float), rtol=1e-12)
    uid = full["utterance_id"].iloc[11]
    parts = data_dir / "big" / "hypotheses" / "test"
    r0_entry = entry_directory(parts, None)
    compute_statistics(parts, {"r0": r0_entry}, jobs=1)
    # one utterance's hypotheses are kept in the R0 entry only
    assert not list(_indexed_entry(data_dir).glob("_hypotheses-*"))
    one = utterance_hypotheses(r0_entry / "utterances", uid, n_buckets=3)
    assert len(one) == int(full["n_hypotheses"].iloc[11])
    assert set(one["utterance_id"]) == {uid}


def test_query_files_equal_the_columns_of_the_rows(data_dir: Path) -> None:
    """The arrays a query reads (memory-mapped .npy files) are the rows' own columns, and the
    misranked count is the count of a query of misranked rows."""
    folder = _indexed_entry(data_dir)
    assert index_complete(folder)
    index = open_index(folder)
    rows = index.table.to_pandas()
    assert index.n == len(rows)
    np.testing.assert_array_equal(index.misranked, rows["misranked"].to_numpy(bool))
    np.testing.assert_array_equal(index.semer, rows["top_semer"].to_numpy(float))
    for name in ("device", "reference_domain"):
        codes, lookup = index.codes[name]
        names = np.array([*sorted(lookup, key=lookup.get), None], dtype=object)  # type: ignore[arg-type]
        assert list(names[codes]) == rows[name].tolist()
    assert index.n_misranked == index.search(misranked_only=True, limit=0)[1]
    assert index.n_misranked == int(rows["misranked"].sum()) > 0
    low, high = rows["top_semer"].min(), rows["top_semer"].max()
    assert index._query.semer_bounds == (low, high)
    assert index.mask(semer_range=(0.0, math.inf)) is None  # every row: nothing to compare
    assert index.mask(semer_range=(0.0, high / 2)).sum() == (rows["top_semer"] <= high / 2).sum()


def _old_format(folder: Path) -> None:
    """The index as written before its query files existed."""
    for path in [folder / QUERY, *folder.glob("_*.npy")]:
        if path.name != "_order.npy":
            path.unlink()


def _answers(index: Any) -> list[Any]:
    cases = [{"misranked_only": True}, {"devices": ("echo_dot",)}, {"semer_range": (0.5, 9.0)}]
    return [index.search(limit=30, sort_by="top_semer", **c) for c in cases]  # type: ignore[arg-type]


def test_an_index_without_query_files_gets_them_and_answers_the_same(
    data_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "utterances"
    shutil.copytree(_indexed_entry(data_dir), folder)
    want = _answers(open_index(folder))
    order = (folder / "_order.npy").stat().st_mtime_ns
    _old_format(folder)
    assert not index_complete(folder)
    ensure_index(folder)  # what the statistics pass does to an entry it finds
    assert index_complete(folder)
    assert (folder / "_order.npy").stat().st_mtime_ns == order  # the rest is kept
    for (got, n), (ref, m) in zip(_answers(open_index(folder)), want, strict=True):
        assert n == m
        pd.testing.assert_frame_equal(got, ref)


def test_query_files_of_another_format_or_other_parts_are_rewritten_not_read(
    data_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "utterances"
    shutil.copytree(_indexed_entry(data_dir), folder)
    want = _answers(open_index(folder))
    n_misranked = open_index(folder).n_misranked
    meta = json.loads((folder / QUERY).read_text())
    np.save(folder / "_misranked.npy", ~np.load(folder / "_misranked.npy"))  # wrong if read
    changes = [{"format": FORMAT - 1}, {"parts": meta["parts"][:-1]}, {"parts": ["?"] * 3}]
    for change in changes:
        (folder / QUERY).write_text(json.dumps(meta | change))
        assert not index_complete(folder)
        index = open_index(folder)
        assert index.n_misranked == n_misranked
        assert [(f.to_dict(), n) for f, n in _answers(index)] == [(f.to_dict(), n) for f, n in want]
        assert index_complete(folder)
        np.save(folder / "_misranked.npy", ~np.load(folder / "_misranked.npy"))


def test_an_index_that_cannot_be_written_opens_from_its_parts(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reranker.utterance_index as module

    folder = tmp_path / "utterances"
    shutil.copytree(_indexed_entry(data_dir), folder)
    want = _answers(open_index(folder))
    _old_format(folder)

    def refuse(root: Path, query: Any) -> None:
        raise PermissionError(f"{root}: read-only")

    monkeypatch.setattr(module, "save_query", refuse)
    got = _answers(open_index(folder))
    assert [(f.to_dict(), n) for f, n in got] == [(f.to_dict(), n) for f, n in want]
    assert not (folder / QUERY).exists()


def test_indexes_of_the_same_rows_share_their_text_searches(data_dir: Path) -> None:
    """R0 and R2 rows of one dataset have the same texts: a text search made under one loss
    is not scanned again under the other, and gives each index's own rows."""
    r2 = open_index(_indexed_entry(data_dir))
    parts = data_dir / "big" / "hypotheses" / "test"
    r0_entry = entry_directory(parts, None)
    compute_statistics(parts, {"r0": r0_entry}, jobs=1)
    r0 = open_index(r0_entry / "utterances")
    assert r0._query.text_digest == r2._query.text_digest
    needle = r0.table.column("text")[5].as_py()[:4]
    first = r2.search(search=needle, limit=0)[1]
    assert first > 0
    r0._searched.clear()  # nothing left to scan: the mask comes from the shared searches
    assert r0.search(search=needle, limit=0)[1] == first


UNICODE_TEXTS = (
    "İstanbul Straße",
    'line\u2028sep\nnew "quoted" \\ end',
    "ΣΊΣΥΦΟΣ plays",
    "ǅemal ﬁle",
    "naïve CAFÉ",
    "\u212aelvin",
)


@pytest.fixture(scope="module")
def unicode_index(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The pass's utterance rows with some texts made non-ASCII and some SemER missing, as two
    parts, indexed."""
    rows = open_index(_indexed_entry(data_dir)).table.to_pandas()
    rows["text"] = rows["text"].where(
        rows.index % 7 != 3, [UNICODE_TEXTS[i % len(UNICODE_TEXTS)] for i in range(len(rows))]
    )
    rows["top_semer"] = rows["top_semer"].where(rows.index % 13 != 5)  # some missing
    folder = tmp_path_factory.mktemp("unicode_index")
    half = len(rows) // 2
    for k, piece in enumerate([rows.iloc[half:], rows.iloc[:half]]):
        piece.to_parquet(folder / f"part-{k:05d}.parquet", index=False)
    build_index(folder)
    return open_index(folder), rows.sort_values("utterance_id", ignore_index=True)


def _queries(rows: pd.DataFrame):  # type: ignore[no-untyped-def]
    texts = st.sampled_from([*rows["text"].iloc[:300], *rows["utterance_id"].iloc[:50]])
    needles = st.one_of(
        st.tuples(texts, st.integers(0, 8), st.integers(1, 6)).map(
            lambda t: t[0][t[1] : t[1] + t[2]]
        ),
        st.sampled_from(["i̇stanbul", "STRASSE", "σίσυφος", "ǆ", "kelvin", "Ï", " ", "zzz"]),
    )
    ranges = st.one_of(
        st.none(),
        st.tuples(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.sampled_from([0.5, 1.0, math.inf])),
    )
    return st.fixed_dictionaries(
        {
            "search": st.one_of(st.just(""), needles, needles.map(str.upper)),
            "misranked_only": st.booleans(),
            "domains": st.lists(
                st.sampled_from(sorted(rows["reference_domain"].unique())), max_size=3
            ).map(tuple),
            "devices": st.lists(st.sampled_from(sorted(rows["device"].unique())), max_size=2).map(
                tuple
            ),
            "semer_range": ranges,
            "sort_by": st.sampled_from([None, "utterance_id", *SORTABLE, "top_domain", "text"]),
            "descending": st.booleans(),
            "limit": st.integers(0, 60),
        }
    )


def test_index_gives_the_in_memory_rows_in_order_for_any_query(unicode_index: tuple) -> None:
    index, rows = unicode_index
    assert index._query.semer_bounds is None  # a range filter always reads the SemER

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(query=_queries(rows))
    def check(query: dict) -> None:
        got, n = index.search(**query)
        ref, m = filter_utterances(rows, **query)
        assert n == m
        pd.testing.assert_frame_equal(got, ref[got.columns].reset_index(drop=True))
        assert list(got.columns) == list(rows.columns)

    check()


def test_first_matches_reads_in_steps() -> None:
    order = np.random.default_rng(0).permutation(1000)
    mask = order % 3 == 0
    for limit in (0, 1, 5, 400):
        want = order[mask[order]][:limit]
        np.testing.assert_array_equal(first_matches(order, mask, limit, step=7), want)


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
            table = _scored(data_dir)[2]
            full = utterance_table(table, r0=scored_view(prepare(table.hypotheses)))
            shown = " ".join(c.value for c in at.caption)
            assert f"{int(full['misranked'].sum()):,} utterances are misranked under" in shown
            at.toggle(key="utt_misranked").set_value(True).run()
            assert not at.exception
            assert len(at.dataframe) >= 2  # the list and the one utterance's hypotheses


def _refuse(token: str) -> None:
    raise AssertionError(f"the large table {token} was loaded whole")
