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


async def register(url: str, pool: Any, agents: list[str], project_id: str) -> float:
    """The project and every agent, through the service token; seconds until the fold has every agent row."""
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
    while await scalar(pool, "SELECT COUNT(*) FROM agents") < len(agents):
        if time.monotonic() - started > 600:
            raise SystemExit("the fleet's registrations were not folded within 600 s")
        await asyncio.sleep(1)
    return time.monotonic() - started
