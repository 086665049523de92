"""Paired comparison of two scorings (reranker.compare, reranker compare)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reranker.bootstrap import poisson_weights, utterance_keys
from reranker.compare import COMPARED_METRICS, compare_scorings
from reranker.errors import DataError
from reranker.evaluation import evaluate
from reranker.hypotheses import validate_hypotheses
from reranker.ranking import r0_score
from reranker.synthetic import synthetic_hypotheses
from tests.conftest import reranker_cli


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return validate_hypotheses(synthetic_hypotheses(300, seed=7))


def _other(table: pd.DataFrame) -> np.ndarray:
    return np.clip(table["domain_score"].to_numpy() * 0.9 + 0.05, 0, 1)


def test_estimates_equal_evaluate(table: pd.DataFrame) -> None:
    a, b = r0_score(table), _other(table)
    result = compare_scorings(table, a, b, n_boot=50)
    ra, rb = evaluate(table, a), evaluate(table, b)
    for metric in COMPARED_METRICS:
        assert result.metrics.loc[metric, "a"] == pytest.approx(ra[metric], abs=1e-12)
        assert result.metrics.loc[metric, "b"] == pytest.approx(rb[metric], abs=1e-12)
        row = result.metrics.loc[metric]
        assert row["low"] <= row["difference"] <= row["high"]


def test_identical_scorings_differ_by_exactly_zero(table: pd.DataFrame) -> None:
    a = r0_score(table)
    result = compare_scorings(table, a, a.copy(), n_boot=40)
    assert (result.metrics[["difference", "low", "high"]].to_numpy() == 0).all()
    assert result.changed.empty


def test_paired_replicate_matches_a_slow_weighted_recomputation(table: pd.DataFrame) -> None:
    a, b = r0_score(table), _other(table)
    result = compare_scorings(table, a, b, n_boot=1, seed=3)
    # one resample: the interval collapses onto min/max of estimate and that replicate
    ids = table["utterance_id"].drop_duplicates().to_numpy()
    w = dict(zip(ids, poisson_weights(utterance_keys(ids), 1, seed=3)[0], strict=True))
    weighted = table.loc[table["utterance_id"].map(w).to_numpy() > 0]
    copies = weighted.loc[weighted.index.repeat(weighted["utterance_id"].map(w).astype(int))]
    copies = copies.assign(
        utterance_id=copies["utterance_id"] + "#" + copies.groupby(level=0).cumcount().astype(str)
    )
    sa = pd.Series(a, index=table.index).loc[copies.index].to_numpy()
    sb = pd.Series(b, index=table.index).loc[copies.index].to_numpy()
    rebuilt = copies.reset_index(drop=True)
    slow = evaluate(rebuilt, sb)["top1_semer"] - evaluate(rebuilt, sa)["top1_semer"]
    row = result.metrics.loc["top1_semer"]
    assert min(row["difference"], slow) == pytest.approx(row["low"], abs=1e-12)
    assert max(row["difference"], slow) == pytest.approx(row["high"], abs=1e-12)


def test_changed_utterances_are_the_flips(table: pd.DataFrame) -> None:
    a, b = r0_score(table), _other(table)
    result = compare_scorings(table, a, b, n_boot=20)
    ie = result.metrics.loc["top1_ie"]
    n = result.n_utterances
    counts = result.changed["change"].value_counts()
    net = counts.get("right to wrong", 0) - counts.get("wrong to right", 0)
    assert ie["difference"] == pytest.approx(net / n, abs=1e-12)
    assert set(result.changed["utterance_id"]) <= set(table["utterance_id"])


def test_bad_scorings_are_refused(table: pd.DataFrame) -> None:
    a = r0_score(table)
    with pytest.raises(DataError, match="one score per hypothesis"):
        compare_scorings(table, a, a[:-1])
    with pytest.raises(DataError, match="outside"):
        compare_scorings(table, a, a + 2.0)


def test_cli_compare_json(table: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "h.parquet"
    table.to_parquet(path)
    done = subprocess.run(
        [*reranker_cli(), "compare", "-H", str(path), "--a", "r0", "--b", "r0", "--bootstrap", "20", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc["metrics"]) == set(COMPARED_METRICS)
    assert doc["metrics"]["top1_semer"]["difference"] == 0.0 and doc["changed"] == []
    bad = subprocess.run(
        [*reranker_cli(), "compare", "-H", str(tmp_path / "missing.csv"), "--a", "r0", "--b", "r0"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and bad.stderr.startswith("reranker: error:")


def test_cli_compare_lists_the_changed_utterances_as_plain_text(tmp_path: Path) -> None:
    """The text output names the utterances that flipped (their text never read as markup)."""
    demo = Path(__file__).resolve().parent.parent / "demo_data" / "real"
    table = pd.read_parquet(demo / "hypotheses" / "test.parquet")
    r3 = str(demo / "weights" / "r3")
    from reranker.scoring import score_hypotheses

    expected = compare_scorings(
        table, r0_score(table), score_hypotheses(table, r3).score, n_boot=20
    ).changed
    assert len(expected) > 20
    first = expected["utterance_id"].iloc[0]
    table["text"] = table["text"].where(table["utterance_id"] != first, "[bold]play[/bold] x")
    path = tmp_path / "h.parquet"
    table.to_parquet(path)
    done = subprocess.run(
        [*reranker_cli(), "compare", "-H", str(path), "--a", "r0", "--b", r3, "--bootstrap", "20"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    shown = set(re.findall(r"slurp-devel-\d+", done.stdout))
    assert shown == set(expected["utterance_id"].head(20))
    assert "[bold]play[/bold] x" in done.stdout
    assert f"... and {len(expected) - 20} more (--json lists them all)" in done.stdout
