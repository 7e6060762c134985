"""SQL of the sweeper's ingest clock (streams/liveness.py): when heartbeats were received, per agent.events partition."""

from __future__ import annotations

from datetime import datetime
from typing import Any


async def partition_clocks(cur: Any) -> dict[int, datetime]:
    """agent.events partition -> the newest received time of a heartbeat folded from it (how far it is read)."""
    await cur.execute(
        "SELECT last_seen_partition AS p, MAX(last_seen_at) AS clock FROM agents"
        " WHERE last_seen_partition IS NOT NULL GROUP BY last_seen_partition"
    )
    return {int(row["p"]): row["clock"] for row in await cur.fetchall() if row["clock"] is not None}


async def live_agents(cur: Any, limit: int) -> list[dict[str, Any]]:
    """Agents not offline: id, partition and when they were last seen (received, else their own heartbeat time)."""
    await cur.execute(
        "SELECT id, last_seen_partition AS p, COALESCE(last_seen_at, last_heartbeat, updated_at, created_at) AS seen"
        " FROM agents WHERE status <> 'offline' ORDER BY id LIMIT %s",
        [limit],
    )
    return list(await cur.fetchall())
