"""Cross-domain score distribution matching (reranker.distribution_matching)."""

from __future__ import annotations

import numpy as np
import pytest

from reranker.calibrators import utterance_folds
from reranker.distribution_matching import cross_fit_matching, fit_distribution_matching
from reranker.errors import DataError


def _sample(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    domains = np.array(["A"] * 600 + ["B"] * 400, dtype=object)
    score = np.r_[rng.beta(5, 2, 600), rng.beta(2, 5, 400)]  # A confident, B hesitant
    correct = (rng.random(1000) < score).astype(int)
    return domains, score, correct


def test_matched_scores_follow_the_reference_distribution() -> None:
    domains, score, correct = _sample()
    m = fit_distribution_matching(domains, score, correct)
    matched = m.matched(domains, score)
    levels = np.linspace(0.05, 0.95, 19)
    reference = np.quantile(score, levels)
    for d in ("A", "B"):
        got = np.quantile(matched[domains == d], levels)
        np.testing.assert_allclose(got, reference, atol=0.02)


def test_order_within_a_domain_is_kept_and_output_is_a_probability() -> None:
    domains, score, correct = _sample(1)
    m = fit_distribution_matching(domains, score, correct)
    probe = np.linspace(0, 1, 101)
    for d in ("A", "B"):
        matched = m.matched(np.full(probe.size, d, dtype=object), probe)
        assert np.all(np.diff(matched) >= -1e-12)
        out = m.transform(np.full(probe.size, d, dtype=object), probe)
        assert np.all((out >= 0) & (out <= 1)) and np.all(np.diff(out) >= -1e-12)


def test_an_unseen_domain_keeps_its_scores_before_calibration() -> None:
    domains, score, correct = _sample(2)
    m = fit_distribution_matching(domains, score, correct)
    probe = np.array([0.1, 0.5, 0.9])
    np.testing.assert_array_equal(m.matched(np.array(["C"] * 3, dtype=object), probe), probe)


def test_ties_map_to_the_middle_of_their_quantiles() -> None:
    domains = np.array(["A"] * 4 + ["B"] * 4, dtype=object)
    score = np.array([1.0, 1.0, 1.0, 1.0, 0.1, 0.2, 0.3, 0.4])
    m = fit_distribution_matching(domains, score, np.array([1, 0, 1, 0, 0, 0, 1, 1]))
    # every A score is the same: it lands on the pooled median
    assert m.matched(np.array(["A"], dtype=object), np.array([1.0]))[0] == pytest.approx(
        np.quantile(score, 0.5)
    )


@pytest.mark.parametrize(
    ("domains", "score", "correct", "match"),
    [
        (["A"], [0.5, 0.5], [1, 1], "equal-length"),
        ([], [], [], "non-empty"),
        (["A", "B"], [0.5, 1.5], [1, 0], r"\[0, 1\]"),
    ],
)
def test_bad_input_is_refused(domains: list, score: list, correct: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        fit_distribution_matching(
            np.array(domains, dtype=object), np.array(score), np.array(correct)
        )


def test_cross_fitted_matching_scores_each_fold_by_a_fit_on_the_other() -> None:
    domains, score, correct = _sample()
    groups = np.arange(score.size) // 2  # two hypotheses per utterance
    out = cross_fit_matching(domains, score, correct, groups, seed=3)
    fold = utterance_folds(groups, 2, seed=3)
    assert (fold[0::2] == fold[1::2]).all()  # an utterance is never split between folds
    for k in (0, 1):
        test = fold == k
        fitted = fit_distribution_matching(domains[~test], score[~test], correct[~test])
        np.testing.assert_array_equal(out[test], fitted.transform(domains[test], score[test]))
    assert ((out >= 0) & (out <= 1)).all()
