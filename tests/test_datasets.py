"""Dataset discovery in a data directory laid out like demo_data/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reranker import datasets
from tests.conftest import CONFORMANCE, REPO


def _write_dataset(root: Path, key: str, *, meta: dict | None, splits: list[str]) -> None:
    d = root / key
    (d / "hypotheses").mkdir(parents=True)
    for split in splits:
        shutil.copy(CONFORMANCE / "hypotheses.csv", d / "hypotheses" / f"{split}.csv")
    if meta is not None:
        (d / "dataset.json").write_text(json.dumps(meta))


def test_discover_datasets_reads_the_demo_layout(tmp_path: Path) -> None:
    _write_dataset(
        tmp_path,
        "media",
        meta={"name": "Media demo", "description": "films", "devices": "simulated"},
        splits=["train", "dev", "test"],
    )
    (tmp_path / "media" / "weights" / "r2").mkdir(parents=True)
    (tmp_path / "media" / "models").mkdir()
    (tmp_path / "sample").mkdir()
    shutil.copy(CONFORMANCE / "hypotheses.csv", tmp_path / "sample" / "hypotheses.csv")
    (tmp_path / "sources").mkdir()  # not a dataset
    found = datasets.discover_datasets(tmp_path)
    assert [d.key for d in found] == ["media", "sample"]
    media, sample = found
    assert media.name == "Media demo" and media.devices_simulated
    assert list(media.splits) == ["test", "dev", "train"]
    assert media.default_split == "test"
    assert set(media.weights) == {"r2"} and media.models == tmp_path / "media" / "models"
    assert sample.name == "Sample" and not sample.devices_simulated
    assert sample.splits == {"all": tmp_path / "sample" / "hypotheses.csv"}
    assert sample.default_split == "all" and sample.weights == {} and sample.models is None


def test_discover_datasets_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert datasets.discover_datasets(tmp_path / "nope") == []


def test_device_note_follows_the_dataset_description(tmp_path: Path) -> None:
    uniform = {"devices": "simulated", "device_simulation": {"independent_of_content": True}}
    dependent = {
        "devices": "simulated",
        "device_simulation": {"domain_prior_given_device": {"fire_tv": {"Video": 0.6}}},
    }
    _write_dataset(tmp_path, "real", meta=uniform, splits=["test"])
    _write_dataset(tmp_path, "media", meta=dependent, splits=["test"])
    _write_dataset(tmp_path, "logs", meta={"name": "Logs"}, splits=["test"])
    notes = {d.key: d.device_note for d in datasets.discover_datasets(tmp_path)}
    assert "uniformly at random" in notes["real"] and "noise" in notes["real"]
    assert "device-dependent" not in notes["real"]
    assert "device-dependent distribution" in notes["media"]
    assert notes["logs"] == ""  # real devices: nothing to warn about


def test_shipped_datasets_describe_their_devices() -> None:
    found = {d.key: d for d in datasets.discover_datasets(REPO / "demo_data")}
    assert "independently of the utterance" in found["real"].device_note
    assert "device-dependent" in found["media"].device_note
    assert found["sample"].description  # the sample has a description too
