"""Feature contributions and what-if re-scoring of one utterance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from reranker import contributions
from reranker.errors import WeightsError
from reranker.hypotheses import read_hypotheses
from reranker.registry import WeightsRegistry
from reranker.scoring import score_with_registry
from tests.conftest import CONFORMANCE, make_document


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_hypotheses(CONFORMANCE / "hypotheses.csv")


def test_contributions_and_rescore_agree_with_the_registry(
    tmp_path: Path, table: pd.DataFrame
) -> None:
    devices = sorted(table["device"].unique())
    docs = {d: make_document(d, devices, k) for k, d in enumerate(["Music", "Video"])}
    reg = WeightsRegistry(tmp_path / "w")
    for d, doc in docs.items():
        reg.publish(d, doc)
    expected = score_with_registry(table, reg.path).score
    current = {d: reg.load(d) for d in docs}
    for uid in ["u0", "u1", "u7", "u42"]:
        rows = table[table["utterance_id"] == uid].reset_index(drop=True)
        idx = np.flatnonzero(table["utterance_id"] == uid)
        contrib = contributions.hypothesis_contributions(rows, current)
        for h, part in contrib.groupby("hypothesis"):
            assert expit(part["contribution"].sum()) == pytest.approx(expected[idx[h]], rel=1e-12)
            assert (part["contribution"] == part["value"] * part["weight"]).all()
        rescored = contributions.rescore_utterance(rows, current)
        by_key = rescored.set_index(["domain", "intent", "slots"])["score"]
        for h in range(len(rows)):
            key = tuple(rows.loc[h, ["domain", "intent", "slots"]])
            assert by_key.loc[key] == pytest.approx(expected[idx[h]], rel=1e-12)
        assert list(rescored["rank"]) == list(range(1, len(rows) + 1))
        assert set(rescored.loc[~rescored["domain"].isin(docs), "scored_by"]) <= {"r0"}


def test_rescore_changes_the_ranking_when_a_bias_is_raised(table: pd.DataFrame) -> None:
    devices = sorted(table["device"].unique())
    rows = table[table["utterance_id"] == "u1"].reset_index(drop=True)
    domains = sorted(rows["domain"].unique())
    assert len(domains) >= 2
    docs = {d: make_document(d, devices, 3) for d in domains}
    loser = contributions.rescore_utterance(rows, docs)["domain"].iloc[-1]
    docs[loser] = {**docs[loser], "bias": 50.0}
    assert contributions.rescore_utterance(rows, docs)["domain"].iloc[0] == loser


def test_malformed_document_is_a_weights_error(table: pd.DataFrame) -> None:
    rows = table[table["utterance_id"] == "u0"]
    doc = make_document(rows["domain"].iloc[0], ["echo_dot"], 0)
    doc["weights"] = doc["weights"][:-1]
    with pytest.raises(WeightsError, match="features but"):
        contributions.rescore_utterance(rows, {doc["domain"]: doc})


def test_device_weights_reads_the_device_features() -> None:
    doc = make_document("Video", ["echo_dot", "fire_tv"], 0)
    frame = contributions.device_weights({"Video": doc})
    assert list(frame["device"]) == ["echo_dot", "fire_tv"]
    names = doc["features"]
    assert list(frame["weight"]) == [
        doc["weights"][names.index("device=echo_dot")],
        doc["weights"][names.index("device=fire_tv")],
    ]


def test_contributions_sum_to_logit(table: pd.DataFrame) -> None:
    devices = sorted(table["device"].unique())
    doc = make_document("Music", devices, 8)
    parts = contributions.contributions(table, doc)
    assert list(parts.columns) == [*doc["features"], "bias", "logit", "score"]
    np.testing.assert_allclose(parts[[*doc["features"], "bias"]].sum(axis=1), parts["logit"])
    np.testing.assert_allclose(parts["score"], expit(parts["logit"]))
