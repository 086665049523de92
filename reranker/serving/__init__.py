"""Serving re-ranker scores over HTTP, with each domain's weights updated live.

``reranker serve --weights DIR`` runs :func:`create_app` under uvicorn. The service follows a
weights registry (docs/formats.md#weights-registry): when a domain publishes or rolls back, its new
current version is served within a poll interval (0.2 s by default), without a restart, without
failing a request and without touching other domains; a version that fails validation is never
served.

Scoring one n-best is :meth:`Snapshot.score`; it gives the scores and ranks of ``reranker
rerank`` on the same hypotheses and weights.
"""

from __future__ import annotations

from reranker.serving._app import WEIGHTS_ENV, app_from_environment, create_app
from reranker.serving._metrics import Metrics
from reranker.serving._model import DomainModel, NBest, ScoredNBest, Snapshot
from reranker.serving._requests import Limits, RequestError, decode_json, parse_batch, parse_nbest
from reranker.serving._watcher import ReloadEvent, WeightsWatcher

__all__ = [
    "WEIGHTS_ENV",
    "DomainModel",
    "Limits",
    "Metrics",
    "NBest",
    "ReloadEvent",
    "RequestError",
    "ScoredNBest",
    "Snapshot",
    "WeightsWatcher",
    "app_from_environment",
    "create_app",
    "decode_json",
    "parse_batch",
    "parse_nbest",
]
