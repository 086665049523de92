"""The shipped demo weights trained with the default device penalty.

On the real-corpus demo every device is drawn uniformly at random, so any device weight is noise:
each loss's default weights must keep every device weight under 0.15 in absolute value. On the
media demo the devices matter, and the same defaults must keep the preferences the probe shows
("play mary poppins" is a film on a TV and not on a voice-only speaker).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reranker.features import DEVICE_PREFIX
from reranker.nlu import load_models
from reranker.probe import probe_text
from reranker.scoring import load_documents

DEMO = Path(__file__).resolve().parent.parent / "demo_data"


def _device_weights(weights: Path) -> dict[str, dict[str, float]]:
    documents = load_documents(weights) or {}
    assert documents, f"no weights in {weights}"
    return {
        domain: {
            name[len(DEVICE_PREFIX) :]: float(w)
            for name, w in zip(doc["features"], doc["weights"], strict=True)
            if name.startswith(DEVICE_PREFIX)
        }
        for domain, doc in documents.items()
    }


@pytest.mark.parametrize("loss", ["r1", "r2", "r3"])
def test_real_corpus_device_weights_are_silenced(loss: str) -> None:
    weights = _device_weights(DEMO / "real" / "weights" / loss)
    assert len(weights) == 21
    largest = {domain: max(abs(w) for w in ws.values()) for domain, ws in weights.items()}
    assert max(largest.values()) < 0.15, largest
    for domain, doc in (load_documents(DEMO / "real" / "weights" / loss) or {}).items():
        assert "device_l2_search" in doc["options"], domain  # trained with the default


@pytest.mark.parametrize("loss", ["r1", "r2", "r3"])
def test_media_keeps_its_device_preferences(loss: str) -> None:
    weights = _device_weights(DEMO / "media" / "weights" / loss)
    video = weights["Video"]
    assert video["fire_tv"] - video["echo_dot"] > 1.0
    ranked = probe_text(
        load_models(DEMO / "media" / "models"),
        "play mary poppins",
        ["fire_tv", "echo_dot"],
        DEMO / "media" / "weights" / loss,
    )
    assert ranked["fire_tv"].loc[0, "domain"] == "Video"
    assert ranked["echo_dot"].loc[0, "domain"] != "Video"
