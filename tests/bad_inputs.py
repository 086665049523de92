"""Malformed hypothesis files, one per rule of docs/formats.md#hypothesis-table.

Shared by the library and CLI tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

HEADER = "utterance_id,text,device,domain,intent,slots,domain_score,intent_score,slot_score,ref_domain,ref_intent,ref_slots"
GOOD_ROWS = [
    "u1,play x,echo_dot,Music,Music.Play,play [song : x],0.9,0.8,0.7,Music,Music.Play,play [song : x]",
    "u1,play x,echo_dot,Books,Books.Read,play [title : x],0.5,0.6,0.7,Music,Music.Play,play [song : x]",
    "u2,stop,fire_tv,Video,Video.Stop,,0.4,0.9,1.0,Video,Video.Stop,",
]


def csv(rows: list[str], header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return make


def _replace(row: int, column: int, value: str) -> list[str]:
    rows = list(GOOD_ROWS)
    cells = rows[row].split(",")
    cells[column] = value
    rows[row] = ",".join(cells)
    return rows


def _missing_path(tmp: Path) -> Path:
    return tmp / "nope.csv"


def _directory(tmp: Path) -> Path:
    path = tmp / "dir.csv"
    path.mkdir()
    return path


def _truncated_parquet(tmp: Path) -> Path:

    from tests.conftest import make_table

    path = tmp / "t.parquet"
    make_table(5).to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# (id, builder, fragments the one-line message must contain)
BAD_INPUTS: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    (
        "missing-column",
        _write("a.csv", csv([r.rsplit(",", 10)[0] for r in GOOD_ROWS], header="utterance_id,text")),
        ["a.csv", "missing required column", "domain"],
    ),
    (
        "missing-value",
        _write("a.csv", csv(_replace(1, 3, ""))),
        ["a.csv", "row 2", "line 3", "'domain'", "missing"],
    ),
    (
        "score-above-1",
        _write("a.csv", csv(_replace(2, 7, "1.5"))),
        ["a.csv", "row 3", "'intent_score'", "outside [0, 1]"],
    ),
    (
        "score-negative",
        _write("a.csv", csv(_replace(0, 6, "-0.1"))),
        ["row 1", "'domain_score'", "outside"],
    ),
    ("score-nan", _write("a.csv", csv(_replace(1, 8, "nan"))), ["row 2", "'slot_score'", "NaN"]),
    (
        "score-non-numeric",
        _write("a.csv", csv(_replace(0, 6, "high"))),
        ["row 1", "'domain_score'", "not a number", "high"],
    ),
    ("score-empty", _write("a.csv", csv(_replace(0, 8, ""))), ["row 1", "'slot_score'", "missing"]),
    (
        "duplicated-hypothesis",
        _write("a.csv", csv([*GOOD_ROWS, GOOD_ROWS[1]])),
        ["row 4", "duplicated hypothesis", "first at row 2"],
    ),
    (
        "references-differ",
        _write("a.csv", csv(_replace(1, 10, "Music.Other"))),
        ["row 2", "'ref_intent'", "differs", "'u1'"],
    ),
    (
        "reference-columns-incomplete",
        _write(
            "a.csv", csv([r.rsplit(",", 1)[0] for r in GOOD_ROWS], header=HEADER.rsplit(",", 1)[0])
        ),
        ["come together", "ref_slots"],
    ),
    (
        "malformed-slots",
        _write("a.csv", csv(_replace(0, 5, "play [song : x"))),
        ["row 1", "'slots'", "unbalanced"],
    ),
    ("empty-file", _write("a.csv", b""), ["a.csv", "empty"]),
    ("empty-jsonl", _write("a.jsonl", b"\n\n"), ["a.jsonl", "empty"]),
    ("header-only", _write("a.csv", (HEADER + "\n").encode()), ["a.csv", "header but no rows"]),
    ("truncated-parquet", _truncated_parquet, ["t.parquet", "Parquet"]),
    (
        "not-parquet-bytes",
        _write("a.parquet", csv(GOOD_ROWS)),
        ["a.parquet", "not a readable Parquet"],
    ),
    ("empty-parquet", _write("a.parquet", b""), ["a.parquet", "empty"]),
    (
        "invalid-json-line",
        _write(
            "a.jsonl",
            b'{"utterance_id": "u1", "domain": "M", "intent": "I", "slots": "", '
            b'"domain_score": 1, "intent_score": 1, "slot_score": 1}\n{"utterance_id": \n',
        ),
        ["a.jsonl", "line 2", "invalid JSON"],
    ),
    (
        "undecodable-bytes",
        _write("a.csv", csv(GOOD_ROWS[:1]) + b"u9,caf\xe9,echo_dot,M,I,,1,1,1,M,I,\n"),
        ["a.csv", "line 3", "UTF-8"],
    ),
    ("unknown-extension", _write("a.xlsx", csv(GOOD_ROWS)), ["a.xlsx", "unknown file extension"]),
    ("missing-path", _missing_path, ["nope.csv", "no such file"]),
    ("directory", _directory, ["dir.csv", "directory"]),
    (
        "short-csv-row",
        _write("a.csv", csv([*GOOD_ROWS, "u3,x,echo_dot,Music"])),
        ["a.csv", "row 4 (line 5)", "missing value"],
    ),
    (
        "long-csv-row",
        _write("a.csv", csv([*GOOD_ROWS, GOOD_ROWS[0].replace("u1", "u4") + ",extra"])),
        ["a.csv", "malformed CSV", "line 5"],
    ),
]
