"""GET /healthz (the process answers) and GET /readyz (broker and database reachable)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from asyncmy.errors import MySQLError

from webhooks.state import DB_POOL, PUBLISHER


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _database_ok(pool: Any) -> str | None:
    try:
        async with asyncio.timeout(2.0), pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()
    except (MySQLError, OSError, TimeoutError) as exc:
        return f"database unreachable: {exc!r}"
    return None


async def _broker_ok(publisher: Any) -> str | None:
    producer = publisher.producer
    if producer is None:
        return "producer not started"
    try:
        async with asyncio.timeout(2.0):
            await producer.client.fetch_all_metadata()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; it is reported, not swallowed
        return f"broker unreachable: {exc!r}"
    return None


async def readyz(request: web.Request) -> web.Response:
    problems = [p for p in (await _broker_ok(request.app[PUBLISHER]), await _database_ok(request.app[DB_POOL])) if p]
    if problems:
        return web.json_response({"status": "unready", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})
