"""``reranker train`` and ``reranker weights ...`` through the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reranker.hypotheses import write_table
from reranker.synthetic import synthetic_hypotheses

RERANKER = Path(sys.executable).parent / "reranker"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RERANKER), *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def hyps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "hyps.csv"
    write_table(synthetic_hypotheses(300, seed=21), path)
    return path


def test_train_list_show_rollback_evaluate(hyps: Path, tmp_path: Path) -> None:
    out = tmp_path / "weights"
    first = run("train", "--hypotheses", hyps, "--loss", "r2", "--out", out, "--jobs", "1")
    assert first.returncode == 0, first.stderr
    assert "Music: published v1" in first.stderr
    second = run(
        "train", "-H", hyps, "--loss", "r3", "--out", out, "--domain", "Music", "--scope", "utterance",
        "--alpha", "0.5", "--l2", "0.01", "--temperature", "0.5", "--engine", "serial",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "Music: published v2" in second.stderr and "Books" not in second.stderr.split("\n")[0]

    listed = run("weights", "list", out, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["domain"]: r for r in json.loads(listed.stdout)}
    assert rows["Music"]["current"] == 2 and rows["Music"]["versions"] == [1, 2]
    assert rows["Books"]["current"] == 1 and rows["Books"]["loss"] == "r2"

    shown = run("weights", "show", out, "--domain", "Music")
    doc = json.loads(shown.stdout)
    assert doc["version"] == 2 and doc["loss"] == "r3"
    assert doc["options"]["scope"] == "utterance" and doc["options"]["alpha"] == 0.5
    assert (
        json.loads(run("weights", "show", out, "--domain", "Music", "--version", "1").stdout)[
            "loss"
        ]
        == "r2"
    )

    evaluated = run("evaluate", "-H", hyps, "-w", out, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    before = json.loads(evaluated.stdout)
    assert before["weights"]["Music"] == "r3 v2"

    rolled = run("weights", "rollback", out, "--domain", "Music")
    assert rolled.returncode == 0, rolled.stderr
    assert "Music: v2 -> v1" in rolled.stderr
    assert (out / "Music" / "CURRENT").read_text() == "1\n"

    forward = run("weights", "rollforward", out, "--domain", "Music")
    assert forward.returncode == 0, forward.stderr
    assert "Music: v1 -> v2" in forward.stderr
    assert (out / "Music" / "CURRENT").read_text() == "2\n"
    latest = run("weights", "rollforward", out, "--domain", "Music")
    assert latest.returncode != 0 and "Traceback" not in latest.stderr
    assert "at its latest version v2; nothing to roll forward to" in latest.stderr
    assert (out / "Music" / "CURRENT").read_text() == "2\n"
    run("weights", "rollback", out, "--domain", "Music")

    human = run("weights", "list", out)
    assert human.returncode == 0 and "Music" in human.stdout and "v1, v2" in human.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "r9"], "--loss must be one of r1, r2, r3"),
        (["--loss", "r2", "--domain", "Cooking"], "no hypotheses of domain(s) 'Cooking'"),
        (["--loss", "r2", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler applies only"),
    ],
)
def test_train_bad_input_is_one_line_and_writes_nothing(
    hyps: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "weights"
    result = run("train", "-H", hyps, "--out", out, *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reranker: error:") and message in lines[0]
    assert not out.exists()


def test_train_missing_file_and_weights_errors(tmp_path: Path) -> None:
    missing = run("train", "-H", tmp_path / "none.csv", "--loss", "r1", "--out", tmp_path / "w")
    assert missing.returncode != 0
    assert missing.stderr.strip() == f"reranker: error: {tmp_path / 'none.csv'}: no such file"
    nothing = run("weights", "show", tmp_path, "--domain", "Music")
    assert nothing.returncode != 0
    assert nothing.stderr.strip().startswith("reranker: error:")
    assert "no weights for domain 'Music'" in nothing.stderr


def test_train_reports_non_convergence_as_one_warning_line(hyps: Path, tmp_path: Path) -> None:
    result = run(
        "train", "-H", hyps, "--loss", "r2", "--out", tmp_path / "w", "--domain", "Music",
        "--max-iter", "1", "--engine", "serial",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Music: published v1 (1 iterations, NOT converged" in result.stderr
    warning_lines = [line for line in result.stderr.splitlines() if "did not converge" in line]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("warning: Music:")


def test_a_domain_trained_on_a_handful_of_utterances_is_flagged(hyps: Path, tmp_path: Path) -> None:
    """Published, since a team may want it, but with a warning naming the domain and its count."""
    import pandas as pd

    table = pd.read_csv(hyps, keep_default_na=False)
    music = table["domain"] == "Music"
    few = set(table.loc[music, "utterance_id"].drop_duplicates().head(3))
    thin = table[~music | table["utterance_id"].isin(few)]
    path = tmp_path / "thin.csv"
    write_table(thin.reset_index(drop=True), path)
    result = run("train", "-H", path, "--loss", "r2", "--out", tmp_path / "w", "--engine", "serial")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "too little data" in line]
    assert warnings == [
        "warning: Music: trained on 3 utterances (fewer than 20): its weights rest on too little "
        "data to be trusted; compare it with R0"
    ]


def test_device_penalty_from_the_command_line(hyps: Path, tmp_path: Path) -> None:
    out = tmp_path / "weights"
    trained = run(
        "train", "-H", hyps, "--loss", "r2", "--out", out, "--domain", "Music",
        "--engine", "serial", "--device-l2", "auto",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    doc = json.loads(run("weights", "show", out, "--domain", "Music").stdout)
    search = doc["options"]["device_l2_search"]
    assert doc["options"]["device_l2"] in search["grid"] and search["rule"]

    bad = run("train", "-H", hyps, "--loss", "r2", "--out", tmp_path / "w2", "--device-l2", "lots")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--device-l2 must be 'off', a number or 'auto', got 'lots'" in bad.stderr
    assert not (tmp_path / "w2").exists()
