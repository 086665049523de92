"""Training on a partitioned dataset: the same weights as in memory, rows read on the workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reranker.dataset_training import train_dataset_domains
from reranker.errors import DataError
from reranker.executors import DaskExecutor, LocalExecutor
from reranker.hypotheses import read_hypotheses
from reranker.partitioned import open_dataset, read_rows
from reranker.registry import WeightsRegistry
from reranker.training import train_domains
from tests.conftest import make_table
from tests.test_partitioned import write_layout


def documents(path: Path) -> dict[str, dict]:
    registry = WeightsRegistry(path)
    return {d: registry.load(d) for d in registry.domains()}


def assert_same_weights(expected: dict[str, dict], got: dict[str, dict]) -> None:
    assert sorted(expected) == sorted(got)
    for d, doc in expected.items():
        other = got[d]
        assert other["features"] == doc["features"]
        np.testing.assert_allclose(other["weights"], doc["weights"], rtol=0, atol=1e-9)
        assert other["bias"] == pytest.approx(doc["bias"], abs=1e-9)
        assert other["training_data"] == doc["training_data"]
        assert other["metrics"]["n_iter"] == doc["metrics"]["n_iter"]


@pytest.fixture(scope="module")
def hive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = make_table(120, seed=21)
    return write_layout(frame, tmp_path_factory.mktemp("train") / "hive", "hive", parts=3)


@pytest.mark.parametrize(("scope", "engine"), [("domain", "local-1"), ("utterance", "dask")])
def test_dataset_training_equals_in_memory(
    tmp_path: Path,
    hive: Path,
    dask_scheduler: str,
    scope: str,
    engine: str,
) -> None:
    table = read_hypotheses(hive)
    memory, streamed = tmp_path / "memory", tmp_path / "streamed"
    for out in (memory, streamed):  # a published R2 makes the frozen competitors non-trivial
        train_domains(table, loss="r2", out=out, domains=["Music"], engine="serial")
    train_domains(table, loss="r3", out=memory, scope=scope, engine="serial")
    executor = DaskExecutor(dask_scheduler) if engine == "dask" else LocalExecutor(1)
    with executor:
        results = train_dataset_domains(
            str(hive), loss="r3", out=streamed, scope=scope, executor=executor
        )
    assert all(r.ok for r in results.values())
    assert_same_weights(documents(memory), documents(streamed))


def test_read_rows_pushes_the_domain_filter_down(tmp_path: Path) -> None:
    frame = make_table(80, seed=22)
    flat = tmp_path / "flat.parquet"
    flat.parent.mkdir(exist_ok=True)
    ordered = frame.sort_values("domain", kind="stable").reset_index(drop=True)
    ordered.to_parquet(flat, index=False, row_group_size=20)
    dataset = open_dataset(str(flat))
    rows, positions = read_rows(dataset, 0, domain="Video")
    assert (rows["domain"] == "Video").all()
    np.testing.assert_array_equal(positions, np.flatnonzero(ordered["domain"] == "Video"))
    ids = rows["utterance_id"].unique().tolist()
    others, where = read_rows(dataset, 0, domain="Video", utterances=ids)
    expected = ordered["utterance_id"].isin(ids) & (ordered["domain"] != "Video")
    np.testing.assert_array_equal(where, np.flatnonzero(expected))
    assert not (others["domain"] == "Video").any()


def test_dataset_training_rejects_a_malformed_part(tmp_path: Path) -> None:
    frame = make_table(40, seed=23)
    path = write_layout(frame, tmp_path / "in", "flat", parts=2)
    bad = pd.read_parquet(path / "part-00001.parquet")
    bad.loc[2, "slot_score"] = float("nan")
    bad.to_parquet(path / "part-00001.parquet", index=False)
    with (
        LocalExecutor(1) as executor,
        pytest.raises(DataError, match=r"part-00001\.parquet: row 3, column 'slot_score'"),
    ):
        train_dataset_domains(str(path), loss="r2", out=tmp_path / "w", executor=executor)
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


@pytest.mark.parametrize("scope", ["domain", "utterance"])
def test_dataset_training_checks_references_across_domains_as_in_memory(
    tmp_path: Path, scope: str
) -> None:
    """A reference differing between two domains' hypotheses of one utterance, in two parts."""
    frame = make_table(40, seed=24)
    per_domain = frame.groupby(["utterance_id", "domain"], sort=False).size()
    alone = per_domain[per_domain == 1].reset_index()  # its domain's only hypothesis there
    shared = frame["utterance_id"].map(frame.groupby("utterance_id")["domain"].nunique()) > 1
    row = int(
        np.flatnonzero(
            shared
            & frame.set_index(["utterance_id", "domain"]).index.isin(
                alone.set_index(["utterance_id", "domain"]).index
            )
        )[-1]
    )
    frame.loc[row, "ref_slots"] = "play [title : something else]"
    path = write_layout(frame, tmp_path / "in", "hive", parts=2)
    with pytest.raises(DataError) as memory:
        read_hypotheses(path)
    assert "reference" in str(memory.value) and "domain=" in str(memory.value)
    with LocalExecutor(1) as executor, pytest.raises(DataError) as streamed:
        train_dataset_domains(
            str(path), loss="r2", out=tmp_path / "w", scope=scope, executor=executor
        )
    assert str(streamed.value) == str(memory.value)
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60,000 realistic hypotheses of 8 domains in 5 flat parts of several row groups each."""
    import pyarrow.parquet as pq

    from reranker.synthetic_dataset import write_synthetic_dataset

    path = tmp_path_factory.mktemp("realistic") / "flat"
    write_synthetic_dataset(path, 60_000, parts=5, layout="flat", seed=5)
    for part in sorted(path.glob("*.parquet")):  # row-group offsets and statistics exercised
        pq.write_table(pq.read_table(part), part, row_group_size=4_000)
    return path


@pytest.mark.parametrize("engine", ["local-2", "dask"])
def test_realistic_dataset_training_equals_in_memory(
    tmp_path: Path, realistic: Path, dask_scheduler: str, engine: str
) -> None:
    """Every domain of a realistic dataset, trained by concurrent workers reading their own
    rows (largest domain first), has the in-memory weights to 1e-9 and the same training rows."""
    table = read_hypotheses(realistic)
    assert table["domain"].nunique() == 8
    memory, streamed = tmp_path / "memory", tmp_path / "streamed"
    train_domains(table, loss="r2", out=memory, engine="serial")
    executor = DaskExecutor(dask_scheduler) if engine == "dask" else LocalExecutor(2)
    with executor:
        results = train_dataset_domains(str(realistic), loss="r2", out=streamed, executor=executor)
    assert len(results) == 8 and all(r.ok for r in results.values())
    assert_same_weights(documents(memory), documents(streamed))
