"""Hostile input, one test per kind of defect: a clear line, nothing lost, nothing left behind.

The property-based search over the same kinds is ``tests/test_fuzz_cli.py``; these are the
hand-picked cases that once failed, kept as regression tests.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from reranker._files import DOCUMENT_LIMIT, POINTER_LIMIT, parse_json, read_file_bytes
from reranker.errors import DataError, ModelError, WeightsError
from reranker.hypotheses import read_hypotheses
from reranker.registry import (
    MAX_WEIGHT,
    STALE_TEMP_SECONDS,
    WeightsRegistry,
    check_domain_name,
    validate_weights_document,
)
from tests.cli_harness import (
    GOOD_TABLE,
    assert_one_error_line,
    copy_models,
    invoke,
    make_registry,
    snapshot,
)
from tests.test_registry import _document

DEEP = "[" * 100_000 + "]" * 100_000
LONG = "x" * 300  # one path component over NAME_MAX (255)


# -- 1. tracebacks: every parse failure and file-system condition is one line -------------------


def test_parse_json_reports_every_failure_as_one_error() -> None:
    for text, fragment in [
        (DEEP, "nested too deeply"),
        ("1" * 5000, "invalid JSON"),  # int() digit limit
        ('{"a": 1, "a": 2}', "key 'a' appears twice"),
        ("{", "line 1, column 2"),
    ]:
        with pytest.raises(WeightsError, match=fragment):
            parse_json(text, source="f.json", error=WeightsError)


def test_deeply_nested_json_in_every_reader(tmp_path: Path) -> None:
    jsonl = tmp_path / "h.jsonl"
    jsonl.write_text(DEEP + "\n")
    line = assert_one_error_line(invoke("evaluate", "-H", jsonl, "-w", "r0"), "h.jsonl", "line 1")
    assert "nested too deeply" in line
    reg = make_registry(tmp_path / "w")
    (reg / "Music" / "v0002.json").write_text(DEEP)
    assert_one_error_line(invoke("weights", "show", reg, "-d", "Music"), "v0002.json", "nested")
    models = copy_models(tmp_path / "models")
    (models / "manifest.json").write_text(DEEP)
    out = tmp_path / "p.csv"
    assert_one_error_line(
        invoke("nlu", "predict", "-m", models, "-c", jsonl, "-o", out), "manifest.json", "nested"
    )
    domain_map = tmp_path / "map.json"
    domain_map.write_text(DEEP)
    assert_one_error_line(
        invoke("nlu", "predict", "-m", models, "-c", jsonl, "-o", out, "--domain-map", domain_map),
        "map.json",
        "nested",
    )
    assert not out.exists()


@pytest.mark.parametrize("text", ["٣", "1٣", "²", "-1", "0", "1e3", "0x1", "1.0", "", "\x00"])
def test_current_pointer_is_ascii_digits_only(tmp_path: Path, text: str) -> None:
    reg = make_registry(tmp_path / "w")
    (reg / "Music" / "CURRENT").write_text(text)
    with pytest.raises(WeightsError, match="CURRENT: expected a version number"):
        WeightsRegistry(reg).current_version("Music")
    assert_one_error_line(invoke("weights", "list", reg), "CURRENT", "version number")


def test_path_components_over_255_characters(tmp_path: Path) -> None:
    long = tmp_path / LONG
    for args, fragment in [
        (["evaluate", "-H", f"{long}.csv", "-w", "r0"], LONG),
        (["rerank", "-H", GOOD_TABLE, "-w", "r0", "-o", f"{long}.csv"], LONG),
        (["evaluate", "-H", GOOD_TABLE, "-w", long], LONG),
        (["weights", "list", long], LONG),
        (["train", "-H", GOOD_TABLE, "--loss", "r2", "-o", long], LONG),
    ]:
        assert_one_error_line(invoke(*args), fragment)
    assert list(tmp_path.iterdir()) == []


def test_special_files_are_refused_before_reading(tmp_path: Path) -> None:
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    assert_one_error_line(invoke("evaluate", "-H", zero, "-w", "r0"), "zero.csv", "regular file")
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)  # opening must not wait for a writer
    assert_one_error_line(invoke("evaluate", "-H", fifo, "-w", "r0"), "fifo.jsonl", "regular")
    reg = make_registry(tmp_path / "w")
    (reg / "Music" / "CURRENT").unlink()
    (reg / "Music" / "CURRENT").symlink_to("/dev/zero")
    assert_one_error_line(invoke("weights", "list", reg), "CURRENT", "regular file")


def test_small_files_have_size_limits(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "w")
    (reg / "Music" / "CURRENT").write_text("2" + " " * POINTER_LIMIT)
    assert_one_error_line(invoke("weights", "list", reg), "CURRENT", "too large")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (DOCUMENT_LIMIT + 1))
    with pytest.raises(DataError, match="too large for a domain map"):
        read_file_bytes(big, what="domain map", limit=DOCUMENT_LIMIT)


def test_unwritable_out_directory_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, which ignores permission bits: make the temporary file fail instead.
    import tempfile

    def denied(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / "ranked.csv"
    line = assert_one_error_line(
        invoke("rerank", "-H", GOOD_TABLE, "-w", "r0", "-o", out), "ranked.csv"
    )
    assert "Permission denied" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"),
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
    ],
    ids=["bad-zip", "truncated", "empty", "random"],
)
def test_corrupt_classifier_archive(tmp_path: Path, damage) -> None:
    models = copy_models(tmp_path / "models")
    damage(models / "Music" / "domain_classifier.npz")
    line = assert_one_error_line(
        invoke("probe", "play x", "-m", models, "-w", "r0", "--device", "echo_dot"),
        "domain_classifier.npz",
    )
    assert "classifier file" in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["evaluate", "-H", GOOD_TABLE, "-w", "r0", "--seed", "-1"], "--seed"),
        (["evaluate", "-H", GOOD_TABLE, "-w", "r0", "--bins", "2000000000"], "--bins"),
        (["evaluate", "-H", GOOD_TABLE, "-w", "r0", "--bootstrap", "1000000000"], "--bootstrap"),
        (["train", "-H", GOOD_TABLE, "--loss", "r1", "-o", "w", "--temperature", "1e-300"], "--temperature"),
        (["train", "-H", GOOD_TABLE, "--loss", "r3", "-o", "w", "--alpha", "1e308"], "--alpha"),
        (["train", "-H", GOOD_TABLE, "--loss", "r2", "-o", "w", "--l2", "-1"], "--l2"),
        (["train", "-H", GOOD_TABLE, "--loss", "r2", "-o", "w", "--jobs", "100000"], "--jobs"),
    ],
)  # fmt: skip
def test_parameters_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_one_error_line(invoke(*args), fragment)
    assert list(tmp_path.iterdir()) == []


def test_training_that_diverges_fails_only_that_domain(tmp_path: Path) -> None:
    from reranker.training import train_domains

    table = read_hypotheses(GOOD_TABLE)
    with pytest.raises(DataError, match="temperature must lie in"):
        train_domains(table, loss="r1", out=tmp_path / "w", temperature=1e-300, jobs=1)
    # A document whose metrics are not finite (as a diverged fit produces) is not published,
    # and says why; the registry keeps what it had.
    reg = make_registry(tmp_path / "w2")
    before = snapshot(reg)
    doc = _document("Music", 9) | {"metrics": {"objective": float("nan")}}
    with pytest.raises(WeightsError, match="cannot be stored as JSON"):
        WeightsRegistry(reg).publish("Music", doc)
    assert snapshot(reg) == before


# -- 2. weights that cannot score are rejected when read ----------------------------------------


@pytest.mark.parametrize("value", [1e308, -1e308, MAX_WEIGHT * 1.5, float("inf"), float("nan")])
def test_weights_beyond_the_bound_are_rejected_naming_the_file(
    tmp_path: Path, value: float
) -> None:
    reg = make_registry(tmp_path / "w")
    path = reg / "Music" / "v0002.json"
    doc = json.loads(path.read_text())
    doc["weights"][0] = value
    path.write_text(json.dumps(doc))
    line = assert_one_error_line(invoke("evaluate", "-H", GOOD_TABLE, "-w", reg), "v0002.json")
    assert "'weights'" in line
    doc = _document("Music", 1) | {"bias": value}
    with pytest.raises(WeightsError, match="'bias' must be a finite number within"):
        validate_weights_document(doc, source="x.json")


# -- 3. duplicated columns -------------------------------------------------------------------


def test_duplicated_csv_column_is_rejected(tmp_path: Path) -> None:
    lines = GOOD_TABLE.read_text().splitlines()
    path = tmp_path / "dup.csv"
    path.write_text(
        "\n".join([lines[0] + ",domain_score", *(row + ",0.5" for row in lines[1:])]) + "\n"
    )
    assert_one_error_line(invoke("evaluate", "-H", path, "-w", "r0"), "dup.csv", "'domain_score'")


def test_duplicated_jsonl_key_and_parquet_column_are_rejected(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = tmp_path / "dup.jsonl"
    jsonl.write_text('{"utterance_id": "u1", "domain": "M", "domain": "N"}\n')
    assert_one_error_line(
        invoke("evaluate", "-H", jsonl, "-w", "r0"), "dup.jsonl", "line 1", "'domain'"
    )
    table = pa.table([pa.array(["u1"]), pa.array(["M"]), pa.array(["N"])], ["utterance_id", "domain", "domain"])  # fmt: skip
    parquet = tmp_path / "dup.parquet"
    pq.write_table(table, parquet)
    assert_one_error_line(invoke("evaluate", "-H", parquet, "-w", "r0"), "dup.parquet", "'domain'")


# -- 4. --out never replaces an input --------------------------------------------------------


def test_out_equal_to_an_input_is_refused_in_every_command(tmp_path: Path) -> None:
    table = tmp_path / "in.csv"
    table.write_bytes(GOOD_TABLE.read_bytes())
    link = tmp_path / "link.csv"
    link.symlink_to(table)
    hard = tmp_path / "hard.csv"
    os.link(table, hard)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "a", "text": "play x"}\n')
    models = copy_models(tmp_path / "models")
    before = snapshot(tmp_path)
    for args in [
        ["rerank", "-H", table, "-w", "r0", "-o", table],
        ["rerank", "-H", table, "-w", "r0", "-o", link],
        ["rerank", "-H", table, "-w", "r0", "-o", hard],
        ["rerank", "-H", table, "-w", "r0", "-o", tmp_path / "." / "in.csv"],
        ["nlu", "predict", "-m", models, "-c", corpus, "-o", tmp_path / "corpus.jsonl"],
        ["nlu", "import", corpus, "-f", "slurp", "-o", corpus],
        ["nlu", "train", "-c", corpus, "-o", tmp_path],
        ["train", "-H", table, "--loss", "r2", "-o", table],
    ]:
        assert_one_error_line(invoke(*args))
    assert snapshot(tmp_path) == before


def test_nlu_train_never_replaces_a_directory_that_is_not_a_model_directory(
    tmp_path: Path,
) -> None:
    from reranker.nlu import read_corpus, train_models

    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("x")
    frame = read_corpus(REPO_CORPUS) if REPO_CORPUS.exists() else None
    if frame is None:
        pytest.skip("no shipped corpus")
    with pytest.raises(DataError, match="not an NLU model directory"):
        train_models(frame.head(30), keep)
    assert (keep / "precious.txt").read_text() == "x"


REPO_CORPUS = Path(__file__).resolve().parents[1] / "demo_data" / "media" / "corpus" / "dev.jsonl"


# -- 5. usage errors are one line -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["evaluate", "-H", GOOD_TABLE, "-w", "r0", "--strategy", "bogus"], "--strategy"),
        (["evaluate", "-H", GOOD_TABLE, "-w", "r0", "--bins", "0"], "--bins"),
        (["evaluate", "-H", GOOD_TABLE, "-w", "r0", "--bins", "ten"], "--bins"),
        (["evaluate", "-w", "r0"], "--hypotheses"),
        (["evaluate", "-H", "/nonexistent/h.csv", "-w", "r0"], "h.csv"),
        (["rerank", "--no-such-option"], "--no-such-option"),
        (["no-such-command"], "no-such-command"),
        (["weights", "show", "w"], "--domain"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], fragment: str) -> None:
    assert_one_error_line(invoke(*args), fragment)


def test_help_still_prints_help() -> None:
    outcome = invoke("--help")
    assert outcome.code == 0 and "evaluate" in outcome.stdout


# -- 7. domain names are safe path components everywhere ---------------------------------------


@pytest.mark.parametrize("name", ["a/b", "..", ".x", "a\\b", "a\x00b", "tab\there", "x" * 101, ""])
def test_one_domain_name_rule(name: str) -> None:
    with pytest.raises(WeightsError, match="cannot be stored"):
        check_domain_name(name)
    with pytest.raises(WeightsError, match="cannot be stored"):
        validate_weights_document(_document("Music", 1) | {"domain": name or "\n"}, source="u.json")


def test_training_a_domain_with_an_unsafe_name_fails_that_domain_only(tmp_path: Path) -> None:
    from reranker.training import train_domains

    table = read_hypotheses(GOOD_TABLE)
    table.loc[table["domain"] == "Books", "domain"] = "a/b"
    results = train_domains(table, loss="r2", out=tmp_path / "w", jobs=1, engine="serial")
    assert not results["a/b"].ok and "cannot be stored" in str(results["a/b"].error)
    assert all(r.ok for d, r in results.items() if d != "a/b")


# -- 8. stale temporary files -------------------------------------------------------------------


def test_stale_temporaries_are_removed_and_never_listed(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "w")
    directory = reg / "Music"
    stale = directory / ".v0003.json.abc123.tmp"
    stale_pointer = directory / ".CURRENT.def456.tmp"
    fresh = directory / ".v0003.json.live99.tmp"
    for f in (stale, stale_pointer, fresh):
        f.write_text("{partial")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(stale_pointer, (old, old))
    registry = WeightsRegistry(reg)
    assert registry.versions("Music") == [1, 2]
    listed = invoke("weights", "list", reg, "--json")
    assert listed.code == 0 and ".tmp" not in listed.stdout
    assert registry.publish("Music", _document("Music", 5)) == 3
    assert not stale.exists() and not stale_pointer.exists()
    assert fresh.exists()  # young: may belong to a publisher that has not taken the lock yet
    unrelated = directory / "notes.tmp"
    unrelated.write_text("mine")
    os.utime(unrelated, (old, old))
    registry.publish("Music", _document("Music", 6))
    assert unrelated.exists()


def test_model_errors_name_the_file(tmp_path: Path) -> None:
    from reranker.nlu import load_models

    models = copy_models(tmp_path / "models")
    (models / "Music" / "settings.json").write_text(
        '{"settings": {}, "training": {"slot_tagger": [1]}}'
    )
    with pytest.raises(ModelError, match=r"settings\.json"):
        load_models(models)
