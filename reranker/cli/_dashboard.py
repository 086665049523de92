"""``reranker dashboard``: start the Streamlit calibration dashboard."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from reranker.cli._app import app
from reranker.errors import DataError

APP = Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py"


def dashboard_command(port: int) -> list[str]:
    """The ``streamlit run`` command line that serves the dashboard."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


@app.command()
def dashboard(
    port: Annotated[
        int, typer.Option("--port", "-p", min=1, max=65535, help="Port to serve on.")
    ] = 8501,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", "-d", help="Data directory laid out like demo_data/ (default: demo_data/)."
        ),
    ] = None,
) -> None:
    """Serve the calibration dashboard (open the printed URL in a browser)."""
    if not APP.is_file():
        raise DataError(f"{APP}: the dashboard is not installed with this copy of reranker")
    env = dict(os.environ)
    if data is not None:
        if not data.is_dir():
            raise DataError(f"{data}: no such data directory")
        env["RERANKER_DATA"] = str(data.resolve())
    # Replace this process by the server, so that signals (Ctrl-C, terminate) reach it directly
    # and no orphan is left behind.
    os.chdir(APP.parents[1])
    command = dashboard_command(port)
    os.execve(command[0], command, env)
