"""Post-hoc calibrators: temperature scaling and isotonic regression, against slow references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit

from reranker.calibration import expected_calibration_error
from reranker.calibrators import cross_fit, fit_isotonic, fit_temperature, recalibrate
from reranker.errors import DataError, RerankerError, TrainingError
from reranker.hypotheses import read_hypotheses
from reranker.ranking import r0_score
from reranker.tables import prepare, scored_view
from tests.conftest import CONFORMANCE


def _miscalibrated(n: int, temperature: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    y = (rng.random(n) < p).astype(float)
    s = expit(logit(p) * temperature)  # temperature > 1: over-confident
    return y, s, p


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_temperature_recovers_the_true_temperature(true_t: float) -> None:
    y, s, p = _miscalibrated(200_000, true_t)
    cal = fit_temperature(y, s)
    assert cal.temperature == pytest.approx(true_t, rel=0.03)
    np.testing.assert_allclose(cal.transform(s), p, atol=0.02)


def test_temperature_minimises_the_log_loss_over_a_grid() -> None:
    y, s, _ = _miscalibrated(5_000, 1.7, seed=1)
    z = logit(np.clip(s, 1e-6, 1 - 1e-6))

    def loss(t: float) -> float:
        q = np.clip(expit(z / t), 1e-15, 1 - 1e-15)
        return float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean())

    grid = np.geomspace(0.2, 5, 2001)
    best = grid[np.argmin([loss(t) for t in grid])]
    fitted = fit_temperature(y, s).temperature
    assert fitted == pytest.approx(best, rel=5e-3)
    assert loss(fitted) <= min(loss(t) for t in grid) + 1e-9


def _slow_pav(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Textbook pool adjacent violators over blocks (quadratic, obviously correct)."""
    blocks = [[float(v), float(x), 1] for v, x in zip(y, w, strict=True)]
    changed = True
    while changed:
        changed = False
        for i in range(len(blocks) - 1):
            if blocks[i][0] > blocks[i + 1][0]:
                v1, w1, n1 = blocks[i]
                v2, w2, n2 = blocks[i + 1]
                blocks[i : i + 2] = [[(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2]]
                changed = True
                break
    return np.concatenate([[v] * n for v, _, n in blocks])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=1, max_size=60))
def test_isotonic_matches_a_slow_pool_adjacent_violators(pairs) -> None:
    s = np.array([a / 30 for a, _ in pairs])
    y = np.array([float(b) for _, b in pairs])
    cal = fit_isotonic(y, s)
    uniq = np.unique(s)
    w = np.array([(s == u).sum() for u in uniq], dtype=float)
    means = np.array([y[s == u].mean() for u in uniq])
    np.testing.assert_allclose(cal.values, _slow_pav(means, w), atol=1e-12)
    assert (np.diff(cal.transform(np.linspace(0, 1, 101))) >= -1e-12).all()


def test_isotonic_improves_calibration() -> None:
    y, s, _ = _miscalibrated(20_000, 3.0, seed=2)
    cal = fit_isotonic(y, s)
    assert expected_calibration_error(y, cal.transform(s)) < 0.2 * expected_calibration_error(y, s)


def test_cross_fit_calibrates_each_fold_with_the_others_only() -> None:
    y, s, _ = _miscalibrated(4_000, 2.0, seed=3)
    groups = np.repeat(np.arange(1_000), 4)
    out = cross_fit(y, s, groups, method="isotonic", n_folds=2, seed=0)
    # Flipping the labels of one fold changes only the other fold's calibrated scores.
    rng = np.random.default_rng(0)
    fold = (rng.permutation(1_000) % 2)[groups]
    y2 = y.copy()
    y2[fold == 0] = 1 - y2[fold == 0]
    out2 = cross_fit(y2, s, groups, method="isotonic", n_folds=2, seed=0)
    np.testing.assert_array_equal(out[fold == 0], out2[fold == 0])
    assert not np.array_equal(out[fold == 1], out2[fold == 1])
    assert expected_calibration_error(y, out) < expected_calibration_error(y, s)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "platt"}, "method"),
        ({"method": "isotonic", "n_folds": 1}, "n_folds"),
    ],
)
def test_cross_fit_rejects_bad_options(kwargs, match) -> None:
    with pytest.raises(RerankerError, match=match):
        cross_fit([0, 1, 1], [0.1, 0.5, 0.9], [0, 1, 2], **kwargs)


def test_calibrators_reject_bad_input() -> None:
    with pytest.raises(DataError, match="empty"):
        fit_temperature([], [])
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        fit_isotonic([0, 1], [0.5, 1.5])
    with pytest.raises(DataError, match="same length"):
        fit_isotonic([0, 1], [0.5])
    with pytest.raises(DataError, match="at least 2 utterances"):
        cross_fit([0, 1], [0.2, 0.8], [7, 7], method="temperature")


def test_recalibrate_keeps_rankings_and_improves_a_miscalibrated_score() -> None:
    prepared = prepare(read_hypotheses(CONFORMANCE / "hypotheses.csv"))
    score = r0_score(prepared.frame) ** 3  # strongly under-confident
    scored = scored_view(prepared, score)
    for method in ("temperature", "isotonic"):
        calibrated = recalibrate(scored, method)  # type: ignore[arg-type]
        before = expected_calibration_error(scored.correct, scored.score)
        after = expected_calibration_error(calibrated.correct, calibrated.score)
        assert after < before
        if method == "temperature":
            np.testing.assert_array_equal(calibrated.top, scored.top)


def test_temperature_stopping_at_its_bound_is_an_error() -> None:
    # Perfectly separated scores: the log loss keeps falling as T -> 0, past the search interval.
    with pytest.raises(TrainingError, match="stopped at its bound"):
        fit_temperature([0, 0, 1, 1], [0.2, 0.3, 0.7, 0.8])
