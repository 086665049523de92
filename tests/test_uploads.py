"""Per-session storage quota, upload names and server-path confinement (reranker.uploads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reranker.errors import DataError
from reranker.uploads import (
    Quota,
    check_quota,
    confine_path,
    safe_upload_name,
    server_paths_allowed,
    usage,
)


def test_usage_counts_files_and_bytes(tmp_path: Path) -> None:
    assert usage(tmp_path / "missing") == (0, 0)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"12345")
    (tmp_path / "y").write_bytes(b"123")
    assert usage(tmp_path) == (2, 8)


def test_check_quota_refuses_more_bytes_or_files(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"1" * 100)
    quota = Quota(max_bytes=150, max_files=2)
    check_quota(tmp_path, quota, add_files=1, add_bytes=50)
    with pytest.raises(DataError, match="storage quota is reached"):
        check_quota(tmp_path, quota, add_files=1, add_bytes=51)
    with pytest.raises(DataError, match=r"1 files, .* 2 files"):
        check_quota(tmp_path, quota, add_files=2, add_bytes=0)


def test_quota_from_env() -> None:
    assert Quota.from_env({}) == Quota()
    assert Quota.from_env({"RERANKER_QUOTA_MB": "1", "RERANKER_QUOTA_FILES": "3"}) == Quota(
        2**20, 3
    )
    for bad in ({"RERANKER_QUOTA_MB": "lots"}, {"RERANKER_QUOTA_FILES": "-1"}):
        with pytest.raises(DataError, match="RERANKER_QUOTA"):
            Quota.from_env(bad)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hyps.csv", "hyps.csv"),
        ("../../etc/passwd.csv", "passwd.csv"),
        ("C:\\Users\\x\\t.parquet", "t.parquet"),
        ("..", "upload"),
        ("", "upload"),
        (".hidden.jsonl", "hidden.jsonl"),
        ("a\x00b.csv", "a_b.csv"),
        ("![x](http://example.com/i.png).csv", "i.png_.csv"),
    ],
)
def test_safe_upload_name(name: str, expected: str) -> None:
    assert safe_upload_name(name) == expected


def test_safe_upload_name_is_bounded_and_keeps_the_extension() -> None:
    name = safe_upload_name("x" * 500 + ".parquet")
    assert len(name) <= 120 and name.endswith(".parquet")


def test_confine_path_accepts_only_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "w").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    assert confine_path("w", [root]) == (root / "w").resolve()
    assert confine_path(str(root / "w"), [root]) == (root / "w").resolve()
    messages = set()
    for text in [
        str(tmp_path / "outside"),  # exists
        str(tmp_path / "nothing-here"),  # does not exist: the same message
        "../outside",
        "escape",  # a symlink out of the data folder
        "/",
        "",
        "a\x00b",
    ]:
        with pytest.raises(DataError, match="only folders inside the data folder") as info:
            confine_path(text, [root])
        messages.add(str(info.value).split(": ", 1)[1])
    assert len(messages) == 1  # nothing tells whether a folder outside exists
    assert confine_path(str(tmp_path / "outside"), [root], allow_any=True).is_dir()


def test_server_paths_allowed_only_when_the_operator_says_so() -> None:
    assert not server_paths_allowed({})
    assert not server_paths_allowed({"RERANKER_ALLOW_SERVER_PATHS": "0"})
    assert server_paths_allowed({"RERANKER_ALLOW_SERVER_PATHS": "1"})
