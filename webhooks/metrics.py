"""GET /metrics: Prometheus text from a registry of the application (never the process-global default one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.observe import gitea_type_label, ready_gauge

MAX_CACHED_CHILDREN = 1024
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class _SpoolCollector(Collector):
    def __init__(self, depth: Callable[[], tuple[int, int]]) -> None:
        self.depth = depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        records, size = self.depth()
        yield GaugeMetricFamily("aiworker_spool_records", "records in the local spool waiting for the broker", value=records)
        yield GaugeMetricFamily("aiworker_spool_bytes", "bytes of the local spool on disk", value=size)


class _ProduceCollector(Collector):
    def __init__(self, acknowledged: Callable[[], int]) -> None:
        self.acknowledged = acknowledged

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "aiworker_produce_records", "records of requests the broker acknowledged (the spool drain's: "
            "aiworker_spool_drained_records)", value=self.acknowledged(),
        )  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "aiworker_http_requests", "HTTP requests by route, method and status", ["route", "method", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.accepted = Counter(
            "aiworker_events_accepted", "events accepted (made durable) by source and type", ["source", "type"],
            registry=self.registry,
        )  # fmt: skip
        self.spooled = Counter("aiworker_spool_appended_records", "records written to the spool", registry=self.registry)
        self.drained = Counter(
            "aiworker_spool_drained_records", "spooled records the broker acknowledged", registry=self.registry
        )
        self.drain_failures = Counter(
            "aiworker_spool_drain_failures", "spool drain rounds that made no progress and backed off, by cause "
            "(broker: it does not answer; spool: the spool's disk failed; "
            "error: anything else, db/errors.py)", ["cause"], registry=self.registry,
        )  # fmt: skip
        self.dead_lettered = Counter(
            "aiworker_spool_dead_lettered_records", "spooled records the broker refused for good, sent to the dlq",
            registry=self.registry,
        )  # fmt: skip
        self.produce_seconds = Histogram(
            "aiworker_produce_seconds", "time until the broker acknowledged a request's records (outcome ok, error, drain)",
            ["outcome"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        # The children the hot paths use, looked up once (labels() takes a lock and builds a key every time).
        self.produce_ok = self.produce_seconds.labels("ok")
        self.produce_error = self.produce_seconds.labels("error")
        self.ready = ready_gauge(self.registry)
        self.limited = Counter(
            "aiworker_rate_limited_requests", "POST /events requests refused by a caller's rate limit (429 or 413), by "
            "caller (agent or service) and budget (events or bytes)", ["caller", "budget"], registry=self.registry,
        )  # fmt: skip
        for caller in ("agent", "service"):  # every label pair exported from the start, at 0
            for budget in ("events", "bytes"):
                self.limited.labels(caller, budget)
        self._requests: dict[tuple[str, str, str], Any] = {}
        self._accepted_gitea: dict[str, Any] = {}

    def request_done(self, route: str, method: str, status: int) -> None:
        """Count one answered request."""
        key = (route, method, str(status))
        child = self._requests.get(key)
        if child is None:
            child = self.requests.labels(*key)
            if len(self._requests) < MAX_CACHED_CHILDREN:
                self._requests[key] = child
        child.inc()

    def rate_limited(self, service: bool, budget: str) -> None:
        self.limited.labels("service" if service else "agent", budget).inc()

    def watch_limiter(self, callers: Callable[[], int]) -> None:
        """Report how many callers' buckets the rate limiter holds, at every scrape."""
        gauge = Gauge(
            "aiworker_rate_limit_callers", "callers whose rate-limit buckets this process holds", registry=self.registry
        )
        gauge.set_function(callers)

    def watch_spool(self, depth: Callable[[], tuple[int, int]]) -> None:
        """Report spool depth (records, bytes) at every scrape."""
        self.registry.register(_SpoolCollector(depth))

    def watch_produce(self, acknowledged: Callable[[], int]) -> None:
        """Report the records of requests the broker acknowledged, at every scrape."""
        self.registry.register(_ProduceCollector(acknowledged))

    def gitea_accepted(self, event_type: str) -> None:
        label = gitea_type_label(event_type)
        child = self._accepted_gitea.get(label)
        if child is None:
            child = self._accepted_gitea[label] = self.accepted.labels("gitea", label)
        child.inc()
