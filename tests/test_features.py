"""Features of the per-domain re-ranker (docs/features.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reranker import features
from reranker.errors import WeightsError
from reranker.features import (
    default_feature_names,
    feature_description,
    feature_matrix,
    is_known_feature,
    register_feature,
)
from reranker.hypotheses import validate_hypotheses


def _table(rows: list[tuple[str, str, str, float, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows,
        columns=["utterance_id", "domain", "device", "domain_score", "intent_score", "slot_score"],
    )
    frame["intent"] = (
        frame["domain"] + ".I" + frame.groupby(["utterance_id", "domain"]).cumcount().astype(str)
    )
    frame["slots"] = ""
    return validate_hypotheses(frame)


TABLE = _table(
    [
        ("u1", "Music", "echo_dot", 0.9, 0.5, 0.5),  # product .225 -> rank 2 of Music
        ("u1", "Music", "echo_dot", 0.9, 0.6, 0.5),  # .27 -> rank 1
        ("u1", "Video", "echo_dot", 0.4, 0.2, 0.0),  # rank 1 of Video, zero slot score
        ("u1", "Music", "echo_dot", 0.9, 0.5, 0.5),  # tie with row 0 -> rank 3 (later row)
        ("u2", "Music", "fire_tv", 1.0, 1.0, 1.0),  # rank 1 in its own utterance
        ("u2", "Video", "fire_tv", 0.7, 0.7, 0.7),
    ]
)


def test_default_feature_names_order_and_devices() -> None:
    assert default_feature_names(["fire_tv", "echo_dot", "fire_tv"]) == [
        "log_domain_score",
        "log_intent_score",
        "log_slot_score",
        "domain_score",
        "intent_score",
        "slot_score",
        "rank_in_domain",
        "device=echo_dot",
        "device=fire_tv",
    ]


def test_feature_matrix_hand_worked() -> None:
    names = default_feature_names(["echo_dot", "fire_tv"])
    X = feature_matrix(TABLE, names)
    assert X.shape == (6, 9)
    np.testing.assert_allclose(X[:, 0], np.log([0.9, 0.9, 0.4, 0.9, 1.0, 0.7]))
    np.testing.assert_allclose(X[2, 2], np.log(1e-6))  # clipped at 1e-6
    np.testing.assert_array_equal(X[:, 5], [0.5, 0.5, 0.0, 0.5, 1.0, 0.7])
    np.testing.assert_array_equal(X[:, 6], [2, 1, 1, 3, 1, 1])
    np.testing.assert_array_equal(X[:, 7], [1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(X[:, 8], [0, 0, 0, 0, 1, 1])


def test_rank_in_domain_same_on_domain_subset() -> None:
    music = TABLE[TABLE["domain"] == "Music"]
    full = feature_matrix(TABLE, ["rank_in_domain"])[TABLE["domain"] == "Music"]
    np.testing.assert_array_equal(feature_matrix(music, ["rank_in_domain"]), full)


def test_unknown_device_gets_zero_device_features() -> None:
    X = feature_matrix(TABLE, ["device=echo_show", "device=other"])
    assert not X.any()


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["no_such_feature"], "unknown feature"),
        (["device="], "unknown feature"),
        (["slot_score", "slot_score"], "duplicated"),
    ],
)
def test_feature_matrix_rejects_bad_names(names: list[str], match: str) -> None:
    with pytest.raises(WeightsError, match=match):
        feature_matrix(TABLE, names)


def test_register_feature_decorator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "_REGISTRY", dict(features._REGISTRY))

    @register_feature("score_product")
    def score_product(h: pd.DataFrame) -> np.ndarray:
        """Product of the three NLU scores."""
        return (h["domain_score"] * h["intent_score"] * h["slot_score"]).to_numpy(float)

    assert is_known_feature("score_product")
    assert feature_description("score_product") == "Product of the three NLU scores."
    np.testing.assert_allclose(
        feature_matrix(TABLE, ["score_product"])[:, 0],
        TABLE.domain_score * TABLE.intent_score * TABLE.slot_score,
    )
    with pytest.raises(ValueError, match="already registered"):
        register_feature("score_product", lambda h: np.zeros(len(h)))
    with pytest.raises(ValueError, match="reserved"):
        register_feature("device=x", lambda h: np.zeros(len(h)))
    # a feature returning the wrong shape is a clear error
    register_feature("broken", lambda h: np.zeros(3))
    with pytest.raises(WeightsError, match="broken"):
        feature_matrix(TABLE, ["broken"])


def test_every_default_feature_is_documented() -> None:
    for name in default_feature_names(["echo_dot"]):
        assert feature_description(name)
        if not name.startswith("device="):
            assert features._REGISTRY[name].__doc__


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=8),
    seed=st.integers(0, 2**31),
)
def test_rank_in_domain_is_a_permutation_ordered_by_product(sizes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for g, size in enumerate(sizes):
        for _ in range(size):
            rows.append(
                (f"u{g // 2}", f"D{g % 2}", "echo_dot", *np.round(rng.random(3), 1).tolist())
            )
    table = _table(rows)
    rank = feature_matrix(table, ["rank_in_domain"])[:, 0]
    product = table.domain_score * table.intent_score * table.slot_score
    for _, idx in table.groupby(["utterance_id", "domain"]).groups.items():
        r = rank[np.asarray(idx)]
        assert sorted(r) == list(range(1, len(idx) + 1))
        # slow reference: a stable sort on -product
        expected = np.empty(len(idx))
        expected[np.argsort(-product[idx].to_numpy(), kind="stable")] = np.arange(1, len(idx) + 1)
        np.testing.assert_array_equal(r, expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 0.25, 0.5, 1.0])), max_size=30))
def test_rank_in_groups_matches_a_slow_reference(rows: list[tuple[int, float]]) -> None:
    from reranker.features import rank_in_groups

    codes = np.array([c for c, _ in rows], dtype=np.int64)
    product = np.array([p for _, p in rows], dtype=np.float64)
    expected = [
        1 + sum(1 for j, (cj, pj) in enumerate(rows) if cj == c and (pj > p or (pj == p and j < i)))
        for i, (c, p) in enumerate(rows)
    ]
    assert rank_in_groups(codes, product).tolist() == expected


def test_registering_a_non_callable_is_a_parameter_error() -> None:
    from reranker.errors import ParameterError

    with pytest.raises(ParameterError, match="is not callable"):
        register_feature("not_callable", 3)  # type: ignore[call-overload]
