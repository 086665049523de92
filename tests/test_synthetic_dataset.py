"""reranker synth and the dataset commands end to end on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from reranker.errors import DataError
from reranker.evaluation import evaluate
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.partitioned import open_dataset
from reranker.ranking import r0_score
from reranker.synthetic_dataset import synthetic_parts, write_synthetic_dataset
from tests.test_cli_evaluate import run
from tests.test_evaluation import _assert_close


def test_synthetic_parts_have_exact_sizes_unique_ids_and_straddle() -> None:
    parts = list(synthetic_parts(2_000, 3, seed=1))
    assert [len(p) for p in parts] == [667, 666, 667]
    table = validate_hypotheses(pd.concat(parts, ignore_index=True))
    assert table["utterance_id"].nunique() > 250
    ids = [set(p["utterance_id"]) for p in parts]
    assert ids[0] & ids[1] and ids[1] & ids[2]  # cut mid-utterance, as logs cut by time
    again = pd.concat(list(synthetic_parts(2_000, 3, seed=1)), ignore_index=True)
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), again)


@pytest.mark.parametrize("layout", ["flat", "hive", "domain"])
def test_write_synthetic_dataset_layouts_hold_the_same_rows(tmp_path: Path, layout: str) -> None:
    summary = write_synthetic_dataset(tmp_path / layout, 1_500, parts=2, layout=layout, seed=2)
    assert summary["rows"] == 1_500
    table = read_hypotheses(tmp_path / layout)
    flat = validate_hypotheses(
        pd.concat(list(synthetic_parts(1_500, 2, seed=2)), ignore_index=True)
    )
    key = ["utterance_id", "domain", "intent", "slots"]
    got = table[flat.columns].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, flat.sort_values(key).reset_index(drop=True))
    if layout == "domain":
        assert all("/" not in p.relative for p in open_dataset(tmp_path / layout).parts)


def test_synthetic_parts_rejects_more_parts_than_rows() -> None:
    with pytest.raises(DataError, match="parts"):
        list(synthetic_parts(2, 3))


def test_cli_synth_evaluate_rerank_train_on_a_dataset(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = run("synth", "--out", str(data), "-n", "1500", "--parts", "3", "--layout", "hive")
    assert made.returncode == 0, made.stderr
    table = read_hypotheses(data)
    evaluated = run("evaluate", "-H", str(data), "-w", "r0", "--json", "--jobs", "1")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    expected = evaluate(table, r0_score(table))
    _assert_close(expected, report)
    ranked = run("rerank", "-H", str(data), "-w", "r0", "-o", str(tmp_path / "ranked"), "-j", "1")
    assert ranked.returncode == 0, ranked.stderr
    assert len(read_hypotheses(tmp_path / "ranked")) == len(table)
    trained = run(
        "train", "-H", str(data), "--loss", "r2", "-o", str(tmp_path / "w"), "--engine", "serial"
    )
    assert trained.returncode == 0, trained.stderr
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == sorted(table["domain"].unique())
