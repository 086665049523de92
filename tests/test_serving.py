"""The service in-process: same scores as ``rerank``, weight reloads, bad requests refused."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reranker import features
from reranker.errors import DataError
from reranker.evaluation import score_table
from reranker.features import default_feature_names, register_feature
from reranker.hypotheses import validate_hypotheses
from reranker.registry import WeightsRegistry
from reranker.scoring import score_hypotheses
from reranker.serving import Limits, RequestError, _requests, create_app, parse_nbest
from tests.conftest import make_table

DEVICES = ["echo_dot", "echo_show", "fire_tv"]
NAMES = default_feature_names(DEVICES)
HYPOTHESIS_KEYS = ("domain", "intent", "slots", "domain_score", "intent_score", "slot_score")


def _document(domain: str, seed: int, names: list[str] = NAMES) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "domain": domain,
        "loss": "r3",
        "version": None,
        "features": names,
        "weights": rng.normal(size=len(names)).tolist(),
        "bias": float(rng.normal()),
        "trained_at": "2026-01-01T00:00:00+00:00",
        "training_data": {"sha256": "0" * 64, "n_utterances": 1, "n_hypotheses": 2},
        "metrics": {"n_iter": 3, "converged": True},
        "options": {"l2": 0.001},
    }


class AppClient:
    """Requests to the ASGI application in-process (httpx's ASGI transport), synchronously."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path, **kwargs)

        # A loop of its own in a thread of its own: the request never depends on whatever event
        # loop state other code left in the test process's main thread.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, send()).result()

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def _registry(path: Path, domains: tuple[str, ...] = ("Music", "Video")) -> WeightsRegistry:
    reg = WeightsRegistry(path)
    for i, d in enumerate(domains):
        reg.publish(d, _document(d, i))
    return reg


def _bodies(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One /rerank body per utterance of a validated table, hypotheses in table order."""
    bodies = []
    for uid, rows in table.groupby("utterance_id", sort=False).indices.items():
        part = table.iloc[rows]
        hyps = part[list(HYPOTHESIS_KEYS)].to_dict("records")
        bodies.append({"utterance_id": uid, "device": part["device"].iloc[0], "hypotheses": hyps})
    return bodies


def _nbest(domains: list[str], device: str = "fire_tv", uid: str = "u1") -> dict[str, Any]:
    hyps = [
        {
            "domain": d,
            "intent": f"{d}.Play",
            "slots": f"play [title : t{i}]",
            "domain_score": 0.9 - 0.1 * i,
            "intent_score": 0.8,
            "slot_score": 0.7,
        }
        for i, d in enumerate(domains)
    ]
    return {"utterance_id": uid, "device": device, "hypotheses": hyps}


@pytest.fixture
def slot_count_feature() -> Iterator[str]:
    """A registered feature outside the defaults (computed through the table functions)."""
    name = "serving_test_slot_count"
    register_feature(name, lambda h: h["slots"].str.count(r"\[").to_numpy(dtype=np.float64))
    yield name
    features._REGISTRY.pop(name, None)


@pytest.mark.parametrize("custom", [False, True], ids=["default features", "custom feature"])
def test_scores_and_ranks_equal_rerank(
    tmp_path: Path, slot_count_feature: str, custom: bool
) -> None:
    # Without a custom feature short n-bests take the plain-float path, with one the numpy path.
    table = validate_hypotheses(make_table(300, seed=5, refs=False))
    # ties on score: an R0 domain whose hypotheses share a product, broken by domain_score
    extra = table.iloc[:4].assign(domain="Weather", intent="Weather.Get", slots="", text="")
    extra[["domain_score", "intent_score", "slot_score"]] = [[0.5, 0.4, 1.0], [0.4, 0.5, 1.0]] * 2
    extra["utterance_id"] = ["t1", "t1", "t2", "t2"]
    extra["intent"] = ["Weather.Get", "Weather.Ask"] * 2
    table = validate_hypotheses(pd.concat([table, extra], ignore_index=True))
    reg = _registry(tmp_path, ("Music", "Video"))
    books = [*NAMES[:4], slot_count_feature, NAMES[-1]] if custom else NAMES
    reg.publish("Books", _document("Books", 7, books))
    scoring = score_hypotheses(table, tmp_path)
    expected = score_table(table, scoring.score)
    client = AppClient(create_app(tmp_path, watch=False))
    codes = table.groupby("utterance_id", sort=False).indices
    for body in _bodies(table):
        answer = client.post("/rerank", json=body)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        rows = codes[body["utterance_id"]]
        by_key = {(h["domain"], h["intent"], h["slots"]): h for h in got["hypotheses"]}
        for r in rows:
            h = by_key[tuple(table.loc[r, ["domain", "intent", "slots"]])]
            assert abs(h["score"] - expected.score[r]) <= 1e-12
            assert h["rank"] == expected.rank[r]
        assert [h["rank"] for h in got["hypotheses"]] == list(range(1, len(rows) + 1))
        present = {h["domain"] for h in got["hypotheses"]}
        assert got["weights"] == {d: scoring.source[d] for d in present}


BAD_DOCUMENTS = {
    "missing keys": b'{"domain": "Video"}',
    "not json": b"\x00\xff garbage",
    "non-finite weight": None,
    "unknown feature": None,
    "other domain": None,
}


@pytest.mark.parametrize("case", sorted(BAD_DOCUMENTS))
def test_invalid_version_is_never_served(tmp_path: Path, case: str) -> None:
    _registry(tmp_path, ("Music", "Video"))
    app = create_app(tmp_path, watch=False)
    client = AppClient(app)
    body = _nbest(["Video", "Music"])
    before = client.post("/rerank", json=body).json()
    data = BAD_DOCUMENTS[case]
    if data is None:
        doc = _document("Video", 3) | {"version": 2}
        if case == "non-finite weight":
            doc["weights"][0] = float("nan")
        elif case == "unknown feature":
            doc["features"] = [*NAMES[:-1], "no_such_feature"]
        else:
            doc["domain"] = "Music"
        data = json.dumps(doc).encode()
    (tmp_path / "Video" / "v0002.json").write_bytes(data)
    (tmp_path / "Video" / "CURRENT.tmp").write_text("2\n")
    os.replace(tmp_path / "Video" / "CURRENT.tmp", tmp_path / "Video" / "CURRENT")
    events = app.state.watcher.poll()
    assert [(e.domain, e.ok, e.label) for e in events] == [("Video", False, "r3 v1")]
    assert client.post("/rerank", json=body).json() == before
    assert app.state.watcher.poll() == []  # the same files are not retried
    assert "v0002.json" in client.get("/weights").json()["refused"]["Video"]
    assert 'reranker_weights_reload_failures_total{domain="Video"} 1' in client.get("/metrics").text
    WeightsRegistry(tmp_path).rollback("Video")  # a valid pointer again: served, refusal cleared
    assert [e.ok for e in app.state.watcher.poll()] == [True]
    assert client.get("/weights").json()["refused"] == {}


def test_domains_appear_and_fall_back_to_r0(tmp_path: Path) -> None:
    app = create_app(tmp_path, watch=False)  # an empty registry serves R0 everywhere
    client = AppClient(app)
    body = _nbest(["Music"])
    assert client.post("/rerank", json=body).json()["weights"] == {"Music": "r0"}
    reg = _registry(tmp_path, ("Music",))
    app.state.watcher.poll()
    assert client.post("/rerank", json=body).json()["weights"] == {"Music": "r3 v1"}
    (tmp_path / "Music" / "CURRENT").unlink()
    app.state.watcher.poll()
    assert client.post("/rerank", json=body).json()["weights"] == {"Music": "r0"}
    assert reg.versions("Music") == [1]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hypotheses": []}, "utterance_id"),
        (_nbest(["Music"]) | {"utterance_id": "  "}, "utterance_id"),
        (_nbest(["Music"]) | {"utterance_id": 7}, "utterance_id"),
        (_nbest(["Music"]) | {"hypotheses": []}, "hypotheses"),
        (_nbest(["Music"]) | {"hypotheses": {"domain": "Music"}}, "hypotheses"),
        (_nbest(["Music"]) | {"device": 3}, "device"),
        (_nbest(["Music"]) | {"text": ["x"]}, "text"),
        (_nbest(["Music"] * 101), "hypotheses"),
        (_nbest(["Music", "Video"]) | {"hypotheses": [{}, {}]}, "hypotheses[0].domain"),
        (_nbest(["Music", "Video"]) | {"hypotheses": [3]}, "hypotheses[0]"),
        ([_nbest(["Music"])], ""),
    ],
)
def test_bad_utterance_names_the_field(body: Any, field: str) -> None:
    client = AppClient(create_app(_empty_registry(), watch=False))
    answer = client.post("/rerank", json=body)
    assert answer.status_code == 422
    assert answer.json()["field"] == field


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"domain_score": 1.5}, "hypotheses[1].domain_score", 422),
        ({"intent_score": -0.1}, "hypotheses[1].intent_score", 422),
        ({"slot_score": "0.5"}, "hypotheses[1].slot_score", 422),
        ({"slot_score": True}, "hypotheses[1].slot_score", 422),
        ({"slot_score": 10**400}, "hypotheses[1].slot_score", 422),
        ({"domain": ""}, "hypotheses[1].domain", 422),
        ({"intent": None}, "hypotheses[1].intent", 422),
        ({"slots": "play [title"}, "hypotheses[1].slots", 422),
        (
            {"domain": "Music", "intent": "Music.Play", "slots": " play [title : t0] "},
            "hypotheses[1].slots",
            422,
        ),
        ({"domain": "x" * 2000}, "hypotheses[1].domain", 422),
    ],
)
def test_bad_hypothesis_names_the_field(change: dict[str, Any], field: str, status: int) -> None:
    client = AppClient(create_app(_empty_registry(), watch=False))
    body = _nbest(["Music", "Video"])
    body["hypotheses"][1].update(change)
    answer = client.post("/rerank", json=body)
    assert answer.status_code == status
    assert answer.json()["field"] == field
    assert answer.json()["error"].startswith(field)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{", {"content-type": "application/json"}, 400),
        (b'{"utterance_id": NaN}', {"content-type": "application/json"}, 400),
        (b"[" * 100_000 + b"]" * 100_000, {"content-type": "application/json"}, 400),
        (b"\xff\xfe", {"content-type": "application/json"}, 400),
        (b"{}", {"content-type": "text/plain"}, 415),
        (b"{}", {}, 415),
        (b" " * (3 * 1024 * 1024), {"content-type": "application/json"}, 413),
        (b"[]", {"content-type": "application/json"}, 422),
    ],
)
def test_malformed_bodies_are_4xx(body: bytes, headers: dict[str, str], status: int) -> None:
    client = AppClient(create_app(_empty_registry(), watch=False))
    answer = client.post("/rerank", content=body, headers=headers)
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "field"}


def test_batch_scores_each_utterance_and_refuses_repeated_ids(tmp_path: Path) -> None:
    _registry(tmp_path)
    client = AppClient(create_app(tmp_path, watch=False))
    one, two = _nbest(["Music", "Video"], uid="a"), _nbest(["Video"], "echo_dot", uid="b")
    answer = client.post("/rerank/batch", json=[one, two])
    assert answer.status_code == 200
    assert answer.json() == [client.post("/rerank", json=b).json() for b in (one, two)]
    again = client.post("/rerank/batch", json=[one, two, one])
    assert again.status_code == 422 and again.json()["field"] == "[2].utterance_id"
    bad = client.post("/rerank/batch", json=[one, {**two, "hypotheses": [{"domain": "x"}]}])
    assert bad.json()["field"] == "[1].hypotheses[0].intent"


_EMPTY: list[Path] = []


def _empty_registry() -> Path:
    if not _EMPTY:
        import tempfile

        _EMPTY.append(Path(tempfile.mkdtemp(prefix="reranker-serving-")))
    return _EMPTY[0]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _mutated(body: dict[str, Any], data: st.DataObject) -> Any:
    """A valid body with one part replaced by an arbitrary JSON value."""
    where = data.draw(st.sampled_from(["top", "hypothesis", "list"]))
    value = data.draw(json_values)
    if where == "top":
        key = data.draw(st.sampled_from(["utterance_id", "device", "text", "hypotheses", "x"]))
        return body | {key: value}
    if where == "list":
        return body | {"hypotheses": [*body["hypotheses"], value]}
    hyp = dict(body["hypotheses"][0])
    hyp[data.draw(st.sampled_from([*HYPOTHESIS_KEYS, "x"]))] = value
    return body | {"hypotheses": [hyp, *body["hypotheses"][1:]]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_bodies_never_get_5xx(data: st.DataObject) -> None:
    client = AppClient(
        create_app(_empty_registry(), watch=False, limits=Limits(max_body_bytes=4096))
    )
    kind = data.draw(st.sampled_from(["mutated", "json", "bytes", "batch"]))
    body = _nbest(["Music", "Video", "Books"])
    headers = {
        "content-type": data.draw(
            st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain"])
        )
    }
    path = "/rerank/batch" if kind == "batch" else "/rerank"
    if kind == "bytes":
        content = data.draw(st.binary(max_size=200))
    elif kind == "json":
        content = json.dumps(data.draw(json_values)).encode()
    elif kind == "batch":
        content = json.dumps([body, _mutated(body, data)]).encode()
    else:
        content = json.dumps(_mutated(body, data)).encode()
    answer = client.post(path, content=content, headers=headers)
    assert answer.status_code < 500
    if answer.status_code != 200:
        assert set(answer.json()) == {"error", "field"}


hypothesis_values = st.one_of(
    st.floats(),
    st.integers(-2, 2),
    st.sampled_from(["", " ", "Music", " Music ", "play [title : x]", "play [title", "x" * 1100]),
    st.none(),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(HYPOTHESIS_KEYS), hypothesis_values, min_size=4))
def test_quick_acceptance_agrees_with_the_full_rules(hyp: dict[str, Any]) -> None:
    limits = Limits()
    quick = _requests._plain_hypothesis(hyp, limits.max_string_chars)
    try:
        full = _requests._checked_hypothesis(hyp, "", limits)
    except RequestError:
        assert quick is None
    else:
        assert quick is None or quick == full


_strings = st.sampled_from(
    ["Music", " Music", "Video", "", "  ", "play [title : x]", "[a : b", "x]"]
)
_scores = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0, 1, 0.0, 1.0, 2, -1]))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "domain": _strings,
                "intent": _strings,
                "slots": _strings,
                "domain_score": _scores,
                "intent_score": _scores,
                "slot_score": _scores,
            }
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["u1", " u1 ", " "]),
    st.sampled_from(["fire_tv", "", " echo_dot "]),
)
def test_requests_follow_the_table_rules(hyps: list[dict[str, Any]], uid: str, device: str) -> None:
    """A request is refused exactly when the same rows as a table are, and reads the same."""
    body = {"utterance_id": uid, "device": device, "hypotheses": hyps}
    frame = pd.DataFrame([{"utterance_id": uid, "device": device, **h} for h in hyps])
    try:
        table = validate_hypotheses(frame)
    except DataError:
        table = None
    try:
        nbest = parse_nbest(body)
    except RequestError:
        assert table is None
        return
    assert table is not None
    assert nbest.utterance_id == table["utterance_id"].iloc[0]
    assert nbest.device == table["device"].iloc[0]
    for column in ("domain", "intent", "slots", *HYPOTHESIS_KEYS[3:]):
        assert list(getattr(nbest, column)) == table[column].tolist()
