"""λ chosen per domain by utterance-grouped cross-validation (``l2="auto"``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reranker.errors import DataError, ParameterError
from reranker.estimator import DomainReranker
from reranker.hypotheses import validate_hypotheses
from reranker.losses import make_problem, objective
from reranker.regularization import (
    DEVICE_L2_GRID,
    L2_GRID,
    choose_l2,
    fit_penalised,
    fit_with_device_penalty,
)
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


def _device_problem(
    n_utt: int, effect: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Three rows per utterance; one device per utterance; ``effect`` adds to device c's logit."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_utt), 3).astype(object)
    device = np.repeat(rng.integers(0, 3, size=n_utt), 3)
    signal = rng.normal(size=groups.size)
    logit = 1.5 * signal + effect * (device == 2) - 0.5
    y = (rng.random(groups.size) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = np.column_stack([signal, np.eye(3)[device]])
    return X, y, groups, ["signal", "device=a", "device=b", "device=c"]


def test_the_device_penalty_is_exact() -> None:
    X, y, groups, _ = _device_problem(150, 0.0, 7)
    device = np.array([False, True, True, True])
    model = fit_with_device_penalty(
        DomainReranker("r2", l2=1e-3), X, y, groups, semer=None, competitors=None,
        device=device, device_l2=0.5,
    )  # fmt: skip
    problem = make_problem(X, y, groups)
    penalty = np.where(device, 0.5, 1e-3)
    _, grad = objective(np.r_[model.coef_, model.intercept_], problem, loss="r2", l2=penalty)
    assert np.max(np.abs(grad)) < 1e-5


def test_the_device_penalty_shrinks_pure_noise_devices() -> None:
    X, y, groups, names = _device_problem(90, 0.0, 11)
    params = {"loss": "r2", "l2": 1e-3, "device_l2": "auto"}
    model, chosen = fit_penalised(
        params, X, y, groups, semer=None, competitors=None, features=names
    )
    plain = DomainReranker("r2", l2=1e-3).fit(X, y, groups=groups)
    search = chosen["device_l2_search"]
    assert chosen["l2"] == 1e-3 and chosen["device_l2"] == max(search["grid"])
    assert search["grid"] == [1e-3, *[g for g in DEVICE_L2_GRID if g > 1e-3]]
    shrunk, free = np.max(np.abs(model.coef_[1:])), np.max(np.abs(plain.coef_[1:]))
    assert shrunk < 0.15 and shrunk < free / 5
    assert abs(model.coef_[0] - plain.coef_[0]) < 0.2  # the real feature keeps its weight


def test_the_device_penalty_keeps_a_real_device_effect() -> None:
    X, y, groups, names = _device_problem(300, 2.0, 12)
    model, chosen = fit_penalised(
        {"loss": "r2", "l2": 1e-3, "device_l2": "auto"},
        X,
        y,
        groups,
        semer=None,
        competitors=None,
        features=names,
    )
    search = chosen["device_l2_search"]
    cv, se = np.asarray(search["cv_loss"]), np.asarray(search["cv_se"])
    best = int(np.argmin(cv))
    assert se[best] == 0  # the standard error of each candidate's difference from the best
    within = [g for g, v, s in zip(search["grid"], cv, se, strict=True) if v <= cv[best] + s]
    assert chosen["device_l2"] == max(within) < max(DEVICE_L2_GRID)
    assert model.coef_[3] - max(model.coef_[1], model.coef_[2]) > 1.0


def test_no_device_feature_no_device_search() -> None:
    X, y, groups = _noise_problem(60, 4)
    _, chosen = fit_penalised(
        {"loss": "r2", "l2": "auto", "device_l2": "auto"}, X, y, groups, semer=None, competitors=None,
        features=[f"f{j}" for j in range(X.shape[1])],
    )  # fmt: skip
    assert "device_l2_search" not in chosen and chosen["device_l2"] == chosen["l2"]
    assert chosen["l2"] in L2_GRID and len(chosen["l2_search"]["cv_loss"]) == len(L2_GRID)


def test_train_domains_chooses_the_device_penalty_by_default(tmp_path: Path) -> None:
    table = validate_hypotheses(synthetic_hypotheses(240, seed=4))
    auto = train_domains(table, loss="r2", out=tmp_path / "b", engine="serial", domains=["Music"])
    options = auto["Music"].document["options"]
    assert options["device_l2"] in options["device_l2_search"]["grid"]
    off = train_domains(
        table, loss="r2", out=tmp_path / "a", engine="serial", domains=["Music"], device_l2=None
    )
    assert "device_l2" not in off["Music"].document["options"]
    with pytest.raises(ParameterError, match="device_l2"):
        train_domains(table, loss="r2", out=tmp_path / "c", engine="serial", device_l2=0.0)


def _device_table(n_utt: int, effect: float, seed: int) -> pd.DataFrame:
    """Two domains, two hypotheses per utterance; ``effect``: how much fire_tv favours Video."""
    rng = np.random.default_rng(seed)
    device = rng.choice(["echo_dot", "echo_show", "fire_tv"], size=n_utt)
    video = rng.random(n_utt) < 1 / (1 + np.exp(-effect * (2 * (device == "fire_tv") - 1)))
    rows = []
    for u in range(n_utt):
        ref = "Video" if video[u] else "Music"
        for domain in ("Video", "Music"):
            right = domain == ref
            rows.append(
                {
                    "utterance_id": f"u{u}",
                    "device": device[u],
                    "domain": domain,
                    "intent": f"{domain}.Play",
                    "slots": "play [title : moana]",
                    "domain_score": float(np.clip(rng.normal(0.6 if right else 0.4, 0.2), 0.01, 1)),
                    "intent_score": float(rng.uniform(0.5, 1.0)),
                    "slot_score": float(rng.uniform(0.5, 1.0)),
                    "ref_domain": ref,
                    "ref_intent": f"{ref}.Play",
                    "ref_slots": "play [title : moana]",
                }
            )
    return validate_hypotheses(pd.DataFrame(rows))


def _device_weights(result: Any) -> dict[str, float]:
    doc = result.document
    return {
        f[len("device=") :]: w
        for f, w in zip(doc["features"], doc["weights"], strict=True)
        if f.startswith("device=")
    }


@pytest.mark.parametrize("loss", ["r2", "r3"])
def test_default_training_shrinks_noise_devices_and_keeps_real_ones(
    tmp_path: Path, loss: str
) -> None:
    noise = _device_table(150, 0.0, 5)
    real = _device_table(150, 2.0, 5)
    fitted = {
        name: train_domains(table, loss=loss, out=tmp_path / name, engine="serial")["Video"]
        for name, table in (("noise", noise), ("real", real))
    }
    unpenalised = train_domains(noise, loss=loss, out=tmp_path / "off", engine="serial",
                                device_l2=None)["Video"]  # fmt: skip
    shrunk = max(abs(w) for w in _device_weights(fitted["noise"]).values())
    free = max(abs(w) for w in _device_weights(unpenalised).values())
    assert shrunk < 0.15 and shrunk < free / 3
    kept = _device_weights(fitted["real"])
    assert kept["fire_tv"] - max(kept["echo_dot"], kept["echo_show"]) > 1.0
