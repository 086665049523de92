"""The one scoring path: weights documents to logits and scores, with the R0 fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from reranker.errors import WeightsError
from reranker.features import feature_matrix
from reranker.hypotheses import validate_hypotheses
from reranker.ranking import r0_score
from reranker.registry import WeightsRegistry
from reranker.scoring import (
    document_logits,
    document_weights,
    load_documents,
    logits_with_documents,
    score_hypotheses,
    score_with_documents,
    score_with_registry,
)
from reranker.synthetic import synthetic_hypotheses
from tests.conftest import make_document

DEVICES = ["echo_dot", "echo_show", "fire_tv"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return validate_hypotheses(synthetic_hypotheses(300, seed=3))


def test_score_with_registry_falls_back_to_r0(tmp_path: Path, table: pd.DataFrame) -> None:
    reg = WeightsRegistry(tmp_path)
    doc = make_document("Music", DEVICES, 4, loss="r3")
    reg.publish("Music", doc)
    scoring = score_with_registry(table, tmp_path)
    music = (table["domain"] == "Music").to_numpy()
    X = feature_matrix(table[music], doc["features"])
    np.testing.assert_allclose(
        scoring.score[music], expit(X @ np.array(doc["weights"]) + doc["bias"])
    )
    np.testing.assert_array_equal(scoring.score[~music], r0_score(table)[~music])
    assert scoring.source["Music"] == "r3 v1"
    assert scoring.r0_domains == sorted(set(table["domain"]) - {"Music"})


def test_score_with_registry_empty_directory(tmp_path: Path, table: pd.DataFrame) -> None:
    with pytest.raises(WeightsError, match="no published weights"):
        score_with_registry(table, tmp_path)


def test_score_hypotheses_equals_scoring_with_the_loaded_documents(
    tmp_path: Path, table: pd.DataFrame
) -> None:
    reg = WeightsRegistry(tmp_path)
    for k, d in enumerate(["Music", "Video"]):
        reg.publish(d, make_document(d, DEVICES, k))
    documents = load_documents(tmp_path)
    assert documents is not None and sorted(documents) == ["Music", "Video"]
    direct = score_with_documents(table, documents)
    via_path = score_hypotheses(table, tmp_path)
    np.testing.assert_array_equal(direct.score, via_path.score)
    assert direct.source == via_path.source
    assert sorted(load_documents(tmp_path, ["Music", "Nope"]) or {}) == ["Music"]


def test_r0_scores_every_row_with_the_product(table: pd.DataFrame) -> None:
    assert load_documents("R0") is None
    scoring = score_with_documents(table, None)
    np.testing.assert_array_equal(scoring.score, r0_score(table))
    assert scoring.r0_domains == sorted(set(table["domain"]))
    np.testing.assert_array_equal(score_hypotheses(table, "r0").score, scoring.score)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing", "no such weights directory"),
        (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "not a weights directory"),
        (lambda p: p, "no published weights"),
    ],
)
def test_load_documents_errors(tmp_path: Path, make, match: str) -> None:
    with pytest.raises(WeightsError, match=match):
        load_documents(make(tmp_path))


def test_logits_use_the_r0_logit_without_a_document(table: pd.DataFrame) -> None:
    doc = make_document("Books", DEVICES, 7)
    z = logits_with_documents(table, {"Books": doc})
    books = (table["domain"] == "Books").to_numpy()
    np.testing.assert_allclose(z[books], document_logits(table[books], doc))
    r0 = np.clip(r0_score(table), 1e-6, 1 - 1e-6)
    np.testing.assert_allclose(z[~books], logit(r0[~books]))
    scored = score_with_documents(table, {"Books": doc}).score
    np.testing.assert_allclose(expit(z[books]), scored[books])


def test_malformed_document_names_the_domain() -> None:
    doc = make_document("Books", DEVICES, 0)
    with pytest.raises(WeightsError, match="'Books' list 10 features but 9 weights"):
        document_weights({**doc, "weights": doc["weights"][:-1]})
    with pytest.raises(WeightsError, match="malformed"):
        document_weights({"domain": "Books", "features": [], "weights": []})
