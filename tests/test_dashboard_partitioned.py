"""The dashboard on a partitioned dataset (directories of Parquet parts), through AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.names import table_token
from reranker.datasets import discover_datasets
from reranker.hypotheses import read_hypotheses
from reranker.training import train_domains
from tests.conftest import CONFORMANCE, REPO

APP = REPO / "dashboard" / "streamlit_app.py"
PAGES = ["data", "weights", "calibration", "utterances", "devices"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``parts/hypotheses/test/`` one Parquet file per domain (hive), ``dev/`` flat parts."""
    root = tmp_path_factory.mktemp("partitioned")
    table = read_hypotheses(CONFORMANCE / "hypotheses.csv")
    hyps = root / "parts" / "hypotheses"
    pq.write_to_dataset(
        pa.Table.from_pandas(table, preserve_index=False), hyps / "test", partition_cols=["domain"]
    )
    (hyps / "dev").mkdir(parents=True)
    half = len(table) // 2
    for k, part in enumerate((table.iloc[:half], table.iloc[half:])):
        part.to_parquet(hyps / "dev" / f"part-{k}.parquet", index=False)
    (root / "parts" / "dataset.json").write_text(
        json.dumps({"name": "Parts", "description": "Conformance table in parts."})
    )
    train_domains(table, loss="r2", out=root / "parts" / "weights" / "r2", engine="serial")
    return root


def test_partitioned_splits_are_discovered_and_keyed_by_their_parts(data_dir: Path) -> None:
    (info,) = discover_datasets(data_dir)
    assert list(info.splits) == ["test", "dev"]
    assert all(p.is_dir() for p in info.splits.values())
    token = table_token(info.splits["dev"])
    (info.splits["dev"] / "part-1.parquet").touch()
    assert table_token(info.splits["dev"]) != token  # a changed part invalidates the cache


def test_every_page_works_on_a_partitioned_dataset(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANKER_DATA", str(data_dir))
    monkeypatch.setenv("RERANKER_WORKSPACE", str(tmp_path / "workspace"))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.radio(key="loss").set_value("r2").run()
    n_rows = len(read_hypotheses(CONFORMANCE / "hypotheses.csv"))
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        if page == "data":
            shown = {m.label: m.value for m in at.metric}
            assert shown["Hypotheses"] == f"{n_rows:,}"
        if page == "calibration":
            assert at.table  # the metrics, with intervals
        if page == "utterances":
            assert at.selectbox(key="utt_id").value
