"""The dashboard driven through Streamlit's AppTest: every page, every workflow, by widget key."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from reranker.datasets import discover_datasets
from reranker.hypotheses import read_hypotheses
from reranker.registry import WeightsRegistry
from reranker.training import train_domains
from tests.conftest import CONFORMANCE, REPO

APP = REPO / "dashboard" / "streamlit_app.py"
PAGES = ["data", "weights", "calibration", "utterances", "compare", "probe", "devices"]
TIMEOUT = 120


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small data directory laid out like demo_data/: one dataset with splits and weights."""
    root = tmp_path_factory.mktemp("data")
    demo = root / "demo"
    (demo / "hypotheses").mkdir(parents=True)
    for split in ("dev", "test"):
        shutil.copy(CONFORMANCE / "hypotheses.csv", demo / "hypotheses" / f"{split}.csv")
    (demo / "dataset.json").write_text(
        json.dumps(
            {"name": "Test demo", "description": "Conformance table.", "devices": "simulated"}
        )
    )
    table = read_hypotheses(demo / "hypotheses" / "dev.csv")
    for loss in ("r2", "r3"):
        train_domains(table, loss=loss, out=demo / "weights" / loss, engine="serial")
    return root


@pytest.fixture
def app(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("RERANKER_DATA", str(data_dir))
    monkeypatch.setenv("RERANKER_WORKSPACE", str(tmp_path / "workspace"))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    return at.run()


def _plain(text: str) -> str:
    """The text a reader sees: Markdown escapes (ui.md) removed."""
    return re.sub(r"\\(.)", r"\1", text)


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _goto(at: AppTest, page: str) -> AppTest:
    return at.switch_page(f"app_pages/{page}.py").run()


def _shipped() -> list[str]:
    return [d.key for d in discover_datasets(REPO / "demo_data")]


# ---------------------------------------------------------------------------- every page


def test_every_page_renders_on_the_test_dataset(app: AppTest) -> None:
    _ok(app)
    assert app.selectbox(key="dataset").value == "demo"
    assert app.selectbox(key="split").value == "test"
    for loss in ("r0", "r2"):
        app.radio(key="loss").set_value(loss).run()
        for page in PAGES:
            _goto(app, page)
            _ok(app)
    _goto(app, "calibration")
    assert app.get("plotly_chart")


@pytest.mark.parametrize("dataset", _shipped() or ["(none shipped yet)"])
def test_every_page_renders_on_the_shipped_datasets(
    dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if dataset not in _shipped():
        pytest.skip("demo_data/ holds no dataset yet")
    monkeypatch.setenv("RERANKER_DATA", str(REPO / "demo_data"))
    monkeypatch.setenv("RERANKER_WORKSPACE", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["dataset"] = next(
        d.name for d in discover_datasets(REPO / "demo_data") if d.key == dataset
    )
    at.run()
    _ok(at)
    assert at.selectbox(key="dataset").value == dataset
    losses = ["r0", *(x for x in ("r2",) if "trained" in str(at.radio(key="loss").proto))]
    for loss in losses:
        at.radio(key="loss").set_value(loss).run()
        for page in PAGES:
            _goto(at, page)
            _ok(at)


# ---------------------------------------------------------------------------- Data


def test_upload_a_good_file_selects_it(app: AppTest) -> None:
    data = (CONFORMANCE / "hypotheses.csv").read_bytes()
    app.file_uploader(key="upload").set_value(("mine.csv", data, "text/csv")).run()
    _ok(app)
    assert app.selectbox(key="dataset").value == "upload:mine.csv"
    assert [m.value for m in app.metric][:2] == ["300", "880"]
    assert app.get("plotly_chart")
    _goto(app, "utterances")
    _ok(app)
    assert "300 of 300 utterances" in app.caption[0].value


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "noscore.csv",
            b"utterance_id,domain,intent,slots,domain_score,intent_score\nu1,A,A.x,,0.5,0.5\n",
            "missing required column 'slot_score'",
        ),
        (
            "range.csv",
            b"utterance_id,domain,intent,slots,domain_score,intent_score,slot_score\n"
            b"u1,A,A.x,,0.5,0.5,0.5\nu1,B,B.x,,0.5,1.5,0.5\n",
            "range.csv: row 2 (line 3), column 'intent_score'",
        ),
        ("bytes.jsonl", b'{"utterance_id": "\xff"}\n', "bytes.jsonl: line 1"),
        ("empty.parquet", b"PAR1 not really", "empty.parquet: not a readable Parquet file"),
    ],
)
def test_upload_a_bad_file_shows_the_error_in_place(
    app: AppTest, name: str, content: bytes, expected: str
) -> None:
    app.file_uploader(key="upload").set_value((name, content, "application/octet-stream")).run()
    assert not app.exception
    assert len(app.error) == 1
    message = _plain(app.error[0].value)
    assert expected in message
    assert "/" not in message.split(":")[1]  # the user's file name, not a temp path
    assert app.selectbox(key="dataset").value == "demo"


