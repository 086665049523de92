"""Fixtures of the real-browser tests: a ``streamlit run`` server and Debian's headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reranker.datasets import discover_datasets
from tests.conftest import CONFORMANCE, REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "screenshots"
SERVER_LOG: list[str] = []
"""Lines the session's dashboard server printed after it started serving."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped demo data when present, else a copy of the conformance table."""
    shipped = REPO / "demo_data"
    if any(d.key == "media" for d in discover_datasets(shipped)):
        return shipped
    root = tmp_path_factory.mktemp("browser-data") / "sample"
    root.mkdir()
    shutil.copy(CONFORMANCE / "hypotheses.csv", root / "hypotheses.csv")
    return root.parent


@pytest.fixture(scope="session")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run`` on a free localhost port; yields its base URL and stops it afterwards."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        RERANKER_DATA=str(data_dir),
        RERANKER_WORKSPACE=str(tmp_path_factory.mktemp("workspace")),
        PYTHONUNBUFFERED="1",
    )
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "streamlit_app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # blocks until the server prints its URL (or exits)
        seen.append(line)
        if "URL:" in line:
            break
    else:
        proc.wait()
        pytest.fail("streamlit exited before serving:\n" + "".join(seen))
    # Keep draining the server's output (so it never blocks on a full pipe) into SERVER_LOG.
    SERVER_LOG.clear()
    reader = threading.Thread(target=SERVER_LOG.extend, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=20)  # the pipe reaches its end once the server has exited
        proc.stdout.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1440, "height": 2200}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(90_000)
    try:
        yield pg
    finally:
        context.close()
