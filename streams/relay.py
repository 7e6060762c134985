"""The outbox relay: publishes committed transitions and dlq records in commit order, then marks them.

One relay publishes at a time across all workers (a named server lock), so the order of rows in
the outbox is the order on the topics. A crash between publish and mark re-publishes the same
CloudEvent ids (at least once, duplicates recognisable by id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError
from asyncmy.errors import MySQLError

from db import outbox
from db.pool import parse_database_url

log = logging.getLogger(__name__)
Send = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]


class OutboxRelay:
    def __init__(self, pool: Any, send: Send, *, database_url: str, batch_size: int, prune_after_seconds: int = 3600):
        self.pool = pool
        self.send = send
        self.batch_size = batch_size
        self.prune_after_seconds = prune_after_seconds
        self.lock_name = f"aiworker_outbox_relay:{parse_database_url(database_url).database}"[:64]
        self.wake = asyncio.Event()
        self.published = 0

    async def publish_once(self, conn: Any) -> int:
        """Publish one batch of unpublished rows and mark them; the number published."""
        rows = await outbox.unpublished(conn, self.batch_size)
        if not rows:
            return 0
        acks = [await self.send(row["topic"], row["message_key"].encode(), bytes(row["payload"])) for row in rows]
        await asyncio.gather(*acks)
        await outbox.mark_published(conn, [int(row["id"]) for row in rows])
        self.published += len(rows)
        return len(rows)

    async def run(self, stopping: asyncio.Event, poll_seconds: float = 0.5) -> None:
        """Until `stopping`: hold the relay lock (or wait for it), publish, prune now and then."""
        backoff = 0.5
        while not stopping.is_set():
            try:
                async with self.pool.acquire() as conn:
                    if not await outbox.acquire_lock(conn, self.lock_name):
                        await self._sleep(stopping, 2.0)
                        continue
                    log.info("outbox relay: this worker publishes")
                    rounds = 0
                    while not stopping.is_set():
                        count = await self.publish_once(conn)
                        backoff = 0.5
                        rounds += 1
                        if rounds % 600 == 0:
                            await outbox.prune(conn, self.prune_after_seconds)
                        if count < self.batch_size:
                            self.wake.clear()
                            await self._sleep(stopping, poll_seconds, self.wake)
            except (MySQLError, KafkaError, OSError, ConnectionError) as exc:
                log.warning("outbox relay: %r; retrying in %.1fs", exc, backoff)
                await self._sleep(stopping, backoff)
                backoff = min(backoff * 2, 10.0)

    @staticmethod
    async def _sleep(stopping: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
        waiters = [asyncio.ensure_future(stopping.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