def test_user_text_reaches_markdown_escaped(app: AppTest) -> None:
    evil = "[click](https://example.com) **x** :red[y]"
    data = (
        "utterance_id,domain,intent,slots,domain_score,intent_score,slot_score,"
        "ref_domain,ref_intent,ref_slots\n"
        f'u1,"{evil}",A.x,,0.5,0.5,0.5,"{evil}",A.x,\n'
    ).encode()
    app.file_uploader(key="upload").set_value(("evil.csv", data, "text/csv")).run()
    _ok(app)
    caption = next(c.value for c in app.caption if c.value.startswith("Domains:"))
    assert evil not in caption and _plain(caption).startswith(f"Domains: {evil}")
    assert "\\[click\\]\\(https\\:" in caption


def test_table_without_references_explains_what_is_missing(app: AppTest) -> None:
    data = b"utterance_id,domain,intent,slots,domain_score,intent_score,slot_score\nu1,A,A.x,,0.5,0.5,0.5\n"
    app.file_uploader(key="upload").set_value(("norefs.csv", data, "text/csv")).run()
    _ok(app)
    for page in PAGES:
        _goto(app, page)
        _ok(app)
    _goto(app, "calibration")
    assert any("no reference columns" in i.value for i in app.info)


# ---------------------------------------------------------------------------- Weights


def test_train_a_domain_publishes_a_version_in_the_workspace(app: AppTest, data_dir: Path) -> None:
    shipped = sorted(p.name for p in (data_dir / "demo" / "weights" / "r2" / "Music").iterdir())
    _goto(app, "weights")
    app.button_group(key="w_loss").set_value("r2").run()
    app.multiselect(key="train_domains").set_value(["Music"])
    app.button(key="train_submit").click().run()
    _ok(app)
    assert any("Music v2" in _plain(s.value) for s in app.success)
    path = app.session_state["weights_paths"][("demo", "r2")]
    assert WeightsRegistry(path).versions("Music") == [1, 2]
    assert WeightsRegistry(path).versions("Books") == [1]
    assert (
        sorted(p.name for p in (data_dir / "demo" / "weights" / "r2" / "Music").iterdir())
        == shipped
    )
    # Compare the two versions, then roll Music back.
    app.selectbox(key="ver_domain").set_value("Music").run()
    picker = {s.label: s for s in app.selectbox}
    assert picker["Version A"].value == 1 and picker["Version B"].value == 2
    assert picker["Version B"].format_func(2) == "v2 (current)"
    assert app.get("plotly_chart")
    app.button(key="ver_rollback").click().run()
    _ok(app)
    assert any("Music now uses v1" in _plain(s.value) for s in app.success)
    assert WeightsRegistry(path).current_version("Music") == 1
    # the version a running service would serve follows the rollback
    table = next(d.value for d in app.dataframe if "served" in d.value.columns)
    table = table.set_index("domain")
    assert table.loc["Music", "served"] == "r2 v1" and table.loc["Books", "served"] == "r2 v1"
    # the command names the registry verbatim, in a code block (the path never reaches Markdown)
    assert any("the command below" in c.value for c in app.caption)
    assert [c.value for c in app.code] == [f"reranker serve --weights {shlex.quote(str(path))}"]
    picker = {s.label: s for s in app.selectbox}
    assert picker["Version A"].format_func(1) == "v1 (current)"  # labels follow the pointer
    assert picker["Version B"].format_func(2) == "v2"
    app.button(key="ver_rollforward").click().run()
    _ok(app)
    assert WeightsRegistry(path).current_version("Music") == 2
    assert {s.label: s for s in app.selectbox}["Version B"].format_func(2) == "v2 (current)"


def test_train_a_loss_the_dataset_lacks_makes_it_available(app: AppTest) -> None:
    app.radio(key="loss").set_value("r1").run()
    assert any("no weights" in i.value for i in app.sidebar.info)
    _goto(app, "weights")
    assert app.button_group(key="w_loss").value == "r1"
    app.multiselect(key="train_domains").set_value(["Video", "Books"])
    app.button(key="train_submit").click().run()
    _ok(app)
    assert not app.sidebar.info
    _goto(app, "utterances")
    assert "Ranked with R1" in app.caption[0].value


