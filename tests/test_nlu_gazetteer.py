"""Gazetteer features of the CRF slot tagger: slot values seen in training, leave-one-out."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from reranker.annotation import strip_annotation, tokens_and_tags
from reranker.errors import ModelError
from reranker.nlu import load_models, train_models, validate_corpus
from reranker.nlu.gazetteer import Gazetteer, slot_values
from reranker.nlu.tagger import GAZETTEER_FILE


def test_slot_values_of_a_tagged_sentence() -> None:
    tokens, tags = tokens_and_tags("play [artist : Purple  Rain] by [artist : prince] now")
    assert slot_values(tokens, tags) == {("purple rain", "artist"): 1, ("prince", "artist"): 1}


def test_features_mark_every_known_value_with_its_types() -> None:
    gaz = Gazetteer.from_annotations(
        ["play [song : purple rain]", "play [artist : prince]", "play [song : prince]"]
    )
    feats = gaz.features("play Purple Rain by prince".split())
    assert feats == [[], ["gB=song"], ["gI=song"], [], ["gB=artist", "gB=song"]]


def test_training_features_are_leave_one_out() -> None:
    annotations = ["play [song : purple rain]", "play [song : thriller]", "play [song : thriller]"]
    gaz = Gazetteer.from_annotations(annotations)
    for annotation, fires in zip(annotations, [False, True, True], strict=True):
        tokens, tags = tokens_and_tags(annotation)
        own = gaz.features(tokens, exclude=slot_values(tokens, tags))
        assert (own[1] == ["gB=song"]) is fires, annotation
    # On new text every known value fires, the one seen once included.
    assert gaz.features(["purple", "rain"]) == [["gB=song"], ["gI=song"]]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    gaz = Gazetteer.from_annotations(["set [time : seven am]", "wake me at [time : seven am]"])
    gaz.save(tmp_path / "g.json")
    back = Gazetteer.load(tmp_path / "g.json")
    assert dict(back.counts) == {("seven am", "time"): 2} and back.max_tokens == gaz.max_tokens


@pytest.mark.parametrize(
    "content",
    ['{"format": "other"}', "[1, 2]", '{"format": "reranker-gazetteer", "max_tokens": 0}', "{"],
)
def test_a_bad_gazetteer_file_is_a_model_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "g.json").write_text(content)
    with pytest.raises(ModelError, match=r"g\.json"):
        Gazetteer.load(tmp_path / "g.json")


def _corpus() -> pd.DataFrame:
    rows = []
    for k, (song, artist) in enumerate(
        [("purple rain", "prince"), ("thriller", "michael jackson"), ("hello", "adele")] * 6
    ):
        rows.append(("Music", "play_music", f"play [song : {song}] by [artist : {artist}]"))
        rows.append(("Weather", "query", f"weather in [city : city{k % 5}]"))
    return validate_corpus(
        [
            {"id": f"x{k}", "text": strip_annotation(a), "domain": d, "intent": i, "annotation": a}
            for k, (d, i, a) in enumerate(rows)
        ]
    )


def test_models_save_and_use_the_gazetteer(tmp_path: Path) -> None:
    models = train_models(_corpus(), tmp_path / "m")
    music = models.domains["Music"]
    assert music.settings.crf_gazetteer and music.slot_tagger.gazetteer is not None
    assert (tmp_path / "m" / "Music" / GAZETTEER_FILE).is_file()
    assert any("gB=song" in f for f in music.slot_tagger.features("play thriller".split())[1])
    (tmp_path / "m" / "Music" / GAZETTEER_FILE).unlink()
    with pytest.raises(ModelError, match="missing gazetteer file"):
        load_models(tmp_path / "m")


def test_the_gazetteer_can_be_turned_off(tmp_path: Path) -> None:
    models = train_models(_corpus(), tmp_path / "m", settings={"*": {"crf_gazetteer": False}})
    assert models.domains["Music"].slot_tagger.gazetteer is None
    assert not (tmp_path / "m" / "Music" / GAZETTEER_FILE).exists()
    doc = json.loads((tmp_path / "m" / "Music" / "settings.json").read_text())
    assert doc["settings"]["crf_gazetteer"] is False
