"""User strings never become Markdown or HTML on any dashboard page.

Hypothesis builds a dataset whose domain, device and dataset names, intents and utterance texts
are Markdown and HTML (images that would fetch a URL, links, emphasis, tags), trains weights on
it and drives every page with AppTest: the Data page, training and rolling back on the Weights
page (progress texts, button labels), an uploaded weights document with an unsafe domain, the
Calibration slices, the Utterances page with its what-if editor, Probe and Devices. No page may
raise, and no Markdown, heading, alert, widget label, help text, progress text or HTML element
may hold one of the strings verbatim (shown as text, they are escaped or in a plain element).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from reranker.errors import WeightsError
from reranker.hypotheses import read_hypotheses
from reranker.registry import check_domain_name
from reranker.training import train_domains
from tests.conftest import CONFORMANCE, REPO
from tests.hostile_strings import MARKUP, markup_text

APP = REPO / "dashboard" / "streamlit_app.py"
# Proto fields Streamlit renders as Markdown (or as HTML, for the html element).
RENDERED_FIELDS = frozenset({"body", "label", "help", "text", "placeholder", "caption"})
PLAIN_ELEMENTS = frozenset({"text", "code", "arrow_data_frame", "dataframe", "json"})


def _storable(name: str) -> bool:
    try:
        check_domain_name(name)
    except WeightsError:
        return False
    return True


names = markup_text.filter(lambda s: s.strip() == s and "\n" not in s and "," not in s)


@st.composite
def hostile_dataset(draw: st.DrawFn) -> dict[str, Any]:
    storable = names.filter(_storable)
    domains = draw(st.lists(storable, min_size=4, max_size=4, unique=True))
    domains.append(draw(names.filter(lambda s: s not in domains)))  # may be unstorable: 'a/b'
    devices = draw(st.lists(names, min_size=3, max_size=3, unique=True))
    return {
        "domains": domains,
        "devices": devices,
        "name": draw(names),
        "description": draw(markup_text),
        "text": draw(names),
    }


def _write_dataset(root: Path, spec: dict[str, Any]) -> list[str]:
    """The conformance table with every name replaced; returns the strings to look for."""
    frame = pd.read_csv(CONFORMANCE / "hypotheses.csv", dtype=str, keep_default_na=False)
    old_domains = sorted(frame["domain"].unique())
    domain_of = dict(zip(old_domains, spec["domains"], strict=False))
    device_of = dict(zip(sorted(frame["device"].unique()), spec["devices"], strict=False))
    for column in ("domain", "ref_domain"):
        frame[column] = frame[column].map(domain_of)
    for column in ("intent", "ref_intent"):
        frame[column] = frame[column].map(
            lambda i: f"{domain_of[i.split('.')[0]]}.{i.split('.', 1)[1]}"
        )
    frame["device"] = frame["device"].map(device_of)
    frame["text"] = spec["text"]
    demo = root / "demo"
    (demo / "hypotheses").mkdir(parents=True)
    for split in ("dev", "test"):
        frame.to_csv(demo / "hypotheses" / f"{split}.csv", index=False)
    meta = {"name": spec["name"], "description": spec["description"], "devices": "simulated"}
    (demo / "dataset.json").write_text(json.dumps(meta))
    table = read_hypotheses(demo / "hypotheses" / "dev.csv")
    train_domains(table, loss="r2", out=demo / "weights" / "r2", engine="serial")
    return [s for s in [*spec["domains"], *spec["devices"], spec["name"], spec["text"]] if MARKUP & set(s)]  # fmt: skip


def _nodes(node: Any) -> Iterator[Any]:
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _nodes(child)


def _strings(message: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (field, text) of a protobuf message, nested messages included."""
    for field, value in message.ListFields():
        single = isinstance(value, str | bytes) or hasattr(value, "ListFields")
        values = [value] if single or not hasattr(value, "__iter__") else list(value)
        for v in values:
            if isinstance(v, str):
                yield field.name, v
            elif hasattr(v, "ListFields"):
                yield from _strings(v, f"{prefix}{field.name}.")