def test_upload_weights_json(app: AppTest, data_dir: Path) -> None:
    doc = json.loads((data_dir / "demo" / "weights" / "r2" / "Video" / "v0001.json").read_text())
    doc["loss"] = "r1"
    _goto(app, "weights")
    upload = ("video.json", json.dumps(doc).encode(), "application/json")
    app.file_uploader(key="weights_upload").set_value(upload).run()
    app.button(key="weights_upload_publish").click().run()
    _ok(app)
    assert any("R1 Video v1" in _plain(s.value) for s in app.success)
    path = app.session_state["weights_paths"][("demo", "r1")]
    assert WeightsRegistry(path).domains() == ["Video"]
    assert "trained" in str(app.radio(key="loss").proto)  # R1 is now available
    bad = json.dumps({"domain": "Video"}).encode()
    app.file_uploader(key="weights_upload").set_value(("bad.json", bad, "application/json")).run()
    app.button(key="weights_upload_publish").click().run()
    assert not app.exception
    assert "bad.json: missing key" in _plain(app.error[0].value)


def test_use_a_weights_directory(app: AppTest, data_dir: Path, tmp_path: Path) -> None:
    _goto(app, "weights")
    app.button_group(key="w_loss").set_value("r1").run()
    app.text_input(key="weights_dir").set_value(str(data_dir / "nothing"))
    app.button(key="weights_dir_use").click().run()
    assert "no such weights directory" in _plain(app.error[0].value)
    # Outside the data folder: refused, with the same words whether the folder exists or not.
    for outside in (tmp_path, tmp_path / "nothing"):
        app.text_input(key="weights_dir").set_value(str(outside))
        app.button(key="weights_dir_use").click().run()
        message = _plain(app.error[0].value)
        assert message == f"{outside}: only folders inside the data folder can be used here"
    app.text_input(key="weights_dir").set_value(str(data_dir / "demo" / "weights" / "r3"))
    app.button(key="weights_dir_use").click().run()
    _ok(app)
    assert app.session_state["weights_paths"][("demo", "r1")].endswith("r3")
    assert len(app.dataframe[0].value) == 5  # the five domains of the r3 registry


# ---------------------------------------------------------------------------- Calibration


def test_calibration_controls_and_calibrators(app: AppTest) -> None:
    _goto(app, "calibration")
    assert app.multiselect(key="cal_losses").value == ["r0", "r2", "r3"]
    app.radio(key="cal_layout").set_value("side")
    app.radio(key="cal_strategy").set_value("quantile")
    app.radio(key="cal_population").set_value("top1")
    app.slider(key="cal_bins").set_value(8)
    app.select_slider(key="cal_boot").set_value(50)
    app.multiselect(key="cal_calibrators").set_value(["temperature", "isotonic"])
    app.checkbox(key="cal_matching").check()
    app.selectbox(key="cal_device").set_value("fire_tv")
    app.run()
    _ok(app)
    table = app.table[0].value
    matched = "DM: R0 matched across domains"
    assert list(table.columns) == ["R0", "R2", "R3", "R0 + temperature", "R0 + isotonic", matched]
    assert table.loc["ECE", matched] != table.loc["ECE", "R0"]
    for metric in ("top-1 SemER", "top-1 IE", "ECE", "MCE", "Brier", "smooth ECE", "top-1 ECE"):
        for cell in table.loc[metric]:  # every value shown with an interval that contains it
            value, low, high = (
                float(x) for x in cell.replace("[", " ").replace(",", " ").replace("]", " ").split()
            )
            assert low <= value <= high, (metric, cell)
    assert any(
        "device fire_tv" in _plain(c.value) and "8 equal mass bins" in c.value for c in app.caption
    )
    app.selectbox(key="cal_domain").set_value("Music").run()
    _ok(app)


