"""Cross-fitted hypotheses: every utterance predicted by an NLU that did not train on it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reranker.demo_sources import default_domain_map, default_sources
from reranker.errors import DataError
from reranker.evaluation import evaluate
from reranker.nlu import predict_corpus, read_corpus, read_domain_map, train_models
from reranker.nlu.cross_fit import cross_fit_folds, cross_fitted_hypotheses
from reranker.ranking import r0_score
from reranker.tables import score_table


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    hwu = read_corpus(
        default_sources() / "hwu64.jsonl", domain_map=read_domain_map(default_domain_map())
    )
    keep = hwu[hwu["domain"].isin(["Alarm", "Music", "Weather", "Calendar"])]
    return keep.groupby("domain", sort=True).head(45).reset_index(drop=True)


@pytest.fixture(scope="module")
def crossed(corpus: pd.DataFrame) -> pd.DataFrame:
    return cross_fitted_hypotheses(corpus, folds=3)


def test_folds_partition_the_ids_whatever_the_row_order(corpus: pd.DataFrame) -> None:
    folds = cross_fit_folds(corpus["id"], 3)
    assert set(folds.tolist()) == {0, 1, 2}
    shuffled = corpus.sample(frac=1.0, random_state=1)
    again = dict(zip(shuffled["id"], cross_fit_folds(shuffled["id"], 3), strict=True))
    assert [again[i] for i in corpus["id"]] == folds.tolist()


def test_each_fold_is_predicted_by_the_models_of_the_other_folds(
    corpus: pd.DataFrame, crossed: pd.DataFrame, tmp_path: Path
) -> None:
    held = cross_fit_folds(corpus["id"], 3) == 1
    models = train_models(corpus[~held].reset_index(drop=True), tmp_path / "m")
    expected = predict_corpus(models, corpus[held].reset_index(drop=True))
    got = crossed[crossed["utterance_id"].isin(set(corpus.loc[held, "id"]))]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_exact=False)


def test_every_utterance_in_corpus_order(corpus: pd.DataFrame, crossed: pd.DataFrame) -> None:
    ids = crossed["utterance_id"].drop_duplicates().tolist()
    assert ids == corpus["id"].tolist()


def test_held_out_predictions_are_not_the_in_sample_ones(
    corpus: pd.DataFrame, crossed: pd.DataFrame, tmp_path: Path
) -> None:
    """In sample the NLU rarely errs; held out it errs more: what a re-ranker must learn from."""
    inside = predict_corpus(train_models(corpus, tmp_path / "all"), corpus)

    def top1_error(hyps: pd.DataFrame) -> float:
        return float(evaluate(score_table(hyps, r0_score(hyps)), n_boot=0)["top1_ie"])

    assert top1_error(crossed) > top1_error(inside) + 0.02


def test_fewer_than_two_folds_is_an_error(corpus: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="at least 2 folds"):
        cross_fitted_hypotheses(corpus, folds=1)


def test_a_fold_without_two_domains_to_train_on_is_an_error(corpus: pd.DataFrame) -> None:
    """One utterance of a second domain: the fold holding it leaves a single domain to train."""
    music = corpus[corpus["domain"] == "Music"]
    lonely = pd.concat([music, corpus[corpus["domain"] == "Alarm"].head(1)], ignore_index=True)
    with pytest.raises(DataError, match=r"fold \d of 3: the other folds hold 1 domain"):
        cross_fitted_hypotheses(lonely, folds=3)


def test_settings_of_a_domain_missing_from_a_fold_and_the_default_device(
    corpus: pd.DataFrame,
) -> None:
    """A domain with one utterance is absent from the training part of the fold that holds it:
    its settings are left out there, not an error; devices default as in ``predict_corpus``."""
    general = read_corpus(
        default_sources() / "hwu64.jsonl", domain_map=read_domain_map(default_domain_map())
    )
    one = general[general["domain"] == "General"].head(1)
    both = pd.concat([corpus.head(60), one], ignore_index=True)
    hyps = cross_fitted_hypotheses(
        both, folds=3, settings={"General": {"profile": "cautious"}}, device="fire_tv"
    )
    assert hyps["utterance_id"].drop_duplicates().tolist() == both["id"].tolist()
    assert set(hyps["device"]) == {"fire_tv"}


def test_a_duplicated_id_is_an_error(corpus: pd.DataFrame) -> None:
    doubled = pd.concat([corpus, corpus.head(1)], ignore_index=True)
    with pytest.raises(DataError, match="appears twice"):
        cross_fitted_hypotheses(doubled, folds=3)
