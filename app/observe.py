"""What every process shows an operator: GET /healthz, GET /readyz and GET /metrics (Prometheus).

The web serves them in its own application (webhooks/health.py); the worker and k8s-watch, which have no
HTTP API, serve them from `Probes.serve`: a small aiohttp runner on their own port. Each process has its own
CollectorRegistry (never prometheus_client's global one). `aiworker_ready` is the last readiness verdict (1 ready,
0 not; absent before the first): of /readyz, which the kubelet asks every few seconds, and in the worker also of
every 5 s sample. The alert on a process that is not ready reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
Verdict = tuple[bool, dict[str, Any]]
"""(healthy or ready, what was checked: name -> 'ok' or what is wrong)."""
Check = Callable[[], Awaitable[Verdict]]

# The exact Gitea event types of GITEA.md; any other type is counted as "other" (the label set stays bounded).
GITEA_TYPES = frozenset(
    {"create", "delete", "fork", "push", "wiki", "repository", "release", "package", "status", "workflow_run",
     "workflow_job", "issues", "issue_assign", "issue_label", "issue_milestone", "issue_comment",
     "pull_request_comment", "pull_request", "pull_request_assign", "pull_request_label", "pull_request_milestone",
     "pull_request_sync", "pull_request_review_request", "pull_request_review_approved",
     "pull_request_review_rejected", "pull_request_review_comment"}
)  # fmt: skip


def gitea_type_label(event_type: str) -> str:
    """A Gitea event type as a metric label: itself when it is one of GITEA.md's, else 'other'."""
    return event_type if event_type in GITEA_TYPES else "other"


class ReadyVerdict(Collector):
    """`aiworker_ready`: the last readiness verdict (1 ready, 0 not); absent until there is one, so that a process
    nobody asked yet is not reported as unready."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.value: float | None = None
        registry.register(self)

    def set(self, ready: bool) -> None:
        self.value = 1.0 if ready else 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.value is not None:
            yield GaugeMetricFamily(
                "aiworker_ready", "the last /readyz verdict of this process: 1 ready, 0 not", value=self.value
            )


def ready_gauge(registry: CollectorRegistry) -> ReadyVerdict:
    return ReadyVerdict(registry)


def metrics_response(registry: CollectorRegistry) -> web.Response:
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class Probes:
    """/healthz, /readyz and /metrics of a process without an HTTP API of its own."""

    def __init__(self, registry: CollectorRegistry, healthz: Check, readyz: Check) -> None:
        self.registry = registry
        self.healthz, self.readyz = healthz, readyz
        self.ready = ready_gauge(registry)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/healthz", self._healthz), web.get("/readyz", self._readyz), web.get("/metrics", self._metrics),
        ])  # fmt: skip
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, checks = await self.healthz()
        body = {"status": "ok" if healthy else "unhealthy", "checks": checks}
        return web.json_response(body, status=200 if healthy else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, checks = await self.readyz()
        self.ready.set(ready)
        return web.json_response({"status": "ready" if ready else "unready", "checks": checks}, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return metrics_response(self.registry)

    async def serve(self, host: str, port: int, what: str) -> web.AppRunner | None:
        """Listen on host:port (port 0: not at all); None when it cannot, which is logged (the process goes on)."""
        if port == 0:
            return None
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            log.error(
                "%s: cannot listen on %s:%d for /healthz, /readyz, /metrics (%s); is the port taken?", what, host, port, exc
            )
            return None
        log.info("%s: /healthz, /readyz and /metrics on http://%s:%d", what, host, port)
        return runner
