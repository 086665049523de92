"""The package as a user installs it: a wheel in a fresh virtual environment, used from elsewhere.

The wheel is built from a copy of the sources without network (``--no-build-isolation`` with the
project environment's setuptools). The fresh environment gets the wheel with ``--no-deps
--no-index``; its dependencies come from the project environment's site-packages, added by a
``.pth`` line *after* the new environment's own site-packages (a plain path line does not run the
project environment's ``.pth`` hooks, so its editable install of ``reranker`` stays invisible).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reranker.cli._dashboard import (
    STREAMLIT_SETTINGS,
    dashboard_app,
    dashboard_command,
    default_data,
)
from reranker.errors import DataError

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "reranker", "dashboard"]
HEALTH_DEADLINE = 120.0  # seconds for the server to answer its health check


def _run(
    args: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=cwd, env=env
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RERANKER_DATA")}
    env.pop("VIRTUAL_ENV", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment with only the built wheel of this project installed."""
    root = tmp_path_factory.mktemp("packaging")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(REPO / name, src / name)
    dist = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--no-index", "--wheel-dir", dist, src])  # fmt: skip
    (wheel,) = dist.glob("reranker-*.whl")
    env = root / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", env])
    (purelib,) = (env / "lib").glob("python3*/site-packages")
    (purelib / "_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", env / "bin" / "python", "install", "--quiet",
          "--no-deps", "--no-index", "--ignore-installed", wheel])  # fmt: skip
    yield env


def test_wheel_installs_the_package_dashboard_and_corpora(venv: Path, tmp_path: Path) -> None:
    script = (
        "import dashboard, reranker; from reranker.demo import default_sources, default_domain_map;"
        "print(reranker.__file__); print(dashboard.__file__); print(default_sources());"
        "print(default_domain_map())"
    )
    out = _run([venv / "bin" / "python", "-c", script], cwd=tmp_path, env=_clean_env())
    package, app, corpora, domain_map = (Path(line) for line in out.stdout.splitlines())
    for path in (package, app, corpora):
        assert venv in path.parents, path  # the installed copy, not the checkout
    assert (app.parent / "streamlit_app.py").is_file()
    assert (app.parent / "app_pages" / "calibration.py").is_file()
    for name in ("hwu64.jsonl", "slurp_devel.jsonl", "snips.jsonl", "ATTRIBUTION.md"):
        assert (corpora / name).stat().st_size > 0, name
    assert "CC BY 4.0" in (corpora / "ATTRIBUTION.md").read_text()
    assert sorted(p.name for p in corpora.glob("LICENSE-*")) == [
        "LICENSE-CC-BY-4.0.txt",
        "LICENSE-CC0-1.0.txt",
    ]
    assert domain_map.is_file() and venv in domain_map.parents


def test_installed_dashboard_without_data_gives_one_line_error(venv: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [venv / "bin" / "reranker", "dashboard"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "reranker: error: no data directory: pass --data DIR "
        "(build one with `reranker demo --out DIR`)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    url = f"http://127.0.0.1:{port}/_stcore/health"
    deadline = time.monotonic() + HEALTH_DEADLINE
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the dashboard server exited"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.read() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)  # polling interval, bounded by the deadline
    pytest.fail(f"no healthy dashboard on port {port} within {HEALTH_DEADLINE:.0f} s")


def test_installed_demo_and_dashboard_from_an_empty_directory(venv: Path, tmp_path: Path) -> None:
    env = _clean_env(RERANKER_WORKSPACE=str(tmp_path / "workspace"))
    _run([venv / "bin" / "reranker", "demo", "--out", "d", "--small", "--dataset", "media"],
         cwd=tmp_path, env=env)  # fmt: skip
    data = tmp_path / "d"
    assert (data / "media" / "hypotheses" / "test.parquet").is_file()
    assert (data / "media" / "weights" / "r2").is_dir()
    assert "SNIPS" in (data / "ATTRIBUTION.md").read_text()
    # The installed app renders its first page on that data (imports and data discovery).
    render = (
        "from streamlit.testing.v1 import AppTest; import dashboard, pathlib;"
        "app = pathlib.Path(dashboard.__file__).with_name('streamlit_app.py');"
        "at = AppTest.from_file(str(app), default_timeout=300).run();"
        "assert not at.exception, at.exception; assert not at.warning, at.warning;"
        "print(at.sidebar.selectbox[0].value)"
    )
    out = _run([venv / "bin" / "python", "-c", render], cwd=tmp_path,
               env={**env, "RERANKER_DATA": str(data)})  # fmt: skip
    assert out.stdout.split() == ["media"]
    port = _free_port()
    proc = subprocess.Popen(
        [venv / "bin" / "reranker", "dashboard", "--data", "d", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(port, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_streamlit_settings_match_the_checkout_config() -> None:
    """``reranker dashboard`` passes the settings ``make run`` reads from .streamlit/config.toml."""
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    flat = {
        f"{section}.{key}": str(value).lower() if isinstance(value, bool) else str(value)
        for section, values in config.items()
        for key, value in values.items()
    }
    assert flat == STREAMLIT_SETTINGS


def test_dashboard_app_is_found_through_the_dashboard_package() -> None:
    assert dashboard_app() == REPO / "dashboard" / "streamlit_app.py"  # the editable install


def test_dashboard_command_passes_every_setting() -> None:
    command = dashboard_command(Path("app.py"), 8600)
    assert command[1:5] == ["-m", "streamlit", "run", "app.py"]
    assert "--server.port=8600" in command
    for key, value in STREAMLIT_SETTINGS.items():
        assert f"--{key}={value}" in command


def test_dashboard_default_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RERANKER_DATA", raising=False)
    app = tmp_path / "site-packages" / "dashboard" / "streamlit_app.py"
    app.parent.mkdir(parents=True)
    app.touch()
    with pytest.raises(DataError, match=r"^no data directory: pass --data DIR"):
        default_data(app)  # an installed package: no demo_data/ beside it
    (tmp_path / "site-packages" / "demo_data").mkdir()
    assert default_data(app) == tmp_path / "site-packages" / "demo_data"  # a checkout
    monkeypatch.setenv("RERANKER_DATA", str(tmp_path / "elsewhere"))
    assert default_data(app) == tmp_path / "elsewhere"
