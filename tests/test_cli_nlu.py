"""``reranker nlu train|predict``, ``reranker demo`` and ``reranker probe`` through the console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reranker.hypotheses import read_hypotheses
from tests.conftest import reranker_cli

REPO = Path(__file__).resolve().parent.parent
MEDIA = REPO / "demo_data" / "media"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*reranker_cli(), *args], capture_output=True, text=True, timeout=300)


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("reranker: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from reranker.nlu import read_corpus, write_corpus

    root = tmp_path_factory.mktemp("cli")
    train = read_corpus(MEDIA / "corpus" / "train.jsonl")
    train = train[train["domain"].isin(["Weather", "General", "Music"])].head(240)
    test = (
        read_corpus(MEDIA / "corpus" / "test.jsonl")
        .head(30)
        .drop(columns="device")
        .assign(device="")
    )
    return write_corpus(train, root / "train.jsonl"), write_corpus(test, root / "test.jsonl")


def test_nlu_train_and_predict(corpus_files: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = corpus_files
    models = tmp_path / "models"
    result = run("nlu", "train", "--corpus", str(train), "--out", str(models))
    assert result.returncode == 0, result.stderr
    assert "trained 3 domains" in result.stderr
    out = tmp_path / "hyps.parquet"
    result = run(
        "nlu", "predict", "--models", str(models), "--corpus", str(test), "--out", str(out),
        "--nbest", "3", "--device", "fire_tv",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = read_hypotheses(out)
    assert table.groupby("utterance_id").size().max() <= 3
    assert (table["device"] == "fire_tv").all()
    assert {"ref_domain", "ref_intent", "ref_slots"} <= set(table.columns)
    evaluated = run("evaluate", "-H", str(out), "-w", "r0", "--json")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["n_utterances"] == 30
    # Texts without labels: hypotheses without references, the corpus's own devices kept.
    texts = tmp_path / "texts.jsonl"
    texts.write_text(
        '{"id": "q1", "text": "play moana", "device": "echo_dot"}\n{"id": "q2", "text": "hello"}\n'
    )
    result = run(
        "nlu", "predict", "-m", str(models), "-c", str(texts), "-o", str(tmp_path / "q.csv")
    )
    assert result.returncode == 0, result.stderr
    unlabelled = read_hypotheses(tmp_path / "q.csv")
    assert "ref_domain" not in unlabelled.columns
    assert unlabelled.groupby("utterance_id")["device"].first().to_dict() == {
        "q1": "echo_dot",
        "q2": "unknown",
    }


def test_nlu_cross_fit_predicts_every_training_utterance(
    corpus_files: tuple[Path, Path], tmp_path: Path
) -> None:
    from reranker.nlu import read_corpus

    train, _ = corpus_files
    out = tmp_path / "oof.parquet"
    result = run("nlu", "cross-fit", "-c", str(train), "-o", str(out), "--folds", "3")
    assert result.returncode == 0, result.stderr
    assert (
        "fold 3/3" in result.stderr and "cross-fitted hypotheses of 240 utterances" in result.stderr
    )
    table = read_hypotheses(out)
    corpus = read_corpus(train)
    assert table["utterance_id"].drop_duplicates().tolist() == corpus["id"].tolist()
    assert {"ref_domain", "ref_intent", "ref_slots"} <= set(table.columns)
    # The corpus's own devices are kept.
    devices = table.groupby("utterance_id", sort=False)["device"].first()
    assert devices.tolist() == corpus["device"].tolist()


def test_nlu_train_with_domain_map_and_settings(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    rows = [
        {"id": f"a{k}", "text": t, "domain": "play", "intent": i, "annotation": t}
        for k, (t, i) in enumerate(
            [("play some jazz", "play_music"), ("play a game", "play_game")] * 4
        )
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"intents": {"play_music": "Music", "play_game": "Games"}}))
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"*": {"profile": "cautious", "min_df": 1}}))
    result = run(
        "nlu", "train", "-c", str(corpus), "-o", str(tmp_path / "m"), "--domain-map", str(mapping),
        "--settings", str(settings),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert [d["name"] for d in manifest["domains"]] == ["Games", "Music"]
    doc = json.loads((tmp_path / "m" / "Music" / "settings.json").read_text())
    assert doc["settings"]["profile"] == "cautious"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ["nlu", "train", "--corpus", "{tmp}/c.txt", "--out", "{tmp}/m"],
            "unknown corpus format '.txt'",
        ),
        (["nlu", "train", "--corpus", "{tmp}/empty.jsonl", "--out", "{tmp}/m"], "corpus is empty"),
        (
            ["nlu", "train", "--corpus", "{tmp}/bad.jsonl", "--out", "{tmp}/m"],
            "line 1, column 'annotation': brackets do not match the text",
        ),
        (["nlu", "train", "--corpus", "{tmp}/one.jsonl", "--out", "{tmp}/m"], "single domain"),
        (
            [
                "nlu",
                "predict",
                "--models",
                "{tmp}",
                "--corpus",
                "{tmp}/one.jsonl",
                "--out",
                "{tmp}/h.csv",
            ],
            "not an NLU model directory",
        ),
        (
            [
                "nlu",
                "predict",
                "--models",
                "{tmp}/old",
                "--corpus",
                "{tmp}/one.jsonl",
                "--out",
                "{tmp}/h.csv",
            ],
            "model format version 0",
        ),
        (
            [
                "nlu",
                "predict",
                "--models",
                "{tmp}/old",
                "--corpus",
                "{tmp}/one.jsonl",
                "--out",
                "{tmp}/h.xlsx",
            ],
            "unknown output extension",
        ),
        (
            [
                "probe",
                "play moana",
                "--models",
                "{tmp}/old",
                "--weights",
                "r0",
                "--device",
                "fire_tv",
            ],
            "model format version 0",
        ),
        (
            ["demo", "--out", "{tmp}/d", "--dataset", "media", "--sources", "{tmp}"],
            "missing snips.jsonl",
        ),
        (
            ["nlu", "cross-fit", "-c", "{tmp}/one.jsonl", "-o", "{tmp}/h.parquet", "--folds", "2"],
            "over 2 folds needs at least 2 utterances, got 1",
        ),
        (
            ["nlu", "cross-fit", "-c", "{tmp}/one.jsonl", "-o", "{tmp}/h.txt"],
            "unknown output extension",
        ),
        (
            [
                "nlu",
                "cross-fit",
                "-c",
                "{tmp}/one.jsonl",
                "-o",
                "{tmp}/h.csv",
                "--settings",
                "{tmp}/stray.json",
            ],
            "stray.json: settings name domain 'Nowhere', which has no utterance",
        ),
        (
            [
                "nlu",
                "train",
                "-c",
                "{tmp}/one.jsonl",
                "-o",
                "{tmp}/m2",
                "--settings",
                "{tmp}/profile.json",
            ],
            "unknown settings profile 'nosuch'",
        ),
    ],
)
def test_bad_input_gives_one_line_errors(
    tmp_path: Path,
    args: list[str],
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = {"id": "u1", "text": "weather in paris", "domain": "Weather", "intent": "W.Get"}
    (tmp_path / "c.txt").write_text(json.dumps(good))
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.jsonl").write_text(
        json.dumps({**good, "annotation": "weather in [city : rome]"})
    )
    (tmp_path / "one.jsonl").write_text(json.dumps(good))
    (tmp_path / "stray.json").write_text(json.dumps({"Nowhere": {"profile": "standard"}}))
    (tmp_path / "profile.json").write_text(json.dumps({"Weather": {"profile": "nosuch"}}))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text(
        json.dumps({"format": "reranker-nlu-models", "format_version": 0, "domains": []})
    )
    # In process (the console script's entry point), to keep the test fast.
    from reranker.cli import main

    monkeypatch.setattr("sys.argv", ["reranker", *[a.format(tmp=tmp_path) for a in args]])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    line = _error_line(
        subprocess.CompletedProcess(args, int(info.value.code or 0), captured.out, captured.err)
    )
    assert match in line


def test_probe_json_on_the_shipped_demo() -> None:
    result = run(
        "probe", "play mary poppins", "--models", str(MEDIA / "models"), "--weights",
        str(MEDIA / "weights" / "r2"), "--device", "fire_tv", "--device", "echo_dot", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert list(doc) == ["fire_tv", "echo_dot"]
    assert set(doc["fire_tv"][0]) == {"domain", "intent", "slots", "score"}
    assert doc["fire_tv"][0]["domain"] == "Video" and doc["echo_dot"][0]["domain"] != "Video"
    table = run(
        "probe",
        "play mary poppins",
        "-m",
        str(MEDIA / "models"),
        "-w",
        "r0",
        "--device",
        "echo_show",
    )
    assert table.returncode == 0 and "echo_show" in table.stdout
    assert "[video_name : mary poppins]" in table.stdout  # slot brackets are not taken as markup


def test_help_lists_the_commands() -> None:
    from typer.testing import CliRunner

    from reranker.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    for command in ("nlu", "demo", "probe"):
        assert command in result.output
    for sub in (["nlu", "train"], ["nlu", "predict"], ["nlu", "import"], ["demo"], ["probe"]):
        assert runner.invoke(app, [*sub, "--help"]).exit_code == 0, sub
