"""The device penalty's rule: repeated splits, per-utterance paired standard errors, the keep test."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reranker.bootstrap import utterance_keys
from reranker.errors import ParameterError
from reranker.estimator import Competitors, DomainReranker
from reranker.losses import make_problem, objective, utterance_losses
from reranker.regularization import (
    DEVICE_L2_GRID,
    KEEP,
    SPLITS,
    _one_se_choice,
    _Scores,
    choose_device_l2,
    fit_penalised,
)


def _device_problem(
    n_utt: int, effect: float, seed: int, n_devices: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three rows per utterance, one device per utterance; ``effect`` favours the last device."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_utt), 3).astype(str).astype(object)
    device = np.repeat(rng.integers(0, n_devices, size=n_utt), 3)
    signal = rng.normal(size=groups.size)
    logit = 1.5 * signal + effect * (device == n_devices - 1) - 0.5
    y = (rng.random(groups.size) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = np.column_stack([signal, np.eye(n_devices)[device]])
    return X, y, groups, np.r_[False, np.ones(n_devices, dtype=bool)]


def test_utterance_losses_by_hand() -> None:
    # utterance a: rows z = 0 (correct, SemER 0) and z = log 3 (wrong, SemER 1); utterance b: z = 0
    X = np.array([[0.0], [np.log(3.0)], [0.0]])
    problem = make_problem(X, [1, 0, 0], ["a", "a", "b"], semer=[0.0, 1.0, 0.5])
    rows, r2 = utterance_losses([1.0, 0.0], problem, loss="r2")
    by_id = dict(zip(np.array(["a", "a", "b"])[rows], r2, strict=True))
    assert by_id["a"] == pytest.approx(np.log(2.0) + np.log(4.0))
    assert by_id["b"] == pytest.approx(np.log(2.0))
    rows, r1 = utterance_losses([1.0, 0.0], problem, loss="r1")
    by_id = dict(zip(np.array(["a", "a", "b"])[rows], r1, strict=True))
    assert by_id["a"] == pytest.approx(3.0 / 4.0) and by_id["b"] == pytest.approx(0.5)
    rows, r3 = utterance_losses([1.0, 0.0], problem, loss="r3", alpha=2.0)
    by_id = dict(zip(np.array(["a", "a", "b"])[rows], r3, strict=True))
    assert by_id["a"] == pytest.approx(0.75 + 2 * np.log(8.0))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    loss=st.sampled_from(["r1", "r2", "r3"]),
    competitors=st.booleans(),
    temperature=st.floats(0.3, 3.0),
)
def test_utterance_losses_average_to_the_objective(
    seed: int, n: int, loss: str, competitors: bool, temperature: float
) -> None:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, max(1, n // 2), size=n).astype(str).astype(object)
    X = rng.normal(size=(n, 3)) * 5
    y = rng.integers(0, 2, size=n)
    semer = rng.random(n) * 1.5
    comp = {}
    if competitors:
        m = 2 * n
        comp = {
            "competitor_groups": rng.integers(0, n, size=m).astype(str).astype(object),
            "competitor_z": rng.normal(size=m) * 4,
            "competitor_semer": rng.random(m),
        }
    problem = make_problem(X, y, groups, semer=semer, temperature=temperature, **comp)
    theta = rng.normal(size=4) * 3
    rows, values = utterance_losses(theta, problem, loss=loss, alpha=0.7)  # type: ignore[arg-type]
    expected, _ = objective(theta, problem, loss=loss, alpha=0.7, l2=0.0)  # type: ignore[arg-type]
    assert values.mean() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert sorted(groups[rows]) == sorted(set(groups))


def test_the_paired_standard_error_by_hand() -> None:
    losses = np.array([[1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 3.5, 4.0]])
    scores = _Scores(losses)
    np.testing.assert_allclose(scores.mean, [2.5, 2.75])
    diff = np.array([0.5, 0.0, 0.5, 0.0])  # the utterances' difficulty cancels
    se = scores.paired_se(0)
    assert se[0] == 0 and se[1] == pytest.approx(diff.std(ddof=1) / 2)


def test_the_keep_test_and_the_one_standard_error_choice() -> None:
    se = np.array([0.0, 0.01, 0.01, 0.01])
    # the largest penalty within KEEP standard errors of the best: device terms silenced
    cv = np.array([1.0, 1.005, 1.012, 1.0 + (KEEP - 0.1) * 0.01])
    assert _one_se_choice(cv, se, "one standard error", KEEP) == 3
    # beyond KEEP standard errors: the largest penalty within one standard error of the best
    cv = np.array([1.0, 1.005, 1.012, 1.0 + (KEEP + 0.1) * 0.01])
    assert _one_se_choice(cv, se, "one standard error", KEEP) == 1
    assert _one_se_choice(cv, se, "minimum", KEEP) == 0


def test_split_zero_is_the_hash_of_the_id_and_the_losses_are_the_folds_held_out_losses() -> None:
    X, y, groups, device = _device_problem(45, 0.0, 3)
    params = {"loss": "r2", "l2": 1e-3}
    _, report = choose_device_l2(
        X, y, groups, semer=None, competitors=None, params=params, device=device,
        grid=[0.5], splits=1, rule="minimum",
    )  # fmt: skip
    ids = np.unique(groups.astype(str))
    fold_of = dict(zip(ids, utterance_keys(ids) % np.uint64(3), strict=True))
    fold = np.array([fold_of[g] for g in groups])
    total = 0.0
    for k in range(3):
        test = fold == k
        scale = np.where(device, np.sqrt(1e-3 / 0.5), 1.0)
        model = DomainReranker("r2", l2=1e-3).fit(X[~test] * scale, y[~test], groups=groups[~test])
        problem = make_problem(X[test] * scale, y[test], groups[test])
        value, _ = objective(np.r_[model.coef_, model.intercept_], problem, loss="r2", l2=0.0)
        total += value * len(set(groups[test]))
    assert report["grid"] == [1e-3, 0.5] and report["splits"] == 1
    assert report["cv_loss"][1] == pytest.approx(total / ids.size, rel=1e-6)


def test_the_choice_does_not_depend_on_row_order() -> None:
    X, y, groups, device = _device_problem(60, 1.0, 4)
    perm = np.random.default_rng(1).permutation(groups.size)
    kwargs = {"semer": None, "competitors": None, "params": {"loss": "r2", "l2": 1e-3}}
    a = choose_device_l2(X, y, groups, device=device, splits=2, **kwargs)
    b = choose_device_l2(X[perm], y[perm], groups[perm], device=device, splits=2, **kwargs)
    assert a[0] == b[0]
    np.testing.assert_allclose(a[1]["cv_loss"], b[1]["cv_loss"], rtol=1e-6)


@pytest.mark.parametrize(("n_utt", "n_devices"), [(40, 3), (80, 2), (60, 6), (200, 3)])
def test_devices_without_effect_are_silenced(n_utt: int, n_devices: int) -> None:
    silenced = 0
    for seed in range(4):
        X, y, groups, _ = _device_problem(n_utt, 0.0, 100 + seed, n_devices)
        names = ["signal", *(f"device=d{j}" for j in range(n_devices))]
        model, chosen = fit_penalised(
            {"loss": "r2", "l2": 1e-3, "device_l2": "auto"}, X, y, groups, semer=None,
            competitors=None, features=names,
        )  # fmt: skip
        assert chosen["device_l2_search"]["devices"] == n_devices
        silenced += int(np.max(np.abs(model.coef_[1:])) < 0.05)
    assert silenced == 4


@pytest.mark.parametrize("loss", ["r1", "r2", "r3"])
def test_a_strong_device_effect_in_a_big_domain_is_kept(loss: str) -> None:
    X, y, groups, _ = _device_problem(400, 1.5, 7)
    semer = (1 - y).astype(float)
    # one other-domain hypothesis per utterance, so R1 sees the domain's level against it
    ids = np.unique(groups)
    competitors = Competitors(ids, np.zeros(ids.size), np.full(ids.size, 0.5))
    model, chosen = fit_penalised(
        {"loss": loss, "l2": 1e-3, "device_l2": "auto"}, X, y, groups, semer=semer,
        competitors=competitors, features=["signal", "device=a", "device=b", "device=c"],
    )  # fmt: skip
    search = chosen["device_l2_search"]
    assert chosen["device_l2"] < max(search["grid"]) and search["splits"] == SPLITS
    cv, se = np.asarray(search["cv_loss"]), np.asarray(search["cv_se"])
    assert cv[-1] - cv.min() > KEEP * se[-1]
    w = model.coef_
    assert w[3] - max(w[1], w[2]) > 0.5


def test_device_terms_that_change_no_loss_are_silenced() -> None:
    # R1 without competitors: a device shift moves every hypothesis of an utterance alike
    X, y, groups, _ = _device_problem(200, 1.5, 7)
    _, chosen = fit_penalised(
        {"loss": "r1", "l2": 1e-3, "device_l2": "auto"}, X, y, groups,
        semer=(1 - y).astype(float), competitors=None,
        features=["signal", "device=a", "device=b", "device=c"],
    )  # fmt: skip
    assert chosen["device_l2"] == max(DEVICE_L2_GRID)


def test_one_device_leaves_nothing_to_choose() -> None:
    X, y, groups, _ = _device_problem(60, 0.0, 9)
    X = np.column_stack([X[:, 0], np.ones(groups.size), np.zeros((groups.size, 2))])
    model, chosen = fit_penalised(
        {"loss": "r2", "l2": 1e-3, "device_l2": "auto"}, X, y, groups, semer=None,
        competitors=None, features=["signal", "device=a", "device=b", "device=c"],
    )  # fmt: skip
    search = chosen["device_l2_search"]
    assert search["devices"] == 1 and search["cv_loss"] is None
    assert chosen["device_l2"] == max(DEVICE_L2_GRID)
    assert np.max(np.abs(model.coef_[1:])) < 1e-3  # the bias carries the level
    plain = DomainReranker("r2", l2=1e-3).fit(X[:, :1], y, groups=groups)
    z = X @ model.coef_ + model.intercept_
    np.testing.assert_allclose(z, X[:, 0] * plain.coef_[0] + plain.intercept_, atol=1e-3)


def test_splits_must_be_positive() -> None:
    X, y, groups, device = _device_problem(30, 0.0, 1)
    with pytest.raises(ParameterError, match="splits"):
        choose_device_l2(
            X, y, groups, semer=None, competitors=None, params={"loss": "r2", "l2": 1e-3},
            device=device, splits=0,
        )  # fmt: skip
