"""Cache tokens and download names of the dashboard."""

from __future__ import annotations

from pathlib import Path

from dashboard import names
from reranker.registry import WeightsRegistry
from tests.conftest import make_document


def test_registry_fingerprint_changes_on_publish_and_rollback(tmp_path: Path) -> None:
    reg = WeightsRegistry(tmp_path / "w")
    reg.publish("Music", make_document("Music", ["a"], 0))
    first = names.registry_fingerprint(reg.path)
    assert names.registry_fingerprint(reg.path) == first
    reg.publish("Music", make_document("Music", ["a"], 1))
    second = names.registry_fingerprint(reg.path)
    assert second != first
    reg.rollback("Music")
    assert names.registry_fingerprint(reg.path) not in (second,)
    assert names.registry_fingerprint(None) == "r0"


def test_safe_file_name() -> None:
    assert names.safe_file_name("media/R2 reliability: all data") == "media_R2_reliability_all_data"
    assert names.safe_file_name("///") == "data"
