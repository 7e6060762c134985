"""Liveness by the stream's clock (CONTRACT.md: offline when no heartbeat was *received* for AGENT_OFFLINE_SECONDS).

Received: each heartbeat or registration folded stamps its agent with the record's broker timestamp (the web's
clock when it produced the record, or the broker's with LogAppendTime) and the agent.events partition it came on
(`last_seen_at`, `last_seen_partition`); the agent's own `time` only orders its heartbeats. The sweeper's "now"
for an agent is the clock of its partition: the newest received time folded from it, so a fold that lags behind
ingest (held back, catching up) moves every agent's "now" back with it and marks none offline falsely; an agent
that stopped sending while others on its partition go on is offline after AGENT_OFFLINE_SECONDS of their
heartbeats. A partition whose agents all fell silent has no clock that moves: there the worker's wall clock minus
AGENT_CLOCK_LAG_SECONDS (the fold lag this tolerates) takes over, so they go offline that much later. An agent
never received (rows from before, or records without a timestamp) is judged by its heartbeat's own time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.agent_events import AgentHeartbeat, AgentRegistered
from streams.machines import naive_utc
from streams.route import Source
from streams.uow import UnitOfWork


async def received(uow: UnitOfWork, item: object, source: Source, granularity: float = 0.0) -> None:
    """Stamp the agent of a folded heartbeat or registration with when (and on which partition) it was received; not
    when that moves `last_seen_at` forward by less than `granularity` seconds on the same partition and the row is not
    written anyway (a heartbeat that changes nothing else then writes no row: AIWORKER_HEARTBEAT_GRANULARITY_SECONDS)."""
    if not isinstance(item, AgentHeartbeat | AgentRegistered) or source.timestamp <= 0:
        return
    row = await uow.get("agents", item.agent_id)
    at = naive_utc(datetime.fromtimestamp(source.timestamp, UTC))
    if row is None or (row.last_seen_at is not None and at <= row.last_seen_at):
        return
    near = row.last_seen_at is not None and at - row.last_seen_at < timedelta(seconds=granularity)
    if near and row.last_seen_partition == source.partition and not uow.writes("agents", row.id):
        return
    uow.put("agents", replace(row, last_seen_at=at, last_seen_partition=source.partition))


def ingest_now(clock: datetime | None, wall: datetime, lag_seconds: int) -> datetime:
    """The sweeper's "now" for an agent whose partition's clock is `clock` (None: it has none): see the docstring."""
    floor = naive_utc(wall) - timedelta(seconds=lag_seconds)
    return floor if clock is None else max(clock, floor)
