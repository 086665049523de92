"""λ chosen per domain by utterance-grouped cross-validation (``l2="auto"``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reranker.errors import DataError
from reranker.estimator import DomainReranker
from reranker.hypotheses import validate_hypotheses
from reranker.losses import make_problem, objective
from reranker.regularization import L2_GRID, choose_l2
from reranker.synthetic import synthetic_hypotheses
from reranker.training import train_domains


def _noise_problem(n_utt: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One informative feature and five pure-noise ones, two rows per utterance."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_utt), 2).astype(object)
    signal = rng.normal(size=groups.size)
    y = (signal + rng.normal(size=groups.size) > 0).astype(np.int64)
    X = np.column_stack([signal, rng.normal(size=(groups.size, 5))])
    return X, y, groups


def test_choose_l2_reports_the_grid_and_the_argmin() -> None:
    X, y, groups = _noise_problem(120, 0)
    l2, report = choose_l2(X, y, groups, semer=None, competitors=None, params={"loss": "r2"})
    assert report["grid"] == list(L2_GRID) and report["folds"] == 3
    cv = np.asarray(report["cv_loss"])
    assert cv.shape == (len(L2_GRID),) and np.isfinite(cv).all()
    assert l2 == L2_GRID[int(np.argmin(cv))]


def test_choose_l2_cv_loss_is_the_held_out_loss_of_each_fold() -> None:
    from reranker.bootstrap import utterance_keys

    X, y, groups = _noise_problem(60, 1)
    _, report = choose_l2(
        X, y, groups, semer=None, competitors=None, params={"loss": "r2"}, grid=[0.1]
    )
    ids = np.unique(groups.astype(str))
    fold_of = dict(zip(ids, utterance_keys(ids) % np.uint64(3), strict=True))
    fold = np.array([fold_of[str(g)] for g in groups])
    total = 0.0
    for k in range(3):
        test = fold == k
        model = DomainReranker("r2", l2=0.1).fit(X[~test], y[~test], groups=groups[~test])
        problem = make_problem(X[test], y[test], groups[test])
        value, _ = objective(np.r_[model.coef_, model.intercept_], problem, loss="r2", l2=0.0)
        total += value * len(set(groups[test]))
    assert report["cv_loss"][0] == pytest.approx(total / len(ids), rel=1e-9)


def test_choose_l2_does_not_depend_on_row_order() -> None:
    X, y, groups = _noise_problem(90, 2)
    perm = np.random.default_rng(5).permutation(groups.size)
    a = choose_l2(X, y, groups, semer=None, competitors=None, params={"loss": "r2"})
    b = choose_l2(
        X[perm], y[perm], groups[perm], semer=None, competitors=None, params={"loss": "r2"}
    )
    assert a[0] == b[0]
    np.testing.assert_allclose(a[1]["cv_loss"], b[1]["cv_loss"], rtol=1e-6)


def test_choose_l2_with_too_few_utterances_takes_the_largest() -> None:
    X, y, groups = _noise_problem(2, 3)
    l2, report = choose_l2(X, y, groups, semer=None, competitors=None, params={"loss": "r2"})
    assert l2 == max(L2_GRID) and report["cv_loss"] is None
    with pytest.raises(DataError, match="folds"):
        choose_l2(X, y, groups, semer=None, competitors=None, params={"loss": "r2"}, folds=1)


def test_train_domains_auto_records_the_choice(tmp_path: Path) -> None:
    table = validate_hypotheses(synthetic_hypotheses(240, seed=4))
    results = train_domains(
        table, loss="r3", out=tmp_path, engine="serial", l2="auto", domains=["Music"]
    )
    options = results["Music"].document["options"]
    assert options["l2"] in L2_GRID
    search = options["l2_search"]
    assert search["grid"] == list(L2_GRID) and len(search["cv_loss"]) == len(L2_GRID)
    assert options["l2"] == L2_GRID[int(np.argmin(search["cv_loss"]))]
    with pytest.raises(DataError, match="l2"):
        train_domains(table, loss="r2", out=tmp_path / "x", engine="serial", l2="big")
