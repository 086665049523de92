"""The probe: live NLU on one utterance, ranked per device by the shipped media demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from reranker.errors import DataError
from reranker.nlu import NluModels, load_models
from reranker.probe import PROBE_COLUMNS, probe_text

MEDIA = Path(__file__).resolve().parent.parent / "demo_data" / "media"


@pytest.fixture(scope="module")
def models() -> NluModels:
    return load_models(MEDIA / "models")


@pytest.mark.parametrize("loss", ["r2", "r3"])
def test_mary_poppins_depends_on_the_device(models: NluModels, loss: str) -> None:
    ranked = probe_text(
        models, "play mary poppins", ["fire_tv", "echo_dot"], MEDIA / "weights" / loss
    )
    assert ranked["fire_tv"].loc[0, "domain"] == "Video"
    assert ranked["echo_dot"].loc[0, "domain"] != "Video"
    # Same NLU hypotheses for both devices: only the re-ranker's scores differ.
    key = ["domain", "intent", "slots", "domain_score", "intent_score", "slot_score"]
    fire = ranked["fire_tv"].sort_values(key[:3]).reset_index(drop=True)[key]
    dot = ranked["echo_dot"].sort_values(key[:3]).reset_index(drop=True)[key]
    assert fire.equals(dot)


def test_r0_ranking_ignores_the_device(models: NluModels) -> None:
    ranked = probe_text(models, "play mary poppins", ["fire_tv", "echo_dot", "echo_show"], "r0")
    frames = list(ranked.values())
    for frame in frames[1:]:
        assert frame.equals(frames[0])
    assert list(frames[0].columns) == list(PROBE_COLUMNS)
    assert frames[0]["rank"].tolist() == list(range(1, len(frames[0]) + 1))
    assert frames[0]["score"].is_monotonic_decreasing


def test_probe_options_and_errors(models: NluModels) -> None:
    ranked = probe_text(models, "play moana", ["fire_tv", "fire_tv"], "r0", nbest=2)
    assert list(ranked) == ["fire_tv"] and len(ranked["fire_tv"]) == 2
    assert list(probe_text(models, "hello", "echo_dot", "r0")) == ["echo_dot"]
    with pytest.raises(DataError, match="probe text is empty"):
        probe_text(models, "  ", ["fire_tv"], "r0")
    with pytest.raises(DataError, match="at least one non-empty device"):
        probe_text(models, "play moana", [], "r0")
    with pytest.raises(DataError, match="nbest must be >= 1"):
        probe_text(models, "play moana", ["fire_tv"], "r0", nbest=0)
