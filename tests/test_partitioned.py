"""Partitioned Parquet datasets: discovery, layouts, validation across parts, atomic output."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from reranker.dataset_output import MARKER, DatasetWriter, layout_parts
from reranker.errors import DataError
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.partitioned import is_dataset_path, open_dataset, read_dataset
from tests.conftest import make_table


def write_layout(frame: pd.DataFrame, out: Path, layout: str, parts: int = 3) -> Path:
    with DatasetWriter(out) as writer:
        for relative, piece in layout_parts(frame, layout=layout, parts=parts):
            writer.write(relative, piece)
    return out


def in_dataset_order(frame: pd.DataFrame, out: Path) -> pd.DataFrame:
    """The rows of ``frame`` in the order a dataset written from it is read back."""
    return read_dataset(out)


@pytest.mark.parametrize("layout", ["flat", "hive", "domain"])
def test_read_dataset_every_layout_holds_every_row(tmp_path: Path, layout: str) -> None:
    frame = make_table(60, seed=1)
    out = write_layout(frame, tmp_path / "ds", layout)
    table = read_hypotheses(out)
    expected = validate_hypotheses(frame)
    key = ["utterance_id", "domain", "intent", "slots"]
    got = table.sort_values(key).reset_index(drop=True)[expected.columns]
    want = expected.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_flat_layout_keeps_row_order_and_straddles(tmp_path: Path) -> None:
    frame = make_table(40, seed=2)
    out = write_layout(frame, tmp_path / "ds", "flat", parts=7)
    pd.testing.assert_frame_equal(read_dataset(out), validate_hypotheses(frame))
    ids = [set(pd.read_parquet(p)["utterance_id"]) for p in sorted(out.glob("*.parquet"))]
    assert any(a & b for a, b in itertools.pairwise(ids))  # some utterance straddles


def test_glob_and_natural_part_order(tmp_path: Path) -> None:
    frame = make_table(30, seed=3)
    root = tmp_path / "g"
    root.mkdir()
    pieces = [frame.iloc[:10], frame.iloc[10:20], frame.iloc[20:]]
    for name, piece in zip(["p-2.parquet", "p-10.parquet", "p-1.parquet"], pieces, strict=True):
        piece.to_parquet(root / name, index=False)
    (root / "_SUCCESS").write_text("")
    (root / "notes.txt").write_text("x")
    ds = open_dataset(str(root / "p-*.parquet"))
    assert [p.relative for p in ds.parts] == ["p-1.parquet", "p-2.parquet", "p-10.parquet"]
    table = read_hypotheses(str(root / "p-*.parquet"))
    assert (
        table["utterance_id"].tolist()
        == pd.concat([pieces[2], pieces[0], pieces[1]])["utterance_id"].tolist()
    )
    assert is_dataset_path(root) and is_dataset_path(str(root / "*.parquet"))
    assert not is_dataset_path(root / "p-1.parquet")


def test_hive_partition_value_must_agree_with_the_column(tmp_path: Path) -> None:
    frame = make_table(10, seed=4)
    (tmp_path / "domain=Music").mkdir()
    frame.to_parquet(tmp_path / "domain=Music" / "a.parquet", index=False)
    bad = frame["domain"].tolist().index(next(d for d in frame["domain"] if d != "Music"))
    with pytest.raises(DataError, match=rf"a\.parquet: row {bad + 1}, column 'domain': .*Music"):
        read_dataset(tmp_path)


def test_malformed_part_names_its_file_and_row(tmp_path: Path) -> None:
    frame = make_table(30, seed=5)
    out = write_layout(frame, tmp_path / "ds", "flat", parts=3)
    part = out / "part-00001.parquet"
    broken = pd.read_parquet(part)
    broken.loc[4, "intent_score"] = 1.5
    broken.to_parquet(part, index=False)
    with pytest.raises(DataError, match=r"part-00001\.parquet: row 5, column 'intent_score'"):
        read_dataset(out)


def test_duplicate_across_parts_names_both_files(tmp_path: Path) -> None:
    frame = make_table(20, seed=6)
    root = tmp_path / "d"
    root.mkdir()
    frame.to_parquet(root / "a.parquet", index=False)
    frame.iloc[[3]].to_parquet(root / "b.parquet", index=False)
    with pytest.raises(
        DataError,
        match=r"b\.parquet: row 1, column 'slots': duplicated .* first at row 4 of .*a\.parquet",
    ):
        read_dataset(root)


def test_references_must_agree_across_parts(tmp_path: Path) -> None:
    frame = make_table(20, seed=7)
    root = tmp_path / "d"
    root.mkdir()
    first = frame.iloc[[0]].copy()
    other = first.copy()
    other["domain"], other["intent"], other["ref_intent"] = "Weather", "Weather.Get", "Other.Ref"
    first.to_parquet(root / "a.parquet", index=False)
    other.to_parquet(root / "b.parquet", index=False)
    with pytest.raises(DataError, match=r"b\.parquet: row 1, column 'ref_intent': reference"):
        read_dataset(root)


def test_no_parquet_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match="no Parquet files"):
        read_hypotheses(tmp_path)


def test_writer_replaces_only_its_own_output(tmp_path: Path) -> None:
    frame = make_table(10, seed=8)
    out = write_layout(frame, tmp_path / "out", "flat", parts=2)
    assert (out / MARKER).is_file()
    write_layout(frame.iloc[:5], out, "flat", parts=1)  # replaces its own dataset
    assert sorted(p.name for p in out.glob("*.parquet")) == ["part-00000.parquet"]
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(DataError, match="not a dataset written by reranker"):
        DatasetWriter(foreign)
    assert (foreign / "keep.txt").read_text() == "precious"


def test_writer_failure_leaves_the_old_output(tmp_path: Path) -> None:
    frame = make_table(10, seed=9)
    out = write_layout(frame, tmp_path / "out", "flat", parts=2)
    before = read_dataset(out)
    with pytest.raises(RuntimeError), DatasetWriter(out) as writer:
        writer.write("part-00000.parquet", frame.iloc[:3])
        raise RuntimeError("crash in the middle")
    pd.testing.assert_frame_equal(read_dataset(out), before)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
