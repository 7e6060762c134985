"""SQL of the worker's gauges: cheap, indexed reads of stored positions, the outbox, parked events and agents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AGENT_STATUSES = ("initializing", "idle", "busy", "error", "offline")


@dataclass(frozen=True, slots=True)
class Backlog:
    """Rows waiting (outbox: unpublished; parked_events: all) and the age of the oldest, s (0 when none)."""

    rows: int
    oldest_seconds: float


async def stored_positions(cur: Any, consumer: str) -> dict[tuple[str, int], int]:
    """The next offset the fold stored per (topic, partition) for `consumer` (primary key prefix)."""
    await cur.execute("SELECT topic, `partition`, next_offset FROM fold_positions WHERE consumer = %s", [consumer])
    return {(str(topic), int(partition)): int(offset) for topic, partition, offset in await cur.fetchall()}


async def _age(cur: Any, sql: str) -> float:
    await cur.execute(sql)
    row = await cur.fetchone()
    return max(0.0, float(row[0])) if row and row[0] is not None else 0.0


async def outbox_backlog(cur: Any) -> Backlog:
    """Unpublished outbox rows (index idx_outbox_unpublished) and the age of the oldest (the lowest id), by the
    server's clock (no skew between hosts)."""
    await cur.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
    rows = int((await cur.fetchone())[0])
    oldest = await _age(
        cur,
        "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, CURRENT_TIMESTAMP(3)) / 1e6 FROM outbox"
        " WHERE published_at IS NULL ORDER BY id LIMIT 1",
    )
    return Backlog(rows, oldest)


async def parked_backlog(cur: Any) -> Backlog:
    """Parked events and the age of the oldest (index idx_parked_events_parked_at)."""
    await cur.execute("SELECT COUNT(*) FROM parked_events")
    rows = int((await cur.fetchone())[0])
    oldest = await _age(cur, "SELECT TIMESTAMPDIFF(MICROSECOND, MIN(parked_at), CURRENT_TIMESTAMP(3)) / 1e6 FROM parked_events")
    return Backlog(rows, oldest)


async def agents_by_status(cur: Any) -> dict[str, int]:
    """Agents per status (index idx_status); every status of the machine, 0 when none."""
    await cur.execute("SELECT status, COUNT(*) FROM agents GROUP BY status")
    counts = dict.fromkeys(AGENT_STATUSES, 0)
    counts.update({str(status): int(count) for status, count in await cur.fetchall()})
    return counts
