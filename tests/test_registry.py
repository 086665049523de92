"""The weights registry: versions, atomic publish, rollback, scoring (docs/formats.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reranker import registry as registry_module
from reranker.errors import WeightsError
from reranker.features import default_feature_names
from reranker.hypotheses import validate_hypotheses
from reranker.registry import (
    WeightsRegistry,
    compare_documents,
    registry_table,
    validate_weights_document,
)
from reranker.scoring import score_hypotheses, score_with_registry
from reranker.synthetic import synthetic_hypotheses
from tests.conftest import make_document

NAMES = default_feature_names(["echo_dot", "echo_show", "fire_tv"])


def _document(domain: str, seed: int, loss: str = "r2") -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "domain": domain,
        "loss": loss,
        "version": None,
        "features": NAMES,
        "weights": rng.normal(size=len(NAMES)).round(6).tolist(),
        "bias": float(rng.normal()),
        "trained_at": "2026-01-01T00:00:00+00:00",
        "training_data": {"sha256": "0" * 64, "n_utterances": 1, "n_hypotheses": 2},
        "metrics": {"n_iter": 3, "converged": True, "objective": 0.5},
        "options": {"l2": 0.001},
    }


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return validate_hypotheses(synthetic_hypotheses(300, seed=3))


def test_publish_load_versions(tmp_path: Path) -> None:
    reg = WeightsRegistry(tmp_path / "w")
    assert reg.domains() == []
    assert reg.current_version("Music") is None
    assert reg.publish("Music", _document("Music", 1)) == 1
    assert reg.publish("Music", _document("Music", 2)) == 2
    assert reg.publish("Books", _document("Books", 3)) == 1
    assert reg.domains() == ["Books", "Music"]
    assert reg.versions("Music") == [1, 2]
    assert reg.current_version("Music") == 2
    assert (tmp_path / "w" / "Music" / "CURRENT").read_text() == "2\n"
    doc = reg.load("Music")
    assert doc["version"] == 2
    assert doc["weights"] == _document("Music", 2)["weights"]
    assert reg.load("Music", 1)["weights"] == _document("Music", 1)["weights"]
    on_disk = json.loads((tmp_path / "w" / "Music" / "v0001.json").read_text())
    assert list(on_disk)[:10] == list(registry_module.REQUIRED_KEYS)


def test_rollback_restores_previous_scores_exactly(tmp_path: Path, table: pd.DataFrame) -> None:
    reg = WeightsRegistry(tmp_path)
    for d in sorted(table["domain"].unique()):
        reg.publish(d, _document(d, 10))
    before = score_hypotheses(table, tmp_path)
    reg.publish("Music", _document("Music", 11))
    changed = score_hypotheses(table, tmp_path)
    music = (table["domain"] == "Music").to_numpy()
    assert not np.array_equal(before.score[music], changed.score[music])
    np.testing.assert_array_equal(before.score[~music], changed.score[~music])
    assert reg.rollback("Music") == 1
    after = score_hypotheses(table, tmp_path)
    np.testing.assert_array_equal(after.score, before.score)
    assert after.source == before.source
    # the rolled-back version is kept; the next publish takes a fresh number
    assert reg.versions("Music") == [1, 2]
    assert reg.publish("Music", _document("Music", 12)) == 3
    with pytest.raises(WeightsError, match="nothing to roll back"):
        reg.rollback("Books")
    with pytest.raises(WeightsError, match="no published weights"):
        reg.rollback("Nope")


class Crash(BaseException):
    """A simulated power cut: not an Exception, nothing may catch it."""


def _crash_on_call(target: Any, n: int) -> Any:
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            raise Crash(f"crash in call {n}")
        return target(*args, **kwargs)

    return wrapper


class _HalfWriter:
    """A file object whose write stores half the data, then crashes."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise Crash("crash mid-write")


CRASH_POINTS = [
    ("mkstemp version file", "tempfile.mkstemp", 1),
    ("write version file", "os.fdopen", 1),
    ("fsync version file", "os.fsync", 1),
    ("rename version file", "os.replace", 1),
    ("mkstemp CURRENT", "tempfile.mkstemp", 2),
    ("write CURRENT", "os.fdopen", 2),
    ("fsync CURRENT", "os.fsync", 3),  # the 2nd fsync is the directory's
    ("rename CURRENT", "os.replace", 2),
]


@pytest.mark.parametrize(("label", "target", "n"), CRASH_POINTS, ids=[c[0] for c in CRASH_POINTS])
def test_interrupted_publish_keeps_previous_version(
    tmp_path: Path,
    table: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    label: str,
    target: str,
    n: int,
) -> None:
    reg = WeightsRegistry(tmp_path)
    reg.publish("Music", _document("Music", 1))
    reg.publish("Books", _document("Books", 2))
    before = score_with_registry(table, tmp_path)
    module_name, attr = target.split(".")
    module = {"os": os, "tempfile": tempfile}[module_name]
    original = getattr(module, attr)
    if attr == "fdopen":
        calls = {"n": 0}

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            f = original(fd, *args, **kwargs)
            return _HalfWriter(f) if calls["n"] == n else f

        monkeypatch.setattr(module, attr, fdopen)
    else:
        monkeypatch.setattr(module, attr, _crash_on_call(original, n))
    with pytest.raises(Crash):
        reg.publish("Music", _document("Music", 99))
    monkeypatch.undo()
    assert reg.current_version("Music") == 1
    assert reg.load("Music")["weights"] == _document("Music", 1)["weights"]
    after = score_with_registry(table, tmp_path)
    np.testing.assert_array_equal(after.score, before.score)
    # no visible temporary file is left behind and the registry still works
    assert not [p for p in (tmp_path / "Music").iterdir() if p.name.endswith(".tmp")]
    version = reg.publish("Music", _document("Music", 5))
    assert version in (2, 3)
    assert reg.current_version("Music") == version
    assert reg.load("Music")["weights"] == _document("Music", 5)["weights"]


