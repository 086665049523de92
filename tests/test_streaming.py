"""Evaluate and rerank on partitioned datasets: the same numbers in memory, streaming and on Dask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reranker.errors import DataError
from reranker.evaluation import evaluate
from reranker.executors import DaskExecutor, LocalExecutor
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.partitioned import read_dataset
from reranker.ranking import r0_score
from reranker.streaming import evaluate_dataset, rerank_dataset
from reranker.tables import score_table
from tests.conftest import make_table
from tests.test_partitioned import write_layout


def executor_named(name: str, scheduler: str) -> LocalExecutor | DaskExecutor:
    if name == "dask":
        return DaskExecutor(scheduler)
    return LocalExecutor(int(name[-1]))


# Each layout on another engine keeps the run short; every engine and layout is covered.
CASES = [("flat", "local-1"), ("hive", "local-2"), ("domain", "dask")]


@pytest.fixture(scope="module")
def straddling(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, dict[str, Path]]:
    """One table written in three layouts; utterances straddle parts in every one."""
    frame = make_table(150, seed=11)
    root = tmp_path_factory.mktemp("datasets")
    paths = {
        layout: write_layout(frame, root / layout, layout, parts=4)
        for layout in ("flat", "hive", "domain")
    }
    return frame, paths


def both_ways(expected: object, got: object, path: str = "") -> None:
    """The same keys at every level, and every number equal to 1e-9 (None where None)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), path
        for key, value in expected.items():
            both_ways(value, got[key], f"{path}{key}.")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), path
        for k, (a, b) in enumerate(zip(expected, got, strict=True)):
            both_ways(a, b, f"{path}{k}.")
    elif expected is None or isinstance(expected, str):
        assert got == expected, path
    else:
        assert got == pytest.approx(expected, abs=1e-9), path


@pytest.mark.parametrize(("layout", "engine"), CASES)
def test_evaluate_dataset_equals_in_memory(
    straddling: tuple[pd.DataFrame, dict[str, Path]], dask_scheduler: str, layout: str, engine: str
) -> None:
    path = straddling[1][layout]
    table = read_hypotheses(path)  # the in-memory path: the parts concatenated
    with executor_named(engine, dask_scheduler) as executor:
        for population, strategy in (("all", "uniform"), ("top1", "quantile")):
            options = {"n_bins": 7, "population": population, "strategy": strategy}
            expected = evaluate(table, r0_score(table), **options)
            report, source = evaluate_dataset(str(path), "r0", executor=executor, **options)
            both_ways(expected, report)
            assert set(source.values()) == {"r0"}
            assert {"smooth_ece", "ece", "ece_top1"} <= set(report["by_device"]["fire_tv"])
            assert len(report["reliability"]["count"]) == 7


def test_evaluate_dataset_with_weights_matches(tmp_path: Path, straddling, dask_scheduler) -> None:
    from reranker.training import train_domains

    paths = straddling[1]
    table = read_hypotheses(paths["hive"])
    train_domains(table, loss="r2", out=tmp_path / "w", engine="serial")
    from reranker.scoring import score_hypotheses

    expected = evaluate(table, score_hypotheses(table, tmp_path / "w").score)
    with DaskExecutor(dask_scheduler) as executor:
        report, source = evaluate_dataset(str(paths["hive"]), tmp_path / "w", executor=executor)
    both_ways(expected, report)
    assert all(v.startswith("r2 v1") for v in source.values())


@pytest.mark.parametrize(("layout", "engine"), CASES)
def test_rerank_dataset_equals_in_memory_and_mirrors_layout(
    tmp_path: Path, straddling, dask_scheduler: str, layout: str, engine: str
) -> None:
    path = straddling[1][layout]
    table = read_hypotheses(path)
    scored = score_table(table, r0_score(table))
    out = tmp_path / "out"
    with executor_named(engine, dask_scheduler) as executor:
        n_rows, _ = rerank_dataset(str(path), "r0", out, executor=executor)
    assert n_rows == len(table)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert written == sorted(p.relative_to(path).as_posix() for p in path.rglob("*.parquet"))
    ranked = read_dataset(out)
    np.testing.assert_allclose(ranked["score"], scored.score, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ranked["rank"], scored.rank)
    np.testing.assert_array_equal(ranked["correct"], scored.correct)
    np.testing.assert_allclose(ranked["semer"], scored.semer, atol=1e-12)
    pd.testing.assert_frame_equal(ranked[table.columns], table)


