"""Training options and the shared checks: validated once, errors name the option and value."""

from __future__ import annotations

import pytest

from reranker._validation import check_choice, check_unit_interval, describe_choices
from reranker.errors import DataError, ParameterError
from reranker.options import TrainingOptions


def test_defaults_and_params() -> None:
    options = TrainingOptions("r3", alpha=2)
    assert options.scope == "utterance"
    assert options.params() == {
        "loss": "r3",
        "l2": 1e-3,
        "alpha": 2.0,
        "scope": "utterance",
        "temperature": 1.0,
        "max_iter": 1000,
        "device_l2": "auto",
    }
    assert "device_l2" not in TrainingOptions("r3", device_l2=None).params()
    assert isinstance(options.params()["alpha"], float)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "r9"}, "loss must be one of r1, r2, r3, got 'r9'"),
        ({"scope": "global"}, "scope must be 'domain' or 'utterance', got 'global'"),
        ({"alpha": -1.0}, "alpha must be >= 0, got -1.0"),
        ({"l2": float("nan")}, "l2 must be >= 0"),
        ({"temperature": 0.0}, r"temperature must lie in \[0.001, 1000\], got 0.0"),
        ({"alpha": 2e6}, r"alpha must lie in \[0, 1e\+06\]"),
        ({"max_iter": 0}, "max_iter must be >= 1"),
        ({"max_iter": 2.5}, "max_iter must be an integer"),
        ({"alpha": "x"}, "alpha must be >= 0, got 'x'"),
    ],
)
def test_bad_options_raise_a_parameter_error(kwargs: dict, match: str) -> None:
    args = {"loss": "r2"} | kwargs
    with pytest.raises(ParameterError, match=match) as caught:
        TrainingOptions(**args)
    assert isinstance(caught.value, ValueError)


def test_options_are_frozen() -> None:
    options = TrainingOptions("r1")
    with pytest.raises(AttributeError):
        options.loss = "r2"  # type: ignore[misc]


def test_shared_checks() -> None:
    assert describe_choices(["a", "b"]) == "'a' or 'b'"
    assert describe_choices(["a", "b", "c"]) == "one of a, b, c"
    assert check_choice("x", "a", ("a", "b")) == "a"
    with pytest.raises(ParameterError, match="x must be 'a' or 'b', got 'c'"):
        check_choice("x", "c", ("a", "b"))
    import numpy as np

    check_unit_interval(np.array([0.0, 1.0]), "score")
    with pytest.raises(DataError, match=r"score must lie in \[0, 1\], got 1.5"):
        check_unit_interval(np.array([0.2, 1.5]), "score")
