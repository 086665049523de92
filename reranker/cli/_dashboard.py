"""``reranker dashboard``: start the Streamlit calibration dashboard."""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from reranker.cli._app import app
from reranker.errors import DataError
from reranker.uploads import ALLOW_PATHS_ENV

STREAMLIT_SETTINGS: dict[str, str] = {
    "server.headless": "true",
    "server.maxUploadSize": "200",
    "server.runOnSave": "false",
    "server.fileWatcherType": "none",
    "browser.gatherUsageStats": "false",
    "client.toolbarMode": "minimal",
    "client.showErrorDetails": "none",
    "theme.base": "light",
}
"""Streamlit settings of the dashboard, passed on the command line so that they apply wherever it
runs from (``.streamlit/config.toml`` holds the same for ``streamlit run`` in a checkout)."""


def dashboard_app() -> Path:
    """``streamlit_app.py`` of the installed ``dashboard`` package."""
    try:
        app_file = resources.files("dashboard") / "streamlit_app.py"
    except ModuleNotFoundError:
        raise DataError(
            "the dashboard package is not installed with this copy of reranker"
        ) from None
    if not isinstance(app_file, Path) or not app_file.is_file():
        raise DataError(f"{app_file}: the dashboard is not installed with this copy of reranker")
    return app_file


def default_data(app_file: Path) -> Path:
    """The data directory used without ``--data``: ``$RERANKER_DATA``, else the checkout's
    ``demo_data/`` (there is none beside an installed wheel: then this is an error)."""
    if os.environ.get("RERANKER_DATA"):
        return Path(os.environ["RERANKER_DATA"])
    demo = app_file.parents[1] / "demo_data"
    if not demo.is_dir():
        raise DataError(
            "no data directory: pass --data DIR (build one with `reranker demo --out DIR`)"
        )
    return demo


def dashboard_command(app_file: Path, port: int) -> list[str]:
    """The ``streamlit run`` command line that serves the dashboard."""
    flags = [f"--{key}={value}" for key, value in STREAMLIT_SETTINGS.items()]
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_file),
        f"--server.port={port}",
        *flags,
    ]


@app.command()
def dashboard(
    port: Annotated[
        int, typer.Option("--port", "-p", min=1, max=65535, help="Port to serve on.")
    ] = 8501,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="Data directory laid out like demo_data/ (default: $RERANKER_DATA, else the "
            "checkout's demo_data/).",
        ),
    ] = None,
    allow_server_paths: Annotated[
        bool,
        typer.Option(
            "--allow-server-paths",
            help="Let users load weights from any server folder (default: only the data folder).",
        ),
    ] = False,
) -> None:
    """Serve the calibration dashboard (open the printed URL in a browser)."""
    app_file = dashboard_app()
    root = data if data is not None else default_data(app_file)
    if not root.is_dir():
        raise DataError(f"{root}: no such data directory")
    env = dict(os.environ, RERANKER_DATA=str(root.resolve()))
    if allow_server_paths:
        env[ALLOW_PATHS_ENV] = "1"
    # Replace this process by the server, so that signals (Ctrl-C, terminate) reach it directly
    # and no orphan is left behind.
    command = dashboard_command(app_file, port)
    os.execve(command[0], command, env)
