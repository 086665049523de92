"""Property-based search for bad input that escapes the one-line error contract.

Hypothesis generates malformed hypothesis tables, weights documents, ``CURRENT`` pointers, NLU
manifests and classifier archives, and out-of-range parameter values, and feeds them to every
command that reads them. Each run must exit non-zero with exactly one ``reranker: error: ...``
line naming the file (and the row and column where there is one), print no traceback, and
create or change no output file. Commands run in-process (:func:`reranker.cli.run`), so the
search stays fast; a few checks go through the installed console script.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reranker.calibration import MAX_BINS
from reranker.registry import MAX_WEIGHT
from tests.cli_harness import (
    GOOD_TABLE,
    MODELS,
    assert_one_error_line,
    invoke,
    make_registry,
    snapshot,
)
from tests.conftest import reranker_cli
from tests.hostile_strings import NASTY, hostile_text

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCORES = ("domain_score", "intent_score", "slot_score")
KEYS = ("utterance_id", "domain", "intent")
GOOD = pd.read_csv(GOOD_TABLE, dtype=str, keep_default_na=False).head(12)


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        yield Path(d)


# -- hypothesis tables --------------------------------------------------------------------------


def _in_range_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    coerced = pd.to_numeric(pd.Series([text]), errors="coerce").iloc[0]
    return (0.0 <= value <= 1.0) or (not pd.isna(coerced) and 0.0 <= float(coerced) <= 1.0)


bad_score = st.one_of(
    st.floats(min_value=1.0, exclude_min=True),
    st.floats(max_value=0.0, exclude_max=True),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    hostile_text.filter(lambda s: not _in_range_number(s)),
).map(lambda v: v if isinstance(v, str) else repr(v))

unbalanced_slots = st.builds(
    lambda a, b: f"{a} [song : {b}", st.text("abc ", max_size=5), st.text("xyz", max_size=5)
)


@st.composite
def cell_damage(draw: st.DrawFn) -> tuple[pd.DataFrame, int, str]:
    """A table with one bad cell: (table, 0-based row, column)."""
    table = GOOD.copy()
    row = draw(st.integers(0, len(table) - 1))
    kind = draw(st.sampled_from(["score", "missing", "slots"]))
    if kind == "score":
        column = draw(st.sampled_from(SCORES))
        table.loc[row, column] = draw(bad_score)
    elif kind == "missing":
        column = draw(st.sampled_from(KEYS))
        table.loc[row, column] = draw(st.sampled_from(["", " ", "\t"]))
    else:
        column = "slots"
        table.loc[row, column] = draw(unbalanced_slots)
    return table, row, column


def _write_table(table: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows(table.itertuples(index=False))
        path.write_text(buffer.getvalue(), encoding="utf-8", errors="surrogatepass")
    elif path.suffix == ".jsonl":
        lines = (json.dumps(r) for r in table.to_dict(orient="records"))
        path.write_text("\n".join(lines) + "\n")
    else:
        table.to_parquet(path, index=False)


def _table_commands(table: Path, out: Path) -> st.SearchStrategy[list[object]]:
    return st.sampled_from(
        [
            ["evaluate", "-H", table, "-w", "r0"],
            ["rerank", "-H", table, "-w", "r0", "-o", out / "ranked.csv"],
            ["train", "-H", table, "--loss", "r2", "-o", out / "weights"],
        ]
    )


@FUZZ
@given(damage=cell_damage(), suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]), data=st.data())
def test_bad_cell_names_file_row_and_column(damage, suffix: str, data: st.DataObject) -> None:
    table, row, column = damage
    with workdir() as tmp:
        path = tmp / f"table{suffix}"
        _write_table(table, path)
        out = tmp / "out"
        out.mkdir()
        args = data.draw(_table_commands(path, out))
        line = assert_one_error_line(invoke(*args), str(path))
        assert f"row {row + 1}" in line and repr(column) in line, line
        assert list(out.iterdir()) == []


def _structural(tmp: Path, kind: str, text: str) -> Path:
    lines = GOOD_TABLE.read_text().splitlines()[:13]
    if kind == "duplicate-column":
        path = tmp / "t.csv"
        column = text if text not in lines[0].split(",") else "domain"
        body = [f"{lines[0]},{column},{column}", *(f"{r},0,0" for r in lines[1:])]
        path.write_text("\n".join(body) + "\n")
        if column == "domain" or "," in column or '"' in column or "\n" in column:
            path.write_text("\n".join([lines[0] + ",domain", *(r + ",x" for r in lines[1:])]))
    elif kind == "missing-column":
        path = tmp / "t.csv"
        frame = GOOD.drop(columns=[SCORES[len(text) % 3]])
        _write_table(frame, path)
    elif kind == "deep-json":
        path = tmp / "t.jsonl"
        path.write_text("[" * 50_000 + "]" * 50_000 + "\n")
    elif kind == "bad-utf8":
        path = tmp / "t.csv"
        path.write_bytes(GOOD_TABLE.read_bytes()[:300] + b"\xff\xfe" + text.encode()[:20])
    elif kind == "truncated-parquet":
        path = tmp / "t.parquet"
        GOOD.to_parquet(path)
        data = path.read_bytes()
        path.write_bytes(data[: max(1, len(text) * 37 % len(data))])
    elif kind == "empty":
        path = tmp / "t.jsonl"
        path.write_text("\n" * (len(text) % 3))
    elif kind == "special-file":
        path = tmp / "t.csv"
        path.symlink_to("/dev/zero")
    else:  # json-not-object
        path = tmp / "t.jsonl"
        path.write_text(json.dumps(text) + "\n")
    return path


@FUZZ
@given(
    kind=st.sampled_from(
        [
            "duplicate-column",
            "missing-column",
            "deep-json",
            "bad-utf8",
            "truncated-parquet",
            "empty",
            "special-file",
            "json-not-object",
        ]
    ),
    text=hostile_text,
    data=st.data(),
)
def test_malformed_table_names_the_file(kind: str, text: str, data: st.DataObject) -> None:
    with workdir() as tmp:
        path = _structural(tmp, kind, text)
        out = tmp / "out"
        out.mkdir()
        args = data.draw(_table_commands(path, out))
        assert_one_error_line(invoke(*args), str(path))
        assert list(out.iterdir()) == []


# -- weights documents and pointers -------------------------------------------------------------

bad_number = st.one_of(
    st.floats(min_value=MAX_WEIGHT, exclude_min=True),
    st.floats(max_value=-MAX_WEIGHT, exclude_max=True),
    st.sampled_from([math.nan, math.inf, -math.inf, None, True, [], {}]),
    hostile_text,
)


@st.composite
def document_damage(draw: st.DrawFn) -> tuple[str, object]:
    """``(what, how)``: a key to set to a bad value, or a whole-file replacement."""
    kind = draw(
        st.sampled_from(
            ["weight", "bias", "domain", "feature", "loss", "version", "missing", "file"]
        )
    )
    if kind == "weight":
        return "weight", draw(bad_number)
    if kind == "bias":
        return "bias", draw(bad_number)
    if kind == "domain":
        return "domain", draw(hostile_text.filter(lambda s: s != "Music"))
    if kind == "feature":
        return "features", draw(hostile_text)
    if kind == "loss":
        return "loss", draw(hostile_text.filter(lambda s: s not in ("r1", "r2", "r3")))
    if kind == "version":
        return "version", draw(st.one_of(st.integers(max_value=1), st.integers(min_value=3), hostile_text))  # fmt: skip
    if kind == "missing":
        return "missing", draw(st.sampled_from(["weights", "bias", "features", "domain", "loss"]))
    return "file", draw(
        st.one_of(
            st.sampled_from(["", "{", "[]", "null", "1" * 5000, '{"domain": 1, "domain": 2}']),
            st.just("[" * 50_000 + "]" * 50_000),
            hostile_text.map(json.dumps),
        )
    )


def _damage_document(path: Path, damage: tuple[str, object]) -> None:
    what, how = damage
    if what == "file":
        path.write_text(str(how), encoding="utf-8", errors="surrogatepass")
        return
    doc = json.loads(path.read_text())
    if what == "weight":
        doc["weights"][0] = how
    elif what == "features":
        doc["features"][0] = how
    elif what == "missing":
        del doc[str(how)]
    else:
        doc[what] = how
    path.write_text(json.dumps(doc))


REGISTRY_COMMANDS = ["evaluate", "rerank", "list", "show", "rollback"]


def _registry_args(command: str, reg: Path, out: Path) -> list[object]:
    return {
        "evaluate": ["evaluate", "-H", GOOD_TABLE, "-w", reg],
        "rerank": ["rerank", "-H", GOOD_TABLE, "-w", reg, "-o", out / "ranked.parquet"],
        "list": ["weights", "list", reg],
        "show": ["weights", "show", reg, "-d", "Music"],
        "rollback": ["weights", "rollback", reg, "-d", "Music"],
    }[command]


@FUZZ
@given(damage=document_damage(), command=st.sampled_from(REGISTRY_COMMANDS))
def test_bad_weights_document_names_the_file(damage, command: str) -> None:
    with workdir() as tmp:
        reg = make_registry(tmp / "w")
        # rollback reads the version it moves to; the other commands read the current one
        path = reg / "Music" / ("v0001.json" if command == "rollback" else "v0002.json")
        _damage_document(path, damage)
        before = snapshot(reg)
        out = tmp / "out"
        out.mkdir()
        assert_one_error_line(invoke(*_registry_args(command, reg, out)), str(path))
        assert snapshot(reg) == before and list(out.iterdir()) == []


def _valid_pointer(data: bytes) -> bool:
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False
    return len(data) <= 64 and text.isascii() and text.isdigit() and int(text) in (1, 2)


bad_pointer = st.one_of(
    st.text(st.characters(categories=("Nd",)), min_size=1, max_size=4).map(str.encode),
    hostile_text.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.integers(min_value=3).map(lambda n: str(n).encode()),
    st.sampled_from([b"0", b"-1", b"+2", b"2" + b" " * 80, b"\xff", b"1\x002", b""]),
).filter(lambda b: not _valid_pointer(b))


@FUZZ
@given(pointer=bad_pointer, command=st.sampled_from(REGISTRY_COMMANDS), special=st.booleans())
def test_bad_current_pointer_names_the_file(pointer: bytes, command: str, special: bool) -> None:
    with workdir() as tmp:
        reg = make_registry(tmp / "w")
        current = reg / "Music" / "CURRENT"
        current.unlink()
        if special and command != "rollback":
            current.symlink_to("/dev/zero")
        else:
            current.write_bytes(pointer)
        before = snapshot(reg)
        out = tmp / "out"
        out.mkdir()
        assert_one_error_line(invoke(*_registry_args(command, reg, out)), str(current))
        assert snapshot(reg) == before and list(out.iterdir()) == []


# -- NLU model directories ----------------------------------------------------------------------

bad_manifest = st.one_of(
    st.sampled_from(["", "{", "[]", "null", "[" * 50_000 + "]" * 50_000]),
    hostile_text.map(json.dumps),
    st.builds(
        lambda fmt, version: json.dumps({"format": fmt, "format_version": version, "domains": []}),
        st.one_of(hostile_text, st.just("reranker-nlu-models")),
        st.one_of(st.integers(), hostile_text),
    ),
    st.builds(
        lambda name, path: json.dumps(
            {
                "format": "reranker-nlu-models",
                "format_version": 1,
                "domains": [{"name": name, "path": path}],
            }
        ),
        st.one_of(hostile_text, st.integers()),
        st.one_of(st.sampled_from(["..", ".", "/etc", "../models", "", "nowhere"]), hostile_text),
    ).filter(lambda m: '"path": "Music"' not in m),
)


def _model_dir(tmp: Path) -> Path:
    """A model directory whose domain folders link to the shipped ones."""
    models = tmp / "models"
    models.mkdir()
    for child in MODELS.iterdir():
        if child.is_dir():
            (models / child.name).symlink_to(child)
    return models


@FUZZ
@given(
    manifest=bad_manifest,
    predict=st.booleans(),
    archive=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_bad_model_directory_names_the_file(manifest: str, predict: bool, archive) -> None:
    with workdir() as tmp:
        models = _model_dir(tmp)
        if archive is None:
            (models / "manifest.json").write_text(manifest, errors="surrogatepass")
        else:  # a valid manifest, a corrupt classifier archive
            (models / "manifest.json").write_bytes((MODELS / "manifest.json").read_bytes())
            (models / "Music").unlink()
            (models / "Music").mkdir()
            for f in (MODELS / "Music").iterdir():
                (models / "Music" / f.name).symlink_to(f)
            (models / "Music" / "domain_classifier.npz").unlink()
            (models / "Music" / "domain_classifier.npz").write_bytes(archive)
        corpus = tmp / "c.jsonl"
        corpus.write_text('{"id": "a", "text": "play mary poppins"}\n')
        out = tmp / "hyps.csv"
        if predict:
            args: list[object] = ["nlu", "predict", "-m", models, "-c", corpus, "-o", out]
        else:
            args = ["probe", "play x", "-m", models, "-w", "r0", "--device", "echo_dot"]
        assert_one_error_line(invoke(*args), str(models))
        assert not out.exists()


# -- parameters ---------------------------------------------------------------------------------


def _outside(low: float | None, high: float | None, *, integer: bool) -> st.SearchStrategy[str]:
    options = []
    if integer:
        if low is not None:
            options.append(st.integers(max_value=int(low) - 1))
        if high is not None:
            options.append(st.integers(min_value=int(high) + 1))
        options.append(st.sampled_from(["", "1.5", "ten", "0x10", "٣"]))
    else:
        if low is not None:
            options.append(st.floats(max_value=low, exclude_max=True))
        if high is not None:
            options.append(st.floats(min_value=high, exclude_min=True))
        options.append(st.sampled_from(["nan", "", "one", "1e999999"]))
    return st.one_of(options).map(str)


def _parameter_cases(tmp: Path) -> list[tuple[list[object], str, st.SearchStrategy[str]]]:
    """(command line before the option, option, bad values)."""
    table, corpus, out = GOOD_TABLE, tmp / "c.jsonl", tmp / "out"
    evaluate = ["evaluate", "-H", table, "-w", "r0"]
    train = ["train", "-H", table, "--loss", "r2", "-o", out]
    predict = ["nlu", "predict", "-m", MODELS, "-c", corpus, "-o", out / "h.csv"]
    probe = ["probe", "play x", "-m", MODELS, "-w", "r0", "--device", "echo_dot"]
    words = hostile_text.filter(lambda s: s.strip() and not s.startswith("-"))
    return [
        (evaluate, "--bins", _outside(1, MAX_BINS, integer=True)),
        (evaluate, "--bootstrap", _outside(0, 10_000, integer=True)),
        (evaluate, "--seed", _outside(0, None, integer=True)),
        (evaluate, "--confidence", _outside(0.5, 0.999, integer=False)),
        (evaluate, "--strategy", words.filter(lambda s: s not in ("uniform", "quantile"))),
        (evaluate, "--population", words.filter(lambda s: s not in ("all", "top1"))),
        (train, "--temperature", _outside(1e-3, 1e3, integer=False)),
        (train, "--alpha", _outside(0, 1e6, integer=False)),
        (train, "--l2", _outside(0, 1e6, integer=False)),
        (train, "--jobs", _outside(1, 256, integer=True)),
        (train, "--max-iter", _outside(1, None, integer=True)),
        (train, "--loss", words.filter(lambda s: s not in ("r1", "r2", "r3"))),
        (train, "--scope", words.filter(lambda s: s not in ("domain", "utterance"))),
        (train, "--engine", words.filter(lambda s: s not in ("local", "serial", "dask"))),
        (predict, "--nbest", _outside(1, None, integer=True)),
        (predict, "--domains", _outside(1, None, integer=True)),
        (predict, "--intents", _outside(1, None, integer=True)),
        (probe, "--nbest", _outside(1, None, integer=True)),
        (["dashboard"], "--port", _outside(1, 65535, integer=True)),
        (["nlu", "train", "-c", corpus, "-o", out], "--jobs", _outside(1, None, integer=True)),
        (["demo", "-o", out], "--jobs", _outside(1, None, integer=True)),
        (["demo", "-o", out], "--dataset", words.filter(lambda s: s not in ("media", "real"))),
    ]


@FUZZ
@given(case=st.integers(0, 21), data=st.data())
def test_out_of_range_parameters_are_one_line(case: int, data: st.DataObject) -> None:
    with workdir() as tmp:
        (tmp / "c.jsonl").write_text('{"id": "a", "text": "play x"}\n')
        prefix, option, values = _parameter_cases(tmp)[case]
        value = data.draw(values)
        assert_one_error_line(invoke(*prefix, f"{option}={value}"), option.lstrip("-"))
        assert not (tmp / "out").exists()


def test_parameter_cases_cover_every_index() -> None:
    with workdir() as tmp:
        assert len(_parameter_cases(tmp)) == 22


# -- the console script itself (a few processes, not one per example) ----------------------------


def test_console_script_errors_are_one_line(tmp_path: Path) -> None:
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    for args, fragment in [
        (["evaluate", "-H", str(zero), "-w", "r0"], "zero.csv"),
        (["evaluate", "-H", str(deep), "-w", "r0"], "deep.jsonl"),
        (["evaluate", "-H", str(GOOD_TABLE), "-w", "r0", "--strategy", NASTY[0]], "--strategy"),
        (["weights", "list", str(tmp_path / ("x" * 300))], "x" * 300),
    ]:
        result = subprocess.run(
            [*reranker_cli(), *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("reranker: error: "), result.stderr
        assert fragment in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["zero.csv"])
def test_harness_detects_a_traceback(name: str) -> None:
    """The contract check itself fails on a traceback or a second line (it can fail)."""
    from tests.cli_harness import Outcome

    with pytest.raises(AssertionError):
        assert_one_error_line(Outcome(2, "", f"Traceback (most recent call last):\n{name}\n"))
    with pytest.raises(AssertionError):
        assert_one_error_line(Outcome(2, "", "reranker: error: a\nreranker: error: b\n"))
    with pytest.raises(AssertionError):
        assert_one_error_line(Outcome(0, "", "reranker: error: a\n"))
    assert os.path.basename(name) in assert_one_error_line(
        Outcome(2, "", f"reranker: error: {name}: bad\n"), name
    )
