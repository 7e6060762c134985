"""The outbox relay: publishes committed transitions and dlq records in commit order, then marks them.

One relay publishes at a time across all workers (a named server lock), so the order of rows in
the outbox is the order on the topics. A crash between publish and mark re-publishes the same
CloudEvent ids (at least once, duplicates recognisable by id).

A row the broker can never take (too large for it, an invalid topic: errors that no retry cures) must
not hold up every row behind it: it is replaced, in place, by a small dlq note naming the outbox row,
its event id, topic, size and the error (logged at ERROR), and the rows published beside it are marked.
Trouble that a retry may cure (broker down, timeouts) publishes nothing new and is retried with backoff; any
other failure holds the relay (db/errors.py: unhealthy, retried with backoff), and nothing ends it but `stopping`.

Transitions are CloudEvents in the Kafka protocol binding's structured mode, which requires the record header
`content-type: application/cloudevents+json; charset=UTF-8` (consumers that detect the mode from the headers
refuse records without it). The header is added here, by topic, so the outbox rows stay as they were: every
row not bound for the dlq is a CloudEvent (streams/cloudevents.py); dlq records are plain JSON notes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)

from db import outbox
from db.errors import Backoff, Health
from db.pool import parse_database_url

log = logging.getLogger(__name__)
Headers = list[tuple[str, bytes]]
Publish = Callable[[str, bytes, bytes, Headers], Awaitable[Awaitable[Any]]]
"""(topic, key, value, headers) -> the broker's acknowledgement to await."""
STRUCTURED = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
"""The record headers of a structured-mode CloudEvent (CloudEvents Kafka protocol binding, 3.2)."""
# What no retry cures: the row itself is unpublishable.
UNPUBLISHABLE = (
    MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError, InvalidTopicError, CorruptRecordException,
    UnsupportedForMessageFormatError,
)  # fmt: skip
NOTE_NAMESPACE = uuid.UUID("3d0c1f7e-52a4-4c59-9d0e-8f3b7a61c2d4")


def unpublishable_note(row: dict[str, Any], error: BaseException) -> bytes:
    """The dlq note that replaces an outbox row the broker cannot take (no `source`: not for the replay)."""
    payload = bytes(row["payload"])
    body = {
        "id": str(uuid.uuid5(NOTE_NAMESPACE, str(row["event_id"]))),
        "reason": f"outbox row {row['id']} could not be published to {row['topic']}: {error!r}",
        "outbox": {
            "id": int(row["id"]), "event_id": row["event_id"], "topic": row["topic"], "key": row["message_key"],
            "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(), "head": payload[:512].decode("utf-8", "replace"),
        },
        "source": None,
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


class OutboxRelay:
    def __init__(
        self, pool: Any, send: Publish, *, database_url: str, batch_size: int, dlq_topic: str, prune_after_seconds: int = 3600,
        health: Health | None = None,
    ):  # fmt: skip
        self.pool = pool
        self.dlq_topic = dlq_topic
        self.send = send
        self.batch_size = batch_size
        self.prune_after_seconds = prune_after_seconds
        self.lock_name = f"aiworker_outbox_relay:{parse_database_url(database_url).database}"[:64]
        self.wake = asyncio.Event()
        self.published = 0
        self.unpublishable = 0
        """Rows replaced by a dlq note because the broker cannot take them."""
        self.health = health or Health()

    async def publish_once(self, conn: Any) -> int:
        """Publish one batch of unpublished rows and mark them; the number published."""
        rows = await outbox.unpublished(conn, self.batch_size)
        if not rows:
            return 0
        outcomes: list[BaseException | None] = []
        acks: list[Awaitable[Any]] = []
        for row in rows:
            try:
                headers = [] if row["topic"] == self.dlq_topic else STRUCTURED
                acks.append(await self.send(row["topic"], row["message_key"].encode(), bytes(row["payload"]), headers))
                outcomes.append(None)
            except UNPUBLISHABLE as exc:  # refused before it was sent (e.g. larger than max_request_size)
                outcomes.append(exc)
        results = iter(await asyncio.gather(*acks, return_exceptions=True))
        outcomes = [outcome if outcome is not None else _error(next(results)) for outcome in outcomes]
        retry = next((e for e in outcomes if e is not None and not isinstance(e, UNPUBLISHABLE)), None)
        if retry is not None:
            raise retry  # may be cured by waiting: nothing is marked, the batch is published again (same ids)
        bad = [(row, error) for row, error in zip(rows, outcomes, strict=True) if error is not None]
        for row, error in bad:
            log.error(
                "outbox relay: row %s (event %s, %s, %d bytes) cannot be published: %r; replaced by a dlq note",
                row["id"], row["event_id"], row["topic"], len(bytes(row["payload"])), error,
                extra={"event_id": row["event_id"], "topic": row["topic"], "outcome": "unpublishable"},
            )  # fmt: skip
            await outbox.replace_by_note(conn, int(row["id"]), self.dlq_topic, unpublishable_note(row, error))
            self.unpublishable += 1
        done = [int(row["id"]) for row, error in zip(rows, outcomes, strict=True) if error is None]
        await outbox.mark_published(conn, done)
        self.published += len(done)
        return len(rows)

    async def run(self, stopping: asyncio.Event, poll_seconds: float = 0.5) -> None:
        """Until `stopping`: hold the relay lock (or wait for it), publish, prune now and then."""
        backoff = Backoff(0.5)
        while not stopping.is_set():
            try:
                async with self.pool.acquire() as conn:
                    if not await outbox.acquire_lock(conn, self.lock_name):
                        self.health.ok("outbox relay")
                        await self._sleep(stopping, 2.0)
                        continue
                    log.info("outbox relay: this worker publishes")
                    rounds = 0
                    while not stopping.is_set():
                        count = await self.publish_once(conn)
                        self.health.ok("outbox relay")
                        backoff.reset()
                        rounds += 1
                        if rounds % 600 == 0:
                            await outbox.prune(conn, self.prune_after_seconds)
                        if count < self.batch_size:
                            self.wake.clear()
                            await self._sleep(stopping, poll_seconds, self.wake)
            except Exception as exc:  # noqa: BLE001 - db/errors.py: trouble or a hold, retried either way
                self.health.failed("outbox relay", exc, backoff.next)
                await backoff.sleep(stopping)

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


def _error(result: Any) -> BaseException | None:
    return result if isinstance(result, BaseException) else None
