"""GET /healthz (the process answers), GET /readyz (it can make events durable), GET /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from asyncmy.errors import MySQLError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webhooks.state import DB_POOL, METRICS, PUBLISHER, SINK


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _database_problem(pool: Any) -> str | None:
    try:
        async with asyncio.timeout(2.0), pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()
            await conn.rollback()
    except (MySQLError, OSError, TimeoutError) as exc:
        return f"database unreachable: {exc!r}"
    return None


async def readyz(request: web.Request) -> web.Response:
    """503 only while neither the broker nor the spool can take events; the database is reported, not required.

    The database only serves the Gitea path's project secrets, which are cached; a database outage is the same
    for every web process, so taking this one out of the load balancer would not help anyone.
    """
    publisher, sink = request.app[PUBLISHER], request.app[SINK]
    broker = await publisher.probe(timeout=1.0)
    spool = sink.spool
    checks: dict[str, str] = {
        "broker": "ok" if broker else f"unreachable: {publisher.last_error_text or 'producer not started'}",
        "spool": (
            f"ok ({spool.records} records, {spool.disk_bytes} of {spool.max_bytes} bytes)" if sink.spool_usable
            else sink.spool_error or ("disabled (AIWORKER_SPOOL_MAX_BYTES=0)" if not spool.enabled else
                                      f"full ({spool.disk_bytes} of {spool.max_bytes} bytes)")
        ),
        "database": await _database_problem(request.app[DB_POOL]) or "ok",
    }  # fmt: skip
    if checks["database"] != "ok":
        checks["database"] += "; Gitea deliveries of repositories whose secret is not cached get 503"
    if not broker and not sink.spool_usable:
        reason = "the broker does not answer and the local spool cannot take events, so nothing can be made durable"
        return web.json_response({"status": "unready", "reason": reason, "checks": checks}, status=503)
    return web.json_response({"status": "ready", "checks": checks})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
