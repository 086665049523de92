"""Training all domains independently and in parallel, publishing to a registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from sklearn.exceptions import ConvergenceWarning

from reranker.errors import DataError, RerankerError
from reranker.evaluation import evaluate
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.options import TrainingOptions
from reranker.ranking import r0_score
from reranker.registry import WeightsRegistry
from reranker.scoring import score_with_registry
from reranker.synthetic import synthetic_hypotheses
from reranker.training import (
    DomainTask,
    LocalEngine,
    prepare_tasks,
    train_domains,
)

CONFORMANCE = Path(__file__).parent / "data" / "conformance" / "hypotheses.csv"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return validate_hypotheses(synthetic_hypotheses(600, seed=11))


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _weights(results: dict[str, Any]) -> dict[str, tuple[list[float], float]]:
    return {d: (r.document["weights"], r.document["bias"]) for d, r in results.items()}


def test_train_domains_serial_publishes_every_domain(table: pd.DataFrame, tmp_path: Path) -> None:
    calls: list[tuple[str, str, float]] = []
    results = train_domains(
        table, loss="r3", out=tmp_path, engine="serial", progress=lambda *a: calls.append(a)
    )
    domains = sorted(table["domain"].unique())
    assert list(results) == domains
    reg = WeightsRegistry(tmp_path)
    assert reg.domains() == domains
    for d, r in results.items():
        assert r.ok and r.version == 1 and r.error is None
        doc = reg.load(d)
        assert doc == r.document
        assert doc["loss"] == "r3"
        assert doc["metrics"]["converged"] is True
        assert doc["metrics"]["n_iter"] >= 1
        rows = table[table["domain"] == d]
        assert doc["training_data"]["n_hypotheses"] == len(rows)
        assert doc["training_data"]["n_utterances"] == rows["utterance_id"].nunique()
        search = doc["options"].pop("device_l2_search")
        assert doc["options"] == {
            "alpha": 1.0,
            "l2": 1e-3,
            "max_iter": 1000,
            "scope": "utterance",
            "temperature": 1.0,
            "device_l2": doc["options"]["device_l2"],
        }
        assert doc["options"]["device_l2"] in search["grid"] and search["rule"]
    for d in domains:
        mine = [c for c in calls if c[0] == d]
        assert mine[0][2] == 0.0
        assert mine[-1][2] == 1.0
        assert mine[-1][1].startswith("published v1")


def test_parallel_and_serial_give_identical_weights(table: pd.DataFrame, tmp_path: Path) -> None:
    serial = train_domains(table, loss="r2", out=tmp_path / "s", engine="serial")
    local = train_domains(table, loss="r2", out=tmp_path / "p", engine="local", jobs=2)
    assert _weights(serial) == _weights(local)
    same_data = {d: r.document["training_data"] for d, r in serial.items()}
    assert same_data == {d: r.document["training_data"] for d, r in local.items()}


def test_dask_engine_with_a_local_cluster(table: pd.DataFrame, tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    serial = train_domains(
        table, loss="r2", out=tmp_path / "s", engine="serial", domains=["Music", "Books"]
    )
    dask = train_domains(
        table, loss="r2", out=tmp_path / "d", engine="dask", jobs=1, domains=["Music", "Books"]
    )
    assert _weights(serial) == _weights(dask)


def test_dask_engine_with_a_scheduler_address(table: pd.DataFrame, tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        results = train_domains(
            table,
            loss="r3",
            out=tmp_path,
            engine="dask",
            scheduler=cluster.scheduler_address,
            domains=["Video"],
        )
    serial = train_domains(table, loss="r3", out=tmp_path / "s", engine="serial", domains=["Video"])
    assert _weights(results) == _weights(serial)


def test_retraining_one_domain_leaves_others_byte_identical(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    train_domains(table, loss="r2", out=tmp_path, engine="serial")
    before = _snapshot(tmp_path)
    results = train_domains(table, loss="r1", out=tmp_path, engine="serial", domains=["Music"])
    assert list(results) == ["Music"] and results["Music"].version == 2
    after = _snapshot(tmp_path)
    others = {k: v for k, v in before.items() if not k.startswith("Music/")}
    assert {k: after[k] for k in others} == others
    assert set(after) - set(before) == {"Music/v0002.json"}
    assert after["Music/v0001.json"] == before["Music/v0001.json"]
    assert after["Music/CURRENT"] == b"2\n"


class _BreakOneDomain(LocalEngine):
    """A process pool whose task for one domain is corrupted, so that worker raises."""

    def run(self, tasks: Sequence[DomainTask]) -> Iterator[Any]:
        broken = [
            dataclasses.replace(t, X=np.full_like(t.X, np.nan)) if t.domain == "Books" else t
            for t in tasks
        ]
        yield from super().run(broken)


def test_a_failing_domain_is_reported_and_others_kept(table: pd.DataFrame, tmp_path: Path) -> None:
    calls: list[tuple[str, str, float]] = []
    results = train_domains(
        table,
        loss="r2",
        out=tmp_path,
        engine=_BreakOneDomain(jobs=2),
        progress=lambda *a: calls.append(a),
    )
    assert not results["Books"].ok
    assert results["Books"].version is None
    assert "DataError" in (results["Books"].error or "")
    assert "NaN" in (results["Books"].error or "")
    assert any(c[0] == "Books" and c[1].startswith("failed") for c in calls)
    others = [d for d in results if d != "Books"]
    assert others and all(results[d].ok for d in others)
    assert WeightsRegistry(tmp_path).domains() == sorted(others)


def test_publish_failure_is_reported_per_domain(table: pd.DataFrame, tmp_path: Path) -> None:
    tmp_path.joinpath("Video").write_text("not a directory")
    results = train_domains(table, loss="r2", out=tmp_path, engine="serial")
    assert "cannot create" in (results["Video"].error or "")
    assert all(r.ok for d, r in results.items() if d != "Video")


def test_non_convergence_is_warned_and_recorded(table: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.warns(ConvergenceWarning, match="Music: .*did not converge"):
        results = train_domains(
            table, loss="r2", out=tmp_path, engine="serial", domains=["Music"], max_iter=1
        )
    r = results["Music"]
    assert r.ok and r.converged is False
    assert r.document is not None and r.document["metrics"]["converged"] is False
    assert r.notes and "did not converge" in r.notes[0]


def test_utterance_scope_freezes_published_logits(table: pd.DataFrame, tmp_path: Path) -> None:
    reg = WeightsRegistry(tmp_path)
    train_domains(table, loss="r2", out=tmp_path, engine="serial", domains=["Music"])
    tasks = prepare_tasks(
        table, TrainingOptions("r1", scope="utterance"), registry=reg, domains=["Books"]
    )
    comp = tasks[0].competitors
    assert comp is not None
    frozen = score_with_registry(table, tmp_path).score
    expected = np.clip(frozen, 1e-6, 1 - 1e-6)
    books = (table["domain"] == "Books").to_numpy()
    books_utts = set(table.loc[books, "utterance_id"])
    others = ~books & table["utterance_id"].isin(books_utts).to_numpy()
    music = table["domain"].to_numpy()[others] == "Music"
    z = np.asarray(comp.z)
    np.testing.assert_allclose(z[music], logit(frozen[others][music]), rtol=1e-9)
    np.testing.assert_allclose(z[~music], logit(expected[others][~music]), rtol=1e-9)
    # training the same domain against different frozen competitors changes its weights
    a = train_domains(
        table, loss="r3", out=tmp_path, engine="serial", scope="utterance", domains=["Books"]
    )
    b = train_domains(
        table,
        loss="r3",
        out=tmp_path / "empty",
        engine="serial",
        scope="utterance",
        domains=["Books"],
    )
    assert a["Books"].document["weights"] != b["Books"].document["weights"]
    assert a["Books"].document["options"]["scope"] == "utterance"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "r5"}, "loss must be"),
        ({"scope": "all"}, "scope must be"),
        ({"l2": -1.0}, "l2 must be"),
        ({"temperature": 0.0}, "temperature"),
        ({"jobs": 0}, "jobs must be"),
        ({"engine": "spark"}, "engine must be"),
        ({"domains": ["Music", "Cooking"]}, "no hypotheses of domain.*'Cooking'"),
        ({"scheduler": "tcp://x:1"}, "only to the dask engine"),
    ],
)
def test_bad_options_fail_before_writing(
    table: pd.DataFrame, tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    out = tmp_path / "w"
    args: dict[str, Any] = {"loss": "r2", "out": out, "engine": "serial"} | kwargs
    with pytest.raises(RerankerError, match=match):
        train_domains(table, **args)
    assert not out.exists()


def test_training_needs_references(table: pd.DataFrame, tmp_path: Path) -> None:
    bare = table.drop(columns=["ref_domain", "ref_intent", "ref_slots"])
    with pytest.raises(DataError, match="reference columns"):
        train_domains(bare, loss="r2", out=tmp_path / "w", engine="serial")


def test_training_data_hash_is_deterministic(table: pd.DataFrame, tmp_path: Path) -> None:
    reg = WeightsRegistry(tmp_path)
    a = prepare_tasks(table, TrainingOptions("r2"), registry=reg)
    b = prepare_tasks(table.copy(), TrainingOptions("r2"), registry=reg)
    assert [t.training_data for t in a] == [t.training_data for t in b]
    changed = table.copy()
    changed.loc[changed.index[0], "slot_score"] = 0.123
    c = prepare_tasks(changed, TrainingOptions("r2"), registry=reg)
    assert [t.training_data["sha256"] for t in a] != [t.training_data["sha256"] for t in c]


def test_r2_calibrates_the_conformance_table(tmp_path: Path) -> None:
    hyps = read_hypotheses(CONFORMANCE)
    train_domains(hyps, loss="r2", out=tmp_path, engine="serial")
    trained = evaluate(hyps, score_with_registry(hyps, tmp_path).score)
    baseline = evaluate(hyps, r0_score(hyps))
    assert trained["ece"] < baseline["ece"]
    assert trained["brier"] < baseline["brier"]


def test_synthetic_hypotheses_are_valid_and_deterministic() -> None:
    a = synthetic_hypotheses(200, seed=5)
    pd.testing.assert_frame_equal(a, synthetic_hypotheses(200, seed=5))
    valid = validate_hypotheses(a)
    assert valid["utterance_id"].nunique() == 200
    assert set(valid["device"]) == {"echo_dot", "echo_show", "fire_tv"}
    # every utterance's n-best includes its reference domain, from 2 to 4 domains
    per_utt = valid.groupby("utterance_id")["domain"].nunique()
    assert per_utt.between(2, 4).all()
