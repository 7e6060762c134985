"""The fleet benchmark's set-up: the project and every agent registered through the service token."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

TOKEN_KEY, SERVICE_TOKEN = "fleet-agent-key", "fleet-service-token"


async def post(session: Any, url: str, auth: str, body: Any) -> None:
    async with session.post(f"{url}/events", json=body, headers={"Authorization": f"Bearer {auth}"}) as response:
        if response.status != 202:
            raise SystemExit(f"set-up request answered {response.status}: {(await response.text())[:300]}")


async def scalar(pool: Any, sql: str, params: list[Any] | None = None) -> Any:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, params or [])
        row = await cur.fetchone()
        await conn.commit()
    return row[0] if row else None


REGISTER_AHEAD_SECONDS = 30.0
"""A ramp registers each phase's new agents this long before the phase starts: their rows exist when their first
heartbeats come, and they are not silent long enough to be swept offline (60 s) before then."""


async def register(url: str, pool: Any, agents: list[str], project_id: str, *, expected: int | None = None) -> float:
    """The project and these agents, through the service token; seconds until the fold has `expected` agent rows
    (default: these) and the relay has published every transition."""
    import aiohttp

    started = time.monotonic()
    now = datetime.now(UTC).isoformat()
    async with aiohttp.ClientSession() as session:
        project = {"id": uuid.uuid4().hex, "type": "project.upserted", "time": now, "project_id": project_id, "name": "fleet",
                   "k8s_namespace": "fleet"}  # fmt: skip
        await post(session, url, SERVICE_TOKEN, project)
        for i in range(0, len(agents), 1000):
            await post(session, url, SERVICE_TOKEN, [
                {"id": uuid.uuid4().hex, "type": "agent.registered", "time": now, "agent_id": a, "pod_name": f"pod-{a}",
                 "capabilities": ["python", "go"]} for a in agents[i : i + 1000]
            ])  # fmt: skip
    rows = expected or len(agents)
    await _until(pool, "SELECT COUNT(*) >= %s FROM agents", [rows], started, "the fleet's registrations were not folded")
    # Every registration is a transition the relay publishes (20,000 outbox rows for 20,000 agents): the load starts
    # once they are out, or the first phase would measure the relay's backlog beside the fold.
    await _until(pool, "SELECT COUNT(*) = 0 FROM outbox WHERE published_at IS NULL", [], started,
                 "the fleet's registration transitions were not published")  # fmt: skip
    return time.monotonic() - started


async def _until(pool: Any, sql: str, params: list[Any], started: float, failure: str, limit: float = 600.0) -> None:
    """Poll `sql` (one true-or-false value) every second until it is true; SystemExit `limit` s after `started`."""
    while not await scalar(pool, sql, params):
        if time.monotonic() - started > limit:
            raise SystemExit(f"{failure} within {limit:.0f} s")
        await asyncio.sleep(1)
