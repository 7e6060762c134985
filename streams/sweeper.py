"""The stale-agent sweeper: agents with no heartbeat received for AIWORKER_AGENT_OFFLINE_SECONDS go offline, once
(by the ingest clock, streams/liveness.py: neither the agent's clock nor a lagging fold makes an agent offline). A
heartbeat within AIWORKER_HEARTBEAT_GRANULARITY_SECONDS of the stored one writes no row (streams/machines/agent.py),
so the silence must last that much longer: an agent goes offline at most the granularity late, never early.

One worker sweeps at a time (a named server lock, like the outbox relay). Each agent goes offline
through its machine (`agent.mark_offline`) in a transaction that locks its row, so a heartbeat folded
meanwhile wins; the transition's id derives from the heartbeat the sweeper saw, so a second sweep, or
a second worker, cannot emit it twice. The sweeper also sends events parked longer than
AIWORKER_PARK_SECONDS to the dlq: the row they wait for never came, and deletes the fold's trace rows older
than AIWORKER_TRACE_RETENTION_SECONDS (every few minutes, in batches). A failing sweep is trouble or a hold
(db/errors.py), retried; nothing ends the sweeper but `stopping`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncmy.cursors import DictCursor

from app import topics
from app.settings import Settings
from db import liveness as liveness_sql
from db import outbox, trace
from db import parking as parked_sql
from db.errors import Backoff, Health
from db.pool import parse_database_url
from streams import decode, liveness
from streams.handlers.common import Context, emit
from streams.machines import Changed, naive_utc
from streams.machines import agent as agent_machine
from streams.route import Source
from streams.tracing import expired_row
from streams.uow import UnitOfWork

log = logging.getLogger(__name__)
SOURCE = "aiworker-events/sweeper"
PRUNE_EVERY_SECONDS = 300.0


class Sweeper:
    def __init__(self, pool: Any, settings: Settings, health: Health | None = None) -> None:
        self.pool = pool
        self.health = health or Health()
        self.settings = settings
        self.lock_name = f"aiworker_sweeper:{parse_database_url(settings.database_url.get_secret_value()).database}"[:64]
        self.offline = 0
        self.expired = 0

    async def sweep_once(self, now: datetime | None = None) -> int:
        """Move every stale agent offline in one transaction; the number moved. Stale by the ingest clock
        (streams/liveness.py): `now` (the wall clock) only where an agent's partition has no clock of its own."""
        wall = now or datetime.now(UTC)
        # A heartbeat within the granularity of the stored one writes no row: the stored times may be that much behind
        # the newest heartbeat, so the silence must last that much longer to be sure (late by at most it, never early).
        silence = self.settings.agent_offline_seconds + self.settings.heartbeat_granularity_seconds
        async with self.pool.acquire() as conn:
            try:
                await conn.begin()
                async with conn.cursor(DictCursor) as cur:
                    clocks = await liveness_sql.partition_clocks(cur)
                    now_of: dict[str, datetime] = {}
                    for agent in await liveness_sql.live_agents(cur, 10_000):
                        partition = agent["p"]
                        at = naive_utc(wall) if partition is None else liveness.ingest_now(
                            clocks.get(int(partition)), wall, self.settings.agent_clock_lag_seconds
                        )  # fmt: skip
                        if agent["seen"] is None or at - agent["seen"] >= timedelta(seconds=silence):
                            now_of[agent["id"]] = at
                    ids = sorted(now_of)[:500]
                    uow = UnitOfWork(cur)
                    uow.record_trace = self.settings.trace_retention_seconds > 0
                    await uow.preload("agents", ids)
                    ctx = Context(uow, SOURCE, self.settings.topic)
                    moved = 0
                    for agent_id in ids:
                        row = await uow.get("agents", agent_id)
                        if row is None:
                            continue
                        at = now_of[agent_id].replace(tzinfo=UTC)
                        outcome = agent_machine.mark_offline(row, at, silence)
                        if isinstance(outcome, Changed):
                            emit(ctx, "agents", outcome, agent_machine.stale_event(row, at))
                            moved += 1
                    expired = await parked_sql.take_expired(cur, self.settings.park_seconds)
                    for event in expired:
                        source = Source(
                            event.source_topic,
                            event.source_partition,
                            event.source_offset,
                            event.source_key,
                            event.payload,
                            scope=event.scope,
                        )
                        why = f"waited {self.settings.park_seconds}s for {event.waits_table} {event.waits_id}, which never came"
                        uow.outbox.append(decode.dlq_row(source, why, self.settings.topic(topics.DLQ)))
                        uow.outcomes.append(expired_row(event, why, uow.outbox[-1][0]))
                    await uow.flush()
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
        self.offline += moved
        self.expired += len(expired)
        return moved

    async def prune_trace(self, conn: Any) -> int:
        """Delete trace rows older than TRACE_RETENTION_SECONDS, in batches of 10,000 (each its own transaction)."""
        total = 0
        while (deleted := await trace.prune(conn, self.settings.trace_retention_seconds)) > 0:
            total += deleted
            if deleted < 10_000:
                break
        if total:
            log.info("sweeper: %d trace row(s) older than %ds deleted", total, self.settings.trace_retention_seconds)
        return total

    async def run(self, stopping: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Until `stopping`: hold the sweeper lock (or wait for it) and sweep every few seconds."""
        interval = max(1.0, min(10.0, self.settings.agent_offline_seconds / 6))
        backoff = Backoff(interval, interval * 4)
        while not stopping.is_set():
            try:
                async with self.pool.acquire() as conn:
                    if not await outbox.acquire_lock(conn, self.lock_name):
                        self.health.ok("sweeper")
                        await _sleep(stopping, interval * 2)
                        continue
                    log.info("sweeper: this worker marks stale agents offline")
                    pruned_at = 0.0
                    while not stopping.is_set():
                        if await self.sweep_once() and wake is not None:
                            wake.set()
                        if self.settings.trace_retention_seconds and time.monotonic() - pruned_at > PRUNE_EVERY_SECONDS:
                            await self.prune_trace(conn)
                            pruned_at = time.monotonic()
                        self.health.ok("sweeper")
                        backoff.reset()
                        await _sleep(stopping, interval)
            except Exception as exc:  # noqa: BLE001 - db/errors.py: trouble or a hold, retried either way
                self.health.failed("sweeper", exc, backoff.next)
                await backoff.sleep(stopping)


async def _sleep(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
