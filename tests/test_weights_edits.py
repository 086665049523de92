"""Hand edits of weights: uploaded documents published by loss, the what-if re-ranking."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from reranker._files import DOCUMENT_LIMIT
from reranker.contributions import rescore_utterance
from reranker.errors import WeightsError
from reranker.hypotheses import read_hypotheses
from reranker.registry import WeightsRegistry
from reranker.weights_edits import parse_documents, publish_documents, what_if
from tests.conftest import CONFORMANCE, make_document


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_hypotheses(CONFORMANCE / "hypotheses.csv")


def test_what_if_ranks_with_the_edited_weights_and_keeps_the_current_ranks(
    table: pd.DataFrame,
) -> None:
    devices = sorted(table["device"].unique())
    rows = table[table["utterance_id"] == "u1"].reset_index(drop=True)
    docs = {d: make_document(d, devices, 3) for d in sorted(rows["domain"].unique())}
    current = rescore_utterance(rows, docs)
    loser = str(current["domain"].iloc[-1])
    unchanged, changed = what_if(rows, docs, loser, docs[loser]["weights"], docs[loser]["bias"])
    assert not changed
    assert list(unchanged["what-if rank"]) == list(unchanged["current rank"])
    keys = zip(rows["domain"], rows["intent"], rows["slots"], strict=True)
    semer = {k: float(i) for i, k in enumerate(keys)}
    moved, changed = what_if(rows, docs, loser, docs[loser]["weights"], 50.0, semer)
    assert changed and moved["domain"].iloc[0] == loser
    assert sorted(moved["current rank"]) == list(range(1, len(rows) + 1))
    # the current rank of each hypothesis is its rank under the unedited weights
    by_key = current.set_index(["domain", "intent", "slots"])["rank"]
    for _, r in moved.iterrows():
        assert r["current rank"] == by_key.loc[(r["domain"], r["intent"], r["slots"])]
        assert r["semer"] == semer[(r["domain"], r["intent"], r["slots"])]
    assert docs[loser]["bias"] != 50.0  # the documents passed in are not modified


def test_documents_are_published_under_the_loss_they_name(tmp_path: Path) -> None:
    files = [
        ("a.json", json.dumps(make_document("Music", ["echo_dot"], 1, loss="r2")).encode()),
        ("b.json", json.dumps(make_document("Music", ["echo_dot"], 2, loss="r3")).encode()),
    ]
    documents = parse_documents(files)
    done = list(publish_documents(documents, lambda loss: tmp_path / loss))
    assert done == [("r2", "Music", 1), ("r3", "Music", 1)]
    assert WeightsRegistry(tmp_path / "r3").load("Music")["loss"] == "r3"


def test_a_bad_upload_names_its_file_and_nothing_is_published(tmp_path: Path) -> None:
    good = json.dumps(make_document("Music", ["echo_dot"], 1)).encode()
    with pytest.raises(WeightsError, match=r"bad\.json"):
        parse_documents([("good.json", good), ("bad.json", b"{not json")])
    with pytest.raises(WeightsError, match=r"big\.json: too large"):
        parse_documents([("big.json", b" " * (DOCUMENT_LIMIT + 1))])
    assert not (tmp_path / "r2").exists()