_PUBLISHER = """
import sys
from reranker.registry import WeightsRegistry
sys.path.insert(0, {tests!r})
from test_registry import _document
reg = WeightsRegistry({path!r})
for i in range({count}):
    reg.publish({domain!r}, _document({domain!r}, i))
"""


@pytest.mark.parametrize("domains", [("Music", "Books"), ("Music", "Music")])
def test_concurrent_publishers_lose_nothing(tmp_path: Path, domains: tuple[str, str]) -> None:
    count = 15
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PUBLISHER.format(
                    tests=str(Path(__file__).parent), path=str(tmp_path), domain=d, count=count
                ),
            ]
        )
        for d in domains
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    reg = WeightsRegistry(tmp_path)
    per_domain = {d: domains.count(d) * count for d in set(domains)}
    for d, total in per_domain.items():
        assert reg.versions(d) == list(range(1, total + 1))
        assert reg.current_version(d) == total
        for v in reg.versions(d):
            assert reg.load(d, v)["version"] == v


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"features": [*NAMES[:-1], "mystery"]}, "not computed by this version"),
        ({"weights": [1.0]}, "1 weights for 10 features"),
        ({"loss": "r7"}, "'loss' must be"),
        ({"bias": "x"}, "'bias'"),
        ({"training_data": {"sha256": "x"}}, "training_data"),
        ({"features": [NAMES[0], NAMES[0]]}, "twice"),
        ({"weights": [None] * len(NAMES)}, "finite numbers"),
    ],
)
def test_validate_weights_document_errors(change: dict[str, Any], match: str) -> None:
    doc = _document("Music", 1) | change
    with pytest.raises(WeightsError, match=match):
        validate_weights_document(doc, source="w.json")


def test_missing_key_is_named() -> None:
    doc = _document("Music", 1)
    del doc["trained_at"]
    with pytest.raises(WeightsError, match=r"w\.json: missing key.*trained_at"):
        validate_weights_document(doc, source="w.json")


def test_load_reports_broken_files(tmp_path: Path) -> None:
    reg = WeightsRegistry(tmp_path)
    reg.publish("Music", _document("Music", 1))
    path = tmp_path / "Music" / "v0001.json"
    doc = json.loads(path.read_text())
    doc["features"][0] = "renamed_feature"
    path.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match=r"v0001.json: feature\(s\) 'renamed_feature'"):
        reg.load("Music")
    path.write_text("{not json")
    with pytest.raises(WeightsError, match=r"v0001\.json: line 1, column 2: invalid JSON"):
        reg.load("Music")
    (tmp_path / "Music" / "CURRENT").write_text("7\n")
    with pytest.raises(WeightsError, match=r"points to v0007\.json"):
        reg.current_version("Music")
    with pytest.raises(WeightsError, match="no version 3"):
        reg.load("Music", 3)


@pytest.mark.parametrize("domain", ["", ".hidden", "a/b", "..", "a\\b"])
def test_bad_domain_names(tmp_path: Path, domain: str) -> None:
    with pytest.raises(WeightsError, match="cannot be stored"):
        WeightsRegistry(tmp_path).publish(domain, _document("x", 1) | {"domain": domain or "x"})


def test_registry_path_must_be_a_directory(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(WeightsError, match="not a weights directory"):
        WeightsRegistry(f)


def test_published_files_are_readable_by_others(tmp_path) -> None:
    import os
    import stat

    from reranker._files import default_file_mode
    from reranker.registry import WeightsRegistry

    source = WeightsRegistry(
        Path(__file__).parent.parent / "demo_data" / "media" / "weights" / "r2"
    )
    document = source.load("Music")
    registry = WeightsRegistry(tmp_path)
    registry.publish("Music", document)
    for path in (tmp_path / "Music").iterdir():
        if path.name != ".lock":
            assert stat.S_IMODE(os.stat(path).st_mode) == default_file_mode(), path


def test_registry_table_and_compare_documents(tmp_path: Path) -> None:
    reg = WeightsRegistry(tmp_path / "w")
    reg.publish("Music", make_document("Music", ["a"], 0))
    reg.publish("Music", make_document("Music", ["a", "b"], 1))
    reg.publish("Books", make_document("Books", ["a"], 2))
    overview = registry_table(reg.path)
    assert list(overview["domain"]) == ["Books", "Music"]
    assert list(overview["current"]) == [1, 2]
    assert overview.loc[1, "versions"] == "v1, v2"
    weights, facts = compare_documents(reg.load("Music", 1), reg.load("Music", 2))
    assert weights["feature"].iloc[-1] == "bias"
    assert np.isnan(weights.set_index("feature").loc["device=b", "a"])
    assert weights["change"].iloc[0] == pytest.approx(weights["b"].iloc[0] - weights["a"].iloc[0])
    assert facts.set_index("item").loc["version"].tolist() == ["1", "2"]


def test_roll_forward_undoes_a_rollback(tmp_path: Path) -> None:
    reg = WeightsRegistry(tmp_path / "w")
    for seed in (1, 2, 3):
        reg.publish("Music", _document("Music", seed))
    assert reg.rollback("Music") == 2 and reg.rollback("Music") == 1
    assert reg.roll_forward("Music") == 2
    assert reg.current_version("Music") == 2
    assert reg.roll_forward("Music") == 3
    with pytest.raises(WeightsError, match="latest version v3; nothing to roll forward"):
        reg.roll_forward("Music")
    with pytest.raises(WeightsError, match="no published weights for domain 'Books'"):
        reg.roll_forward("Books")
