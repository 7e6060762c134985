"""k8s-watch's /healthz, /readyz and /metrics (on AIWORKER_K8S_WATCH_HTTP_PORT).

/healthz: the process answers (a watch that fails reconnects by itself, with backoff), and no collection is held
(db/errors.py: a failure that is not trouble, such as an object the mapping cannot read). /readyz: every
collection has listed and is watching now (not reconnecting after an error). Metrics: events sent by type,
watch errors and relists per collection, and `aiworker_ready`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from app.observe import Probes, Verdict
from app.settings import Settings

if TYPE_CHECKING:
    from app.commands.k8s_watch import Watcher


class _WatchCollector(Collector):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def collect(self) -> Iterator[CounterMetricFamily]:
        sent = CounterMetricFamily("aiworker_k8s_events_sent", "events k8s-watch sent to the input topics", labels=["type"])
        for event_type, count in sorted(self.watcher.sent_by_type.items()):
            sent.add_metric([event_type], count)
        yield sent
        errors = CounterMetricFamily(
            "aiworker_k8s_watch_errors", "list/watch failures (each followed by a reconnect)", labels=["collection"]
        )
        relists = CounterMetricFamily(
            "aiworker_k8s_watch_relists", "full lists (at start and after 410 Gone)", labels=["collection"]
        )
        for collection in self.watcher.collections:
            errors.add_metric([collection.name], collection.errors)
            relists.add_metric([collection.name], collection.relists)
        yield errors
        yield relists


def probes(watcher: Watcher) -> Probes:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_WatchCollector(watcher))

    async def healthz() -> Verdict:
        checks: dict[str, object] = {"collections": len(watcher.collections)}
        for name, hold in sorted(watcher.health.held().items()):  # db/errors.py: a failure no retry cured so far
            checks[f"held: {name}"] = f"held since {hold.since:.0f} (epoch s): {hold.reason}"
        return watcher.health.healthy, checks

    async def readyz() -> Verdict:
        checks = {c.name: c.problem or "watching" for c in watcher.collections}
        return all(c.problem is None for c in watcher.collections), checks

    return Probes(registry, healthz, readyz)


async def serve_probes(settings: Settings, watcher: Watcher) -> web.AppRunner | None:
    return await probes(watcher).serve(settings.http_host, settings.k8s_watch_http_port, "k8s-watch")
