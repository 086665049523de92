"""Colour-blind-safe series colours."""

from __future__ import annotations

import pytest

from reranker.palettes import LOSS_COLORS, OKABE_ITO, REFERENCE, series_colors


def test_losses_and_calibrators_keep_their_colours() -> None:
    colors = series_colors(["R2", "R2 + isotonic", "R0", "R3 + temperature"])
    assert colors is not None
    assert colors["R2"] == LOSS_COLORS["R2"] == OKABE_ITO["blue"]
    assert colors["R2 + isotonic"] == OKABE_ITO["reddish purple"]
    assert colors["R3 + temperature"] == OKABE_ITO["orange"]
    assert REFERENCE not in colors.values()


@pytest.mark.parametrize("n", range(1, 9))
def test_up_to_eight_names_get_distinct_okabe_ito_colours(n: int) -> None:
    names = [f"name{k}" for k in range(n)]
    colors = series_colors(names)
    assert colors is not None and list(colors) == names
    assert len(set(colors.values())) == n
    assert set(colors.values()) <= set(OKABE_ITO.values())


def test_more_than_eight_names_need_another_design() -> None:
    assert series_colors([f"d{k}" for k in range(9)]) is None


def test_fixed_colours_never_repeat() -> None:
    names = ["R2", "R2 + temperature", "R3 + temperature", "x"]
    colors = series_colors(names)
    assert colors is not None and len(set(colors.values())) == len(names)
    assert colors["R2 + temperature"] == OKABE_ITO["orange"]
    assert colors["R3 + temperature"] != OKABE_ITO["orange"]
