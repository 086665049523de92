"""``reranker serve``: the HTTP scoring service over a weights registry."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from reranker.cli._app import app
from reranker.errors import RerankerError, WeightsError


def _log_config() -> dict[str, Any]:
    """uvicorn's logging set-up, plus the service's own logger (reloads, refused versions)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["reranker"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def check_registry(weights: Path) -> dict[str, str]:
    """Read a registry once as the service will; refuse it if a current version is invalid.

    Returns the weights each domain will be served with.
    """
    from reranker.serving import WeightsWatcher

    watcher = WeightsWatcher(weights)
    refused = [e for e in watcher.poll() if not e.ok]
    if refused:
        raise WeightsError(refused[0].message)
    return watcher.snapshot.labels()


@app.command()
def serve(
    weights: Annotated[
        Path, typer.Option("--weights", "-w", help="Weights registry directory to serve.")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes.")] = 1,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval", min=0.01, max=60.0, help="Seconds between registry checks."
        ),
    ] = 0.2,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (slower).")
    ] = False,
) -> None:
    """Serve scores over HTTP: POST /rerank, POST /rerank/batch, GET /health, /weights, /metrics.

    Each domain's newly published or rolled-back version is served within a poll interval,
    without a restart; an invalid version is never served.
    """
    try:
        import uvicorn

        from reranker.serving import WEIGHTS_ENV, create_app
        from reranker.serving._app import INTERVAL_ENV
    except ImportError as e:
        raise RerankerError(
            f"serving needs the 'serve' extra ({e.name} is missing): pip install 'reranker[serve]'"
        ) from e
    labels = check_registry(weights)
    typer.echo(
        f"serving {weights}: "
        + (", ".join(f"{d} {w}" for d, w in labels.items()) or "no weights yet (R0 everywhere)"),
        err=True,
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": _log_config(),
        "access_log": access_log,
        "timeout_graceful_shutdown": 5,
        "ws": "none",
    }
    if workers == 1:
        uvicorn.run(create_app(weights, interval=poll_interval), **options)
        return
    os.environ[WEIGHTS_ENV] = str(weights.resolve())
    os.environ[INTERVAL_ENV] = repr(poll_interval)
    uvicorn.run(
        "reranker.serving:app_from_environment",
        factory=True,
        workers=workers,
        # a worker imports numpy, scipy and pandas before it answers its first health check:
        # on a busy machine that takes longer than uvicorn's default of 5 s
        timeout_worker_healthcheck=60,
        **options,
    )