def rendered_texts(at: AppTest) -> list[tuple[str, str]]:
    """(element type, text) of everything the page renders as Markdown or HTML."""
    found = []
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        kind = getattr(node, "type", "")
        if proto is None or kind in PLAIN_ELEMENTS or not hasattr(proto, "ListFields"):
            continue
        for field, text in _strings(proto):
            if field in RENDERED_FIELDS or kind == "html":
                found.append((kind, text))
    return found


def _unescaped(text: str) -> str:
    """``text`` with every backslash-escaped character blanked out: what stays is live markup."""
    return re.sub(r"\\.", "\x00", text, flags=re.S)


def _check(at: AppTest, hostile: list[str], where: str) -> None:
    assert not at.exception, (where, [e.value for e in at.exception])
    for kind, text in rendered_texts(at):
        live = _unescaped(text)
        for s in hostile:
            assert s not in live, f"{where}: {s!r} rendered raw in a {kind} element: {text!r}"


def _drive(at: AppTest, spec: dict[str, Any], hostile: list[str]) -> None:
    at.run()
    _check(at, hostile, "data")
    at.switch_page("app_pages/weights.py").run()
    _check(at, hostile, "weights")
    at.button_group(key="w_loss").set_value("r2").run()
    at.multiselect(key="train_domains").set_value([spec["domains"][0], spec["domains"][4]])
    at.button(key="train_submit").click().run()  # progress texts stay when a domain fails
    _check(at, hostile, "weights: training")
    at.selectbox(key="ver_domain").set_value(spec["domains"][0]).run()
    _check(at, hostile, "weights: versions and roll-back label")
    bad = {"domain": "a/b", "loss": "r2"}
    upload = ("w.json", json.dumps(bad).encode(), "application/json")
    at.file_uploader(key="weights_upload").set_value(upload).run()
    at.button(key="weights_upload_publish").click().run()
    _check(at, hostile, "weights: upload")
    at.switch_page("app_pages/calibration.py").run()
    at.selectbox(key="cal_domain").set_value(spec["domains"][1])
    at.selectbox(key="cal_device").set_value(spec["devices"][0]).run()
    _check(at, hostile, "calibration")
    at.switch_page("app_pages/utterances.py").run()
    _check(at, hostile, "utterances")
    whatif = at.get("selectbox")
    if any(getattr(w, "key", None) == "whatif_domain" for w in whatif):
        at.button(key="whatif_submit").click().run()
        _check(at, hostile, "utterances: what-if")
    for page in ("probe", "devices"):
        at.switch_page(f"app_pages/{page}.py").run()
        _check(at, hostile, page)


@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # shrinking a failure re-runs every page: too slow
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(spec=hostile_dataset())
def test_no_page_renders_user_strings_as_markup(spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-dash-") as d:
        root = Path(d) / "data"
        hostile = _write_dataset(root, spec)
        env = {"RERANKER_DATA": str(root), "RERANKER_WORKSPACE": str(Path(d) / "ws")}
        with mock.patch.dict(os.environ, env):
            at = AppTest.from_file(str(APP), default_timeout=180)
            _drive(at, spec, hostile)


def test_the_check_finds_raw_markup() -> None:
    """rendered_texts sees Markdown bodies and labels: the check above can fail."""
    script = (
        "import streamlit as st\nst.markdown('**x** ![i](http://e/i.png)')\nst.button('[l](u)')"
    )
    at = AppTest.from_string(script).run()
    texts = [_unescaped(t) for _, t in rendered_texts(at)]
    assert "**x** ![i](http://e/i.png)" in texts and "[l](u)" in texts
    assert "**x**" not in _unescaped(r"\*\*x\*\*") and "# H" not in _unescaped(r"\# H")
