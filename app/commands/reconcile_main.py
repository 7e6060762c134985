"""The `reconcile` process: the database pool, the web's producer, the Gitea client, /metrics, the loop or one pass."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web
from asyncmy.errors import MySQLError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.commands.gitea_client import GiteaClient
from app.commands.reconcile import ProjectResult, ReconcileError, ReconcileMetrics, Reconciler
from app.settings import Settings, SettingsError
from db.pool import create_pool, describe_error
from webhooks.publisher import KafkaPublisher

log = logging.getLogger(__name__)


def check_settings(settings: Settings) -> None:
    if not settings.gitea_url:
        raise SettingsError("AIWORKER_GITEA_URL is empty; set it to Gitea's base URL (https://git.example.com)")
    if not settings.gitea_token.get_secret_value():
        raise SettingsError("AIWORKER_GITEA_TOKEN is empty; create a token with read-only repository access (README, Reconcile)")


def summary(results: list[ProjectResult]) -> str:
    lines = [
        f"{r.project_id}: " + (f"FAILED: {r.error}" if r.error else f"{len(r.records)} record(s) published")
        + f" ({r.api_requests} API request(s))"
        for r in results
    ]  # fmt: skip
    return "\n".join(lines) or "no active project names a Gitea repository"


async def _serve_metrics(settings: Settings, metrics: ReconcileMetrics) -> web.AppRunner:
    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    return runner


async def reconcile(settings: Settings, bootstrap: str, *, once: bool) -> list[ProjectResult]:
    check_settings(settings)
    metrics = ReconcileMetrics()
    pool = await create_pool(settings.database_url.get_secret_value(), minsize=1, maxsize=2)
    publisher = KafkaPublisher(settings, bootstrap)
    runner = None
    try:
        await publisher.start()
        async with GiteaClient(
            settings.gitea_url, settings.gitea_token.get_secret_value(), timeout=settings.gitea_timeout
        ) as client:
            reconciler = Reconciler(settings, pool, publisher, client, metrics)
            if once:
                return await reconciler.run_once()
            runner = await _serve_metrics(settings, metrics)
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stopping.set)
            log.info("reconcile: every %ds; metrics on http://%s:%d/metrics", settings.reconcile_seconds,
                     settings.http_host, settings.http_port)  # fmt: skip
            await reconciler.loop(stopping)
            return []
    finally:
        if runner is not None:
            await runner.cleanup()
        await publisher.stop()
        pool.close()
        await pool.wait_closed()


def run_reconcile(settings: Settings, bootstrap: str, *, once: bool) -> int:
    """`--once`: one pass, a line per project, exit 1 when a project failed; else the loop until SIGTERM."""
    try:
        results = asyncio.run(reconcile(settings, bootstrap, once=once))
    except (MySQLError, OSError) as exc:
        raise ReconcileError(
            f"the database of AIWORKER_DATABASE_URL cannot be read ({describe_error(exc)}); nothing was reconciled, "
            "run again once it is back"
        ) from exc
    if once:
        print(summary(results), file=sys.stdout if all(r.error is None for r in results) else sys.stderr)
        return 0 if all(r.error is None for r in results) else 1
    return 0
