from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reranker.errors import DataError
from reranker.hypotheses import read_hypotheses, validate_hypotheses, write_table
from tests.bad_inputs import BAD_INPUTS, GOOD_ROWS, HEADER, csv
from tests.conftest import make_table


@pytest.mark.parametrize(("case", "build", "fragments"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_read_hypotheses_rejects_bad_input(
    tmp_path: Path, case: str, build, fragments: list[str]
) -> None:
    path = build(tmp_path)
    with pytest.raises(DataError) as info:
        read_hypotheses(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (case, message)


def test_read_hypotheses_csv_types_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(csv(GOOD_ROWS))
    table = read_hypotheses(path)
    assert len(table) == 3
    assert table["slots"].tolist() == ["play [song : x]", "play [title : x]", ""]
    assert table["ref_slots"].iloc[2] == ""
    assert table["domain_score"].dtype == np.float64
    assert table["utterance_id"].tolist() == ["u1", "u1", "u2"]


def test_read_hypotheses_keeps_leading_zero_ids_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "utterance_id,domain,intent,slots,domain_score,intent_score,slot_score,extra\n"
        "007,M,I,,1,0.5,0,keep me\n"
    )
    table = read_hypotheses(path)
    assert table.loc[0, "utterance_id"] == "007"
    assert table.loc[0, "extra"] == "keep me"
    assert table.loc[0, "device"] == "unknown"
    assert table.loc[0, "text"] == ""
    assert "ref_domain" not in table.columns


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_formats_round_trip_identically(tmp_path: Path, suffix: str) -> None:
    original = validate_hypotheses(make_table(40, seed=3))
    path = write_table(original, tmp_path / f"t{suffix}")
    back = read_hypotheses(path)
    pd.testing.assert_frame_equal(back, original, check_dtype=False)


def test_jsonl_numbers_as_ids_and_null_slots(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    rows = [
        {
            "utterance_id": 12,
            "domain": "M",
            "intent": "I",
            "slots": None,
            "domain_score": 1,
            "intent_score": 0.5,
            "slot_score": 0.25,
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    table = read_hypotheses(path)
    assert table.loc[0, "utterance_id"] == "12"
    assert table.loc[0, "slots"] == ""


def test_jsonl_score_as_string_is_not_a_number(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        json.dumps(
            {
                "utterance_id": "u",
                "domain": "M",
                "intent": "I",
                "slots": "",
                "domain_score": "high",
                "intent_score": 1,
                "slot_score": 1,
            }
        )
        + "\n"
    )
    with pytest.raises(DataError, match=r"row 1 \(line 1\), column 'domain_score': not a number"):
        read_hypotheses(path)


def test_parquet_row_numbers_without_lines(tmp_path: Path) -> None:
    frame = make_table(5)
    frame.loc[3, "slot_score"] = 2.0
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"t.parquet: row 4, column 'slot_score'"):
        read_hypotheses(path)


def test_parquet_non_numeric_score_column(tmp_path: Path) -> None:
    frame = make_table(3)
    frame["domain_score"] = frame["domain_score"].astype(str)
    frame.loc[1, "domain_score"] = "n/a"
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"row 2, column 'domain_score': not a number"):
        read_hypotheses(path)


def test_csv_with_utf8_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv(GOOD_ROWS).replace(b"\n", b"\r\n"))
    assert len(read_hypotheses(path)) == 3


def test_score_bounds_are_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(csv(["u1,x,d,M,I,,0,1,0.0,M,I,"]))
    assert read_hypotheses(path)["intent_score"].tolist() == [1.0]


def test_write_table_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.csv"
    target.write_text("previous\n")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(DataError, match=r"out\.csv: cannot write \(disk full\)"):
        write_table(make_table(3), target)
    assert target.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_header_only_jsonl_equivalent_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(HEADER + "\n\n")
    with pytest.raises(DataError, match="header but no rows"):
        read_hypotheses(path)


def test_write_table_gives_normal_permissions(tmp_path: Path) -> None:
    import os
    import stat

    path = write_table(make_table(3), tmp_path / "out.parquet")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
