"""The scoring service on a real server on 127.0.0.1: live updates under load, workers, CLI."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from reranker.serving import create_app
from tests.conftest import reranker_cli
from tests.test_serving import _document, _nbest, _registry


@contextlib.contextmanager
def _server(app: Any) -> Iterator[str]:
    """The application under uvicorn in a thread, on a free port of 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class _Clients:
    """Threads posting /rerank until stopped (at most ``limit`` requests each)."""

    def __init__(self, url: str, body: dict[str, Any], n: int = 4, limit: int = 2000) -> None:
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(url, body, limit)) for _ in range(n)
        ]

    def _run(self, url: str, body: dict[str, Any], limit: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(limit):
                if self._stop.is_set():
                    return
                try:
                    r = client.post("/rerank", json=body)
                    item = (r.status_code, r.json().get("weights", {}))
                except (httpx.HTTPError, ValueError) as e:
                    with self._lock:
                        self.errors.append(repr(e))
                    continue
                with self._lock:
                    self.answers.append(item)

    def __enter__(self) -> _Clients:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def _wait_for(client: httpx.Client, body: dict[str, Any], domain: str, label: str) -> None:
    deadline = time.monotonic() + 30
    while client.post("/rerank", json=body).json()["weights"][domain] != label:
        assert time.monotonic() < deadline, f"{domain} never served {label}"


def test_publish_and_rollback_under_concurrent_requests(tmp_path: Path) -> None:
    reg = _registry(tmp_path, ("Music", "Video"))
    body = _nbest(["Music", "Video", "Books"])
    app = create_app(tmp_path, interval=0.02)
    with _server(app) as url, _Clients(url, body) as clients, httpx.Client(base_url=url) as c:
        _wait_for(c, body, "Video", "r3 v1")
        reg.publish("Video", _document("Video", 99))
        _wait_for(c, body, "Video", "r3 v2")
        reg.rollback("Video")
        _wait_for(c, body, "Video", "r3 v1")
        seen_before = len(clients.answers)
        deadline = time.monotonic() + 30
        while len(clients.answers) < seen_before + 20:  # some traffic after the switches
            assert time.monotonic() < deadline
    assert clients.errors == []
    assert {status for status, _ in clients.answers} == {200}
    assert {w["Video"] for _, w in clients.answers} <= {"r3 v1", "r3 v2"}
    assert {(w["Music"], w["Books"]) for _, w in clients.answers} == {("r3 v1", "r0")}
    assert app.state.watcher.snapshot.models["Music"].version == 1


def test_small_load_on_loopback_all_answered(tmp_path: Path) -> None:
    _registry(tmp_path, ("Music", "Video"))
    body = _nbest(["Music", "Video", "Books", "Music", "Video"] * 2)
    body["hypotheses"] = [
        h | {"intent": f"{h['intent']}{i}"} for i, h in enumerate(body["hypotheses"])
    ]
    with _server(create_app(tmp_path)) as url:
        clients = _Clients(url, body, n=8, limit=40)
        with clients:
            for t in clients._threads:
                t.join(timeout=120)
        metrics = httpx.get(f"{url}/metrics").text
    assert clients.errors == []
    assert len(clients.answers) == 320
    assert {status for status, _ in clients.answers} == {200}
    assert 'reranker_requests_total{endpoint="/rerank",status="200"} 320' in metrics


def test_cli_serves_with_two_workers(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        *reranker_cli(),
        "serve",
        "--weights",
        str(tmp_path),
        "--port",
        str(port),
        "--workers",
        "2",
        "--poll-interval",
        "0.05",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
        body = _nbest(["Video"])
        reg.publish("Video", _document("Video", 42))
        with httpx.Client(base_url=url, timeout=30) as client:
            streak = 0  # both workers must serve v2: 40 answers in a row say so
            while streak < 40:
                assert time.monotonic() < deadline, "a worker never served v2"
                label = client.post("/rerank", json=body).json()["weights"]["Video"]
                streak = streak + 1 if label == "r3 v2" else 0
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_cli_refuses_bad_registries(tmp_path: Path) -> None:
    missing = subprocess.run(
        [*reranker_cli(), "serve", "--weights", str(tmp_path / "no")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert (
        missing.stderr.startswith("reranker: error:")
        and "no such weights directory" in missing.stderr
    )
    _registry(tmp_path)
    (tmp_path / "Video" / "CURRENT").write_text("7\n")
    broken = subprocess.run(
        [*reranker_cli(), "serve", "--weights", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert broken.returncode == 2
    assert "v0007.json" in broken.stderr and len(broken.stderr.strip().splitlines()) == 1