def test_malformed_part_is_rejected_with_its_row_and_nothing_written(tmp_path: Path) -> None:
    frame = make_table(60, seed=12)
    path = write_layout(frame, tmp_path / "in", "flat", parts=3)
    bad = pd.read_parquet(path / "part-00002.parquet")
    bad.loc[6, "domain_score"] = -0.5
    bad.to_parquet(path / "part-00002.parquet", index=False)
    with LocalExecutor(1) as executor:
        with pytest.raises(DataError, match=r"part-00002\.parquet: row 7, column 'domain_score'"):
            rerank_dataset(str(path), "r0", tmp_path / "out", executor=executor)
        with pytest.raises(DataError, match=r"part-00002\.parquet: row 7"):
            evaluate_dataset(str(path), "r0", executor=executor)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_cross_part_breach_reports_the_same_error_as_in_memory(tmp_path: Path) -> None:
    frame = validate_hypotheses(make_table(40, seed=13))
    root = tmp_path / "d"
    write_layout(frame, root, "flat", parts=3)
    dup = frame.iloc[[5, 30]]
    dup.to_parquet(root / "part-00009.parquet", index=False)
    with pytest.raises(DataError) as memory:
        read_dataset(root)
    with LocalExecutor(1) as executor, pytest.raises(DataError) as streamed:
        evaluate_dataset(str(root), "r0", executor=executor)
    assert str(streamed.value) == str(memory.value)
    assert "part-00009.parquet: row 1" in str(memory.value)


def test_interrupted_rerank_leaves_the_previous_output(tmp_path: Path, monkeypatch) -> None:
    import reranker.streaming as streaming

    frame = make_table(60, seed=14)
    path = write_layout(frame, tmp_path / "in", "flat", parts=5)
    out = tmp_path / "out"
    with LocalExecutor(1) as executor:
        rerank_dataset(str(path), "r0", out, executor=executor)
    before = read_dataset(out)
    real = streaming.join_part
    calls = []

    def failing(dataset, scratch, index):
        calls.append(index)
        if len(calls) == 4:
            raise OSError("disk full")
        return real(dataset, scratch, index)

    monkeypatch.setattr(streaming, "join_part", failing)
    with LocalExecutor(1) as executor, pytest.raises(OSError, match="disk full"):
        rerank_dataset(str(path), "r0", out, executor=executor)
    pd.testing.assert_frame_equal(read_dataset(out), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert len(calls) >= 4


def test_bootstrap_intervals_do_not_depend_on_partitioning(
    straddling: tuple[pd.DataFrame, dict[str, Path]], dask_scheduler: str
) -> None:
    paths = straddling[1]
    table = read_hypotheses(paths["flat"])
    options = {"n_boot": 40, "seed": 3, "confidence": 0.8}
    for layout, engine, strategy in (
        ("hive", "dask", "uniform"),
        ("domain", "local-1", "quantile"),
    ):
        expected = evaluate(table, r0_score(table), strategy=strategy, **options)
        with executor_named(engine, dask_scheduler) as executor:
            report, _ = evaluate_dataset(
                str(paths[layout]), "r0", executor=executor, strategy=strategy, **options
            )
        both_ways(expected, report)
        assert "frac_correct_low" in report["reliability"]
    for key, (low, high) in report["intervals"].items():
        assert low <= report[key] <= high, key


def test_utterance_slices_hold_whole_utterances_in_order() -> None:
    from reranker.streaming import utterance_slices

    ids = pd.Series(np.random.default_rng(3).integers(0, 40, 500).astype(str))
    groups = utterance_slices(ids, rows=60)
    assert len(groups) > 1
    rows = np.concatenate([g for g in groups if g is not None])
    assert np.array_equal(np.sort(rows), np.arange(len(ids)))
    seen: set[str] = set()
    for g in groups:
        assert g is not None and np.all(np.diff(g) > 0)  # each group in table order
        mine = set(ids.iloc[g])
        assert not mine & seen  # an utterance lies in one group only
        seen |= mine
    assert utterance_slices(ids, rows=500) == [None]


def test_buckets_scored_in_slices_equal_in_memory(
    straddling: tuple[pd.DataFrame, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket scored and reduced group by group gives the in-memory report, intervals too."""
    from reranker import streaming

    monkeypatch.setattr(streaming, "SLICE_ROWS", 37)
    path = straddling[1]["hive"]
    table = read_hypotheses(path)
    options = {"n_bins": 6, "strategy": "quantile", "n_boot": 20, "seed": 4}
    expected = evaluate(table, r0_score(table), **options)
    with LocalExecutor(1) as executor:
        report, _ = evaluate_dataset(str(path), "r0", executor=executor, **options)
    both_ways(expected, report)
