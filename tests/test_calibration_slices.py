"""Calibration of slices with utterance-bootstrap intervals, checked against slow references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reranker import calibration_slices, tables
from reranker.bootstrap import bootstrap_interval, poisson_weights, utterance_keys
from reranker.calibration import (
    brier_loss,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_curve,
    smooth_ece,
)
from reranker.errors import DataError, ParameterError
from reranker.evaluation import evaluate
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.ranking import r0_score
from tests.conftest import CONFORMANCE, make_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_hypotheses(CONFORMANCE / "hypotheses.csv")


@pytest.fixture(scope="module")
def prepared(table: pd.DataFrame) -> tables.PreparedTable:
    return tables.prepare(table)


@pytest.mark.parametrize(
    ("domain", "device"), [(None, None), ("Video", None), (None, "fire_tv"), ("Music", None)]
)
def test_calibration_metrics_match_evaluate_slices(
    prepared: tables.PreparedTable, domain: str | None, device: str | None
) -> None:
    score = r0_score(prepared.frame)
    scored = tables.scored_view(prepared, score)
    report = evaluate(prepared.frame, score)
    expected = report
    if domain is not None:
        expected = report["by_domain"][domain]
    if device is not None:
        expected = report["by_device"][device]
    got = calibration_slices.calibration_metrics(scored, domain=domain, device=device, smooth=False)
    for key in ("ece", "mce", "brier", "ece_top1", "top1_semer", "top1_ie"):
        assert got[key]["value"] == pytest.approx(expected[key], abs=1e-12), key
    assert got["n_utterances"]["value"] == expected["n_utterances"]
    assert got["n_hypotheses"]["value"] == expected["n_hypotheses"]


def test_calibration_metrics_top1_population(prepared: tables.PreparedTable) -> None:
    scored = tables.scored_view(prepared)
    report = evaluate(prepared.frame, scored.score, population="top1", n_bins=7)
    got = calibration_slices.calibration_metrics(scored, population="top1", n_bins=7, smooth=False)
    for key in ("ece", "mce", "brier"):
        assert got[key]["value"] == pytest.approx(report[key], abs=1e-12)


def _slow_bootstrap(ids, y, s, n_boot, seed, metric):
    """Weight every row by its own utterance's Poisson count, one utterance id at a time."""
    out = []
    for b in range(n_boot):
        w = np.array(
            [poisson_weights(utterance_keys([u]), 1, seed=seed, start=b)[0, 0] for u in ids]
        )
        out.append(metric(y, s, w))
    return np.array(out)


def test_bootstrap_intervals_match_a_slow_reference(prepared: tables.PreparedTable) -> None:
    scored = tables.scored_view(prepared)
    n_boot, seed = 40, 3
    got = calibration_slices.calibration_metrics(scored, n_boot=n_boot, seed=seed, confidence=0.8)
    y, s, _ = calibration_slices.calibration_sample(scored)
    ids = scored.hypotheses["utterance_id"].to_numpy()
    refs = {
        "ece": lambda y, s, w: expected_calibration_error(y, s, sample_weight=w),
        "mce": lambda y, s, w: maximum_calibration_error(y, s, sample_weight=w),
        "brier": lambda y, s, w: brier_loss(y, s, sample_weight=w),
    }
    for key, fn in refs.items():
        values = _slow_bootstrap(ids, y, s, n_boot, seed, fn)
        lo, hi = bootstrap_interval(got[key]["value"], values, confidence=0.8)
        assert got[key]["low"] == pytest.approx(lo, abs=1e-12), key
        assert got[key]["high"] == pytest.approx(hi, abs=1e-12), key
        assert got[key]["low"] <= got[key]["value"] <= got[key]["high"]


def test_bootstrap_smooth_ece_is_close_to_the_exact_one() -> None:
    rng = np.random.default_rng(0)
    for bias in (0.0, 0.1, 0.25):
        s = rng.random(4000)
        y = (rng.random(4000) < np.clip(s - bias, 0, 1)).astype(float)
        exact = smooth_ece(y, s)
        grid = (np.arange(200) + 0.5) / 200
        fine = np.minimum((s * 200).astype(int), 199)
        resid = np.bincount(fine, weights=y - s, minlength=200) / s.size
        approx = calibration_slices._smooth_ece_on_grid(resid[None, :], 200, 48)[0]
        assert grid.size == 200
        assert approx == pytest.approx(exact, rel=0.15, abs=0.004)


def test_smooth_calibration_value_and_interval(prepared: tables.PreparedTable) -> None:
    scored = tables.scored_view(prepared)
    got = calibration_slices.smooth_calibration(scored, n_boot=40, seed=2)
    y, s, _ = calibration_slices.calibration_sample(scored)
    assert got["value"] == pytest.approx(smooth_ece(y, s), abs=1e-12)
    assert got["low"] < got["high"]
    assert got["low"] <= got["value"] * 1.2 and got["high"] >= got["value"] * 0.8
    empty = calibration_slices.smooth_calibration(scored, device="no such device", n_boot=10)
    assert empty == {"value": None, "low": None, "high": None}


def test_slice_curve_bands_match_a_slow_reference(prepared: tables.PreparedTable) -> None:
    scored = tables.scored_view(prepared)
    y, s, g = calibration_slices.calibration_sample(scored)
    curve = calibration_slices.slice_curve(y, s, g, n_boot=30, seed=1)
    plain = reliability_curve(y, s)
    np.testing.assert_allclose(curve.frac_correct, plain.frac_correct)
    np.testing.assert_array_equal(curve.count, plain.count)

    def frac_in_bins(y, s, w):
        idx = np.minimum((s * 10).astype(int), 9)
        c = np.bincount(idx, weights=w, minlength=10)
        sy = np.bincount(idx, weights=w * y, minlength=10)
        return np.where(c > 0, sy / np.where(c > 0, c, 1), np.nan)

    ids = scored.hypotheses["utterance_id"].to_numpy()
    fracs = _slow_bootstrap(ids, y, s, 30, 1, frac_in_bins)
    for k in np.flatnonzero(plain.count > 0):
        lo, hi = bootstrap_interval(plain.frac_correct[k], fracs[:, k], confidence=0.9)
        assert curve.low[k] == pytest.approx(lo) and curve.high[k] == pytest.approx(hi)
        assert curve.low[k] <= curve.frac_correct[k] <= curve.high[k]


def test_calibration_needs_references() -> None:
    table = validate_hypotheses(make_table(10, 0, refs=False))
    scored = tables.scored_view(tables.prepare(table))
    with pytest.raises(DataError, match="reference"):
        calibration_slices.calibration_metrics(scored)
    with pytest.raises(ParameterError, match="population"):
        calibration_slices.calibration_sample(
            tables.scored_view(tables.prepare(validate_hypotheses(make_table(5)))),
            population="half",  # type: ignore[arg-type]
        )


def test_metrics_frame_flattens_intervals(prepared: tables.PreparedTable) -> None:
    scored = tables.scored_view(prepared)
    m = calibration_slices.calibration_metrics(scored, n_boot=10, smooth=False)
    frame = calibration_slices.metrics_frame({"r0": m})
    assert frame.loc[0, "loss"] == "R0"
    assert {"ece", "ece_low", "ece_high", "n_utterances"} <= set(frame.columns)
    assert frame.loc[0, "n_utterances"] == prepared.n_utterances
