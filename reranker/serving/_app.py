"""The HTTP service: a Starlette application over a :class:`WeightsWatcher`.

Endpoints: ``POST /rerank`` (one n-best), ``POST /rerank/batch`` (a list of them), ``GET
/health``, ``GET /weights`` (the version serving each domain) and ``GET /metrics`` (Prometheus
text). Every answer is JSON except ``/metrics``; every refusal is a 4xx JSON object
``{"error": "...", "field": "..."}`` naming the field at fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reranker.serving._metrics import Metrics
from reranker.serving._model import NBest, ScoredNBest, Snapshot
from reranker.serving._requests import Limits, RequestError, decode_json, parse_batch, parse_nbest
from reranker.serving._watcher import ReloadEvent, WeightsWatcher

__all__ = ["WEIGHTS_ENV", "app_from_environment", "create_app"]

log = logging.getLogger("reranker.serving")

WEIGHTS_ENV = "RERANKER_SERVE_WEIGHTS"
"""Environment variable naming the registry for worker processes (``--workers K``)."""
INTERVAL_ENV = "RERANKER_SERVE_POLL_INTERVAL"
_ENDPOINTS = frozenset({"/rerank", "/rerank/batch", "/health", "/weights", "/metrics"})


def _json(content: Any, status: int = 200) -> Response:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(body.encode("utf-8"), status_code=status, media_type="application/json")


def _error(status: int, message: str, field: str = "") -> Response:
    return _json({"error": message, "field": field}, status)


def _echo(content: Any) -> Response:
    """An answer that returns the client's own extra keys, whose nesting the client chose."""
    try:
        return _json(content)
    except RecursionError:  # nested just under the decoder's limit, over the encoder's
        return _error(400, "invalid JSON: nested too deeply")


async def _read_body(request: Request, limits: Limits) -> bytes:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise RequestError("", "expected Content-Type: application/json", status=415)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.max_body_bytes:
        raise RequestError("", f"body larger than {limits.max_body_bytes} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise RequestError("", f"body larger than {limits.max_body_bytes} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(nbest: NBest, raw: Sequence[Any], scored: ScoredNBest) -> dict[str, Any]:
    score = scored.score.tolist()
    rank = scored.rank.tolist()
    hypotheses = []
    for i in scored.order.tolist():
        h = dict(raw[i])
        h["score"] = score[i]
        h["rank"] = rank[i]
        hypotheses.append(h)
    return {
        "utterance_id": nbest.utterance_id,
        "device": nbest.device,
        "hypotheses": hypotheses,
        "weights": scored.weights,
    }


class _Service:
    """The endpoints, bound to one watcher, its metrics and the request limits."""

    def __init__(self, watcher: WeightsWatcher, metrics: Metrics, limits: Limits) -> None:
        self.watcher = watcher
        self.metrics = metrics
        self.limits = limits

    async def rerank(self, request: Request) -> Response:
        try:
            body = decode_json(await _read_body(request, self.limits))
            nbest = parse_nbest(body, self.limits)
        except RequestError as e:
            return _error(e.status, str(e), e.field)
        snapshot: Snapshot = self.watcher.snapshot  # one snapshot for the whole request
        scored = snapshot.score(nbest)
        self.metrics.count_hypotheses(len(nbest))
        return _echo(_answer(nbest, body["hypotheses"], scored))

    async def rerank_batch(self, request: Request) -> Response:
        try:
            body = decode_json(await _read_body(request, self.limits))
            nbests = parse_batch(body, self.limits)
        except RequestError as e:
            return _error(e.status, str(e), e.field)
        snapshot: Snapshot = self.watcher.snapshot
        answers = [
            _answer(nb, item["hypotheses"], snapshot.score(nb))
            for nb, item in zip(nbests, body, strict=True)
        ]
        self.metrics.count_hypotheses(sum(len(nb) for nb in nbests))
        return _echo(answers)

    async def health(self, request: Request) -> Response:
        snapshot = self.watcher.snapshot
        return _json(
            {"status": "ok", "domains": len(snapshot.models), "generation": snapshot.generation}
        )

    async def weights(self, request: Request) -> Response:
        snapshot = self.watcher.snapshot
        return _json(
            {
                "weights": snapshot.labels(),
                "refused": dict(sorted(self.metrics.last_failure.items())),
                "generation": snapshot.generation,
                "registry": str(self.watcher.registry.path),
            }
        )

    async def metrics_text(self, request: Request) -> Response:
        text = self.metrics.render(self.watcher.snapshot)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


class _Timing:
    """Pure ASGI middleware: counts every HTTP answer and its latency by endpoint and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                path = scope["path"] if scope["path"] in _ENDPOINTS else "other"
                self.metrics.observe_request(path, status[0], time.perf_counter() - start)

        await self.app(scope, receive, timed_send)


async def _follow(watcher: WeightsWatcher) -> None:
    """Poll the registry every ``watcher.interval`` seconds, on the event loop.

    A poll is a few system calls per domain run in one go between two requests; on the loop it
    never waits for the interpreter lock behind request handling, as a thread would on a busy
    machine, and a snapshot swap happens between requests.
    """
    while True:
        await asyncio.sleep(watcher.interval)
        try:
            watcher.poll()
        except Exception:  # the service must outlive any surprise in the registry; logged
            log.exception("weights poll failed")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.detail)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    return _error(500, "internal error")


def create_app(
    weights: str | os.PathLike[str],
    *,
    limits: Limits | None = None,
    interval: float = 0.2,
    watch: bool = True,
) -> Starlette:
    """The service as an ASGI application.

    Parameters
    ----------
    weights : str or os.PathLike
        A weights registry directory (it may hold no domain yet).
    limits : Limits, optional
        Request size bounds.
    interval : float
        Seconds between two polls of the registry.
    watch : bool
        Poll on the event loop while the application runs (its lifespan); with ``False``
        the registry is read once, and ``app.state.watcher.poll()`` looks again.
    """
    metrics = Metrics()

    def on_event(event: ReloadEvent) -> None:
        metrics.observe_reload(event)
        if event.ok:
            log.info("domain %s: serving %s", event.domain, event.label)
        else:
            log.error("domain %s: kept %s: %s", event.domain, event.label, event.message)

    watcher = WeightsWatcher(weights, interval=interval, on_event=on_event)
    watcher.poll()
    service = _Service(watcher, metrics, limits or Limits())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_follow(watcher)) if watch else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=[
            Route("/rerank", service.rerank, methods=["POST"]),
            Route("/rerank/batch", service.rerank_batch, methods=["POST"]),
            Route("/health", service.health, methods=["GET"]),
            Route("/weights", service.weights, methods=["GET"]),
            Route("/metrics", service.metrics_text, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.add_middleware(_Timing, metrics=metrics)
    app.state.watcher = watcher
    app.state.metrics = metrics
    return app


def app_from_environment() -> Starlette:
    """Application factory of the worker processes: the registry comes from the environment."""
    return create_app(os.environ[WEIGHTS_ENV], interval=float(os.environ.get(INTERVAL_ENV, "0.2")))