def test_query_parameters_open_a_shared_view(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANKER_DATA", str(data_dir))
    monkeypatch.setenv("RERANKER_WORKSPACE", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update({"loss": "R3", "split": "dev", "cal_bins": "7", "utt_misranked": "true"})
    at.run()
    assert at.radio(key="loss").value == "r3"
    assert at.selectbox(key="split").value == "dev"
    _goto(at, "calibration")
    assert at.slider(key="cal_bins").value == 7
    _goto(at, "utterances")
    assert at.toggle(key="utt_misranked").value is True


# ---------------------------------------------------------------------------- Utterances


def test_open_a_misranked_utterance_and_what_if(app: AppTest) -> None:
    app.radio(key="loss").set_value("r2").run()
    _goto(app, "utterances")
    app.toggle(key="utt_misranked").set_value(True).run()
    _ok(app)
    assert "Ranked with R2" in app.caption[0].value
    uid = app.selectbox(key="utt_id").value
    listed = app.dataframe(key="utt_table").value
    assert listed["misranked"].all() and uid == listed["utterance_id"].iloc[0]
    detail = app.dataframe[1].value
    assert not detail["correct"].iloc[0] and detail["correct"].iloc[1:].any()
    assert {"semer", "r0_rank", "rank", "r0_score", "score"} <= set(detail.columns)
    alignment = app.dataframe[2].value
    assert set(alignment["operation"]) <= {"match", "substitution", "deletion", "insertion"}
    assert app.get("plotly_chart")  # feature contributions
    # What-if: push the best correct hypothesis's domain up until it wins.
    correct_domain = detail.loc[detail["correct"], "domain"].iloc[0]
    domains = app.selectbox(key="whatif_domain").options
    if correct_domain in domains:
        app.selectbox(key="whatif_domain").set_value(correct_domain).run()
        app.number_input(key=f"whatif_{correct_domain}_bias").set_value(60.0)
        app.button(key="whatif_submit").click().run()
        _ok(app)
        assert any("The ranking changes" in s.value for s in app.success)


def test_utterance_filters_and_search(app: AppTest) -> None:
    _goto(app, "utterances")
    app.multiselect(key="utt_devices").set_value(["echo_dot"])
    app.slider(key="utt_semer").set_value((0.5, 2.0))
    app.run()
    _ok(app)
    table = app.dataframe(key="utt_table").value
    assert set(table["device"]) == {"echo_dot"} and (table["top_semer"] >= 0.5).all()
    app.text_input(key="utt_search").set_value("no such text <b>").run()
    _ok(app)
    assert any("No utterance matches" in i.value for i in app.info)


# ---------------------------------------------------------------------------- Devices, Probe


def test_compare_page_lists_flips_linked_to_the_utterances_page(app: AppTest) -> None:
    app.radio(key="loss").set_value("r2").run()
    _goto(app, "compare")
    _ok(app)
    assert app.selectbox(key="compare_a").value == "r0"
    app.selectbox(key="compare_b").set_value("r2").run()
    _ok(app)
    metrics = app.dataframe[0].value
    assert "top1_semer" in metrics.index and (metrics["low"] <= metrics["high"]).all()
    changed = app.dataframe[1].value
    if len(changed):
        assert changed["open"].str.startswith("utterances?").all()
        assert changed["open"].str.contains("utt=").all()


def test_devices_page_shows_device_weights(app: AppTest) -> None:
    app.radio(key="loss").set_value("r2").run()
    _goto(app, "devices")
    _ok(app)
    assert len(app.get("plotly_chart")) == 3
    assert any("simulated" in c.value for c in app.caption)


def test_probe_without_models_explains_why(app: AppTest) -> None:
    _goto(app, "probe")
    _ok(app)
    assert any("needs NLU models" in i.value for i in app.info)


def _media_with_models() -> str | None:
    for d in discover_datasets(REPO / "demo_data"):
        if d.models is not None and d.key == "media":
            return d.name
    return None


def test_probe_two_devices_on_the_media_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _media_with_models()
    if name is None:
        pytest.skip("the media demo with NLU models is not in demo_data/ yet")
    pytest.importorskip("reranker.probe")
    monkeypatch.setenv("RERANKER_DATA", str(REPO / "demo_data"))
    monkeypatch.setenv("RERANKER_WORKSPACE", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update({"dataset": name, "loss": "R3"})
    at.run()
    _goto(at, "probe")
    _ok(at)
    assert at.text_input(key="probe_text").value == "play mary poppins"
    at.multiselect(key="probe_devices").set_value(["echo_dot", "fire_tv"])
    at.button(key="probe_submit").click().run()
    _ok(at)
    assert at.get("plotly_chart")
    echo_dot, fire_tv = (t.value for t in at.dataframe[-2:])  # one table per device, in order
    assert list(echo_dot.columns[:3]) == ["rank", "domain", "intent"]
    assert fire_tv["domain"].iloc[0] == "Video"
    assert echo_dot["domain"].iloc[0] != "Video"


# ---------------------------------------------------------------------------- CLI


def test_cli_dashboard_rejects_a_missing_data_directory(tmp_path: Path) -> None:
    from tests.conftest import reranker_cli

    result = subprocess.run(
        [*reranker_cli(), "dashboard", "--data", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"reranker: error: {tmp_path / 'nope'}: no such data directory"


def test_cli_dashboard_serves_the_app(data_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import reranker_cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RERANKER_WORKSPACE": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*reranker_cli(), "dashboard", "--port", str(port), "--data", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # blocks until the server prints its URL (or exits)
            if "URL:" in line:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=30) as r:
            assert r.read() == b"ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
