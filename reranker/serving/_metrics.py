"""The service's metrics in the Prometheus text exposition format (version 0.0.4).

Counters and histograms are updated by the event loop (requests) and by the weights watcher
(reloads); each update is a few dictionary operations under a lock. Every worker process keeps
its own figures, as Prometheus client libraries do without a shared store.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable

from reranker.serving._model import Snapshot
from reranker.serving._watcher import ReloadEvent

__all__ = ["LATENCY_BUCKETS", "Metrics"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""Upper bounds (seconds) of the request latency histogram buckets."""


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


class _Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def lines(self, name: str, **labels: str) -> Iterable[str]:
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            yield f"{name}_bucket{_labels(**labels, le=le)} {cumulative}"
        yield f"{name}_sum{_labels(**labels)} {self.total!r}"
        yield f"{name}_count{_labels(**labels)} {cumulative}"


class Metrics:
    """Request counts and latencies, hypotheses scored, reloads and failed reloads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.latency: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.hypotheses = 0
        self.reloads: defaultdict[str, int] = defaultdict(int)
        self.failed_reloads: defaultdict[str, int] = defaultdict(int)
        self.last_failure: dict[str, str] = {}

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        with self._lock:
            self.requests[(endpoint, str(status))] += 1
            self.latency[endpoint].observe(seconds)

    def count_hypotheses(self, n: int) -> None:
        """Count hypotheses scored."""
        with self._lock:
            self.hypotheses += n

    def observe_reload(self, event: ReloadEvent) -> None:
        """Count one reload of a domain, successful or refused."""
        with self._lock:
            if event.ok:
                self.reloads[event.domain] += 1
                self.last_failure.pop(event.domain, None)
            else:
                self.failed_reloads[event.domain] += 1
                self.last_failure[event.domain] = event.message

    def render(self, snapshot: Snapshot) -> str:
        """The exposition text, with the versions ``snapshot`` serves."""
        with self._lock:
            lines = [
                "# HELP reranker_requests_total Requests answered, by endpoint and status code.",
                "# TYPE reranker_requests_total counter",
            ]
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(
                    f"reranker_requests_total{_labels(endpoint=endpoint, status=status)} {n}"
                )
            lines += [
                "# HELP reranker_request_duration_seconds Time to answer a request.",
                "# TYPE reranker_request_duration_seconds histogram",
            ]
            for endpoint, hist in sorted(self.latency.items()):
                lines += hist.lines("reranker_request_duration_seconds", endpoint=endpoint)
            lines += [
                "# HELP reranker_hypotheses_scored_total Hypotheses scored.",
                "# TYPE reranker_hypotheses_scored_total counter",
                f"reranker_hypotheses_scored_total {self.hypotheses}",
            ]
            lines += self._weights_lines(snapshot)
        return "\n".join(lines) + "\n"

    def _weights_lines(self, snapshot: Snapshot) -> list[str]:
        lines = [
            "# HELP reranker_serving_version Version of each domain's weights being served "
            "(label 'weights' as in responses; domains not listed are scored with R0).",
            "# TYPE reranker_serving_version gauge",
        ]
        for domain, model in sorted(snapshot.models.items()):
            labels = _labels(domain=domain, weights=model.label)
            lines.append(f"reranker_serving_version{labels} {model.version}")
        lines += [
            "# HELP reranker_weights_generation Snapshots swapped in since start.",
            "# TYPE reranker_weights_generation gauge",
            f"reranker_weights_generation {snapshot.generation}",
            "# HELP reranker_weights_reloads_total Domain weights loaded and swapped in.",
            "# TYPE reranker_weights_reloads_total counter",
        ]
        for domain, n in sorted(self.reloads.items()):
            lines.append(f"reranker_weights_reloads_total{_labels(domain=domain)} {n}")
        lines += [
            "# HELP reranker_weights_reload_failures_total Versions refused (invalid); the "
            "domain kept its previous weights.",
            "# TYPE reranker_weights_reload_failures_total counter",
        ]
        for domain, n in sorted(self.failed_reloads.items()):
            lines.append(f"reranker_weights_reload_failures_total{_labels(domain=domain)} {n}")
        return lines
