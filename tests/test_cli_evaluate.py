"""The rerank and evaluate commands, through the installed console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.bad_inputs import BAD_INPUTS
from tests.conftest import CONFORMANCE, reranker_cli
from tests.test_evaluation import _assert_close


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*reranker_cli(), *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("rerank", "evaluate"):
        assert command in result.stdout
    assert run("evaluate", "--help").returncode == 0


def test_evaluate_json_matches_conformance() -> None:
    result = run(
        "evaluate", "--hypotheses", str(CONFORMANCE / "hypotheses.csv"), "--weights", "r0", "--json"
    )
    assert result.returncode == 0, result.stderr
    _assert_close(
        json.loads((CONFORMANCE / "expected_r0.json").read_text()), json.loads(result.stdout)
    )


def test_evaluate_table_output_and_bootstrap() -> None:
    result = run(
        "evaluate", "-H", str(CONFORMANCE / "hypotheses.csv"), "-w", "R0", "--bootstrap", "50"
    )
    assert result.returncode == 0, result.stderr
    assert "ece" in result.stdout and "top1_semer:" in result.stdout
    # Piped output (80 columns by default) keeps every header and value whole.
    assert "…" not in result.stdout
    for header in ("n_utterances", "n_hypotheses", "top1_semer", "ece_top1"):
        assert header in result.stdout
    domains = {line.split("│")[1].strip() for line in result.stdout.splitlines() if "│" in line}
    assert {"domain=Books", "device=echo_dot"} <= domains


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_rerank_writes_scores_ranks_and_semer(tmp_path: Path, suffix: str) -> None:
    cases = pd.read_csv(CONFORMANCE / "semer_cases.csv", dtype=str, keep_default_na=False)
    source = tmp_path / "cases.csv"
    cases.drop(columns="expected_semer").to_csv(source, index=False)
    out = tmp_path / f"out{suffix}"
    result = run("rerank", "--hypotheses", str(source), "--weights", "r0", "--out", str(out))
    assert result.returncode == 0, result.stderr
    from reranker.hypotheses import read_table

    table, _ = read_table(out)
    assert {"score", "rank", "semer", "correct"} <= set(table.columns)
    assert table["semer"].astype(float).tolist() == pytest.approx(
        cases["expected_semer"].astype(float).tolist()
    )
    assert (table["rank"].astype(int) == 1).all()
    assert table["score"].astype(float).tolist() == pytest.approx([0.9 * 0.8 * 0.7] * len(cases))


def test_rerank_without_references_has_no_semer(tmp_path: Path) -> None:
    frame = pd.read_csv(CONFORMANCE / "hypotheses.csv", dtype=str, keep_default_na=False)
    source = tmp_path / "noref.csv"
    frame.drop(columns=["ref_domain", "ref_intent", "ref_slots"]).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    assert run("rerank", "-H", str(source), "-w", "r0", "-o", str(out)).returncode == 0
    result = pd.read_csv(out)
    assert "semer" not in result.columns
    assert result.groupby("utterance_id")["rank"].min().eq(1).all()
    evaluated = run("evaluate", "-H", str(source), "-w", "r0")
    assert evaluated.returncode != 0
    assert "reference columns" in evaluated.stderr


EVALUATE_CASES = {
    "score-nan",
    "duplicated-hypothesis",
    "invalid-json-line",
    "directory",
    "truncated-parquet",
}
CLI_CASES = [("rerank", *c) for c in BAD_INPUTS] + [
    ("evaluate", *c) for c in BAD_INPUTS if c[0] in EVALUATE_CASES
]


@pytest.mark.parametrize(
    ("command", "case", "build", "fragments"), CLI_CASES, ids=[f"{c[0]}-{c[1]}" for c in CLI_CASES]
)
def test_bad_input_gives_one_line_and_keeps_output(
    tmp_path: Path, command: str, case: str, build, fragments
) -> None:
    path = build(tmp_path)
    out = tmp_path / "out.csv"
    out.write_text("previous result\n")
    args = ["--hypotheses", str(path), "--weights", "r0"]
    if command == "rerank":
        args += ["--out", str(out)]
    else:
        args += ["--json"]
    result = run(command, *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reranker: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (case, lines[0])
    assert result.stdout == ""
    assert out.read_text() == "previous result\n"


@pytest.mark.parametrize(
    ("out_name", "fragment"),
    [("out.xlsx", "unknown output extension"), ("missing/out.csv", "does not exist")],
)
def test_bad_output_path_fails_before_work(tmp_path: Path, out_name: str, fragment: str) -> None:
    result = run(
        "rerank",
        "-H",
        str(CONFORMANCE / "hypotheses.csv"),
        "-w",
        "r0",
        "-o",
        str(tmp_path / out_name),
    )
    assert result.returncode != 0
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_weights_directory_is_one_line(tmp_path: Path) -> None:
    result = run(
        "evaluate", "-H", str(CONFORMANCE / "hypotheses.csv"), "-w", str(tmp_path / "none")
    )
    assert result.returncode != 0
    assert "no such weights directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
