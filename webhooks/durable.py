"""2xx means durable: records go to the broker (acks=all), or, while it does not answer, to the fsync'd spool.

While the spool holds anything, new records go to the spool too, behind the older ones, so that the order per
key is kept; a background task drains the spool in order once the broker answers again (also right after a
restart of the process, with what the previous one left).

The drain never spins and never stops: a round that makes no progress (the broker does not answer, or the
spool's disk fails) waits with exponential backoff up to DRAIN_BACKOFF_MAX, counted by cause in
`aiworker_spool_drain_failures_total` and logged. A record the broker refuses for good (too large, invalid)
goes to the dlq with its reason (webhooks/dead_letter.py) instead of blocking every record behind it. This is
the error policy of every retrying loop (db/errors.py): any other failure of a round (cause `error`) waits the
same way and is reported in `DurableSink.health` as a hold; no exception ends the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Literal

from db.errors import Backoff, Health
from webhooks import WebhooksError, dead_letter
from webhooks.metrics import Metrics
from webhooks.publisher import KafkaPublisher, OutRecord, PublishError
from webhooks.spool import Entry, Spool, SpoolError, SpoolFullError

log = logging.getLogger(__name__)

Via = Literal["broker", "spool"]
DRAIN_TIMEOUT = 60.0  # a bound only: aiokafka fails undeliverable batches after its request timeout
DRAIN_CHUNK_BYTES = 1024 * 1024
DRAIN_BACKOFF_MAX = 5.0


class UnavailableError(WebhooksError):
    """The records could not be made durable (broker unreachable and spool full, disabled or failing): 503."""

    retry_after = 5


class DurableSink:
    def __init__(self, publisher: KafkaPublisher, spool: Spool, metrics: Metrics, *, send_timeout: float, dlq_topic: str) -> None:
        self.publisher = publisher
        self.dlq_topic = dlq_topic
        self.spool = spool
        self.metrics = metrics
        self.send_timeout = send_timeout
        self.spool_error = ""  # the last failure of the spool itself, for /readyz
        self.spool_full = False  # the last append found no room (until an append or a drain succeeds)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._strikes = 0  # drain rounds in a row whose first failing record the broker refused without naming why
        self.health = Health()

    async def start(self) -> None:
        if self.spool.enabled:
            await asyncio.to_thread(self.spool.open)
            self._task = asyncio.create_task(self._drain_forever(), name="spool-drain")

    async def stop(self, *, drain_seconds: float = 0.0) -> None:
        """Stop draining (what is left stays on disk for the next start) and close the spool. While the broker
        answers, the drain first gets up to `drain_seconds` to empty the spool (a pod scaled away leaves less on
        its volume); while it does not, waiting would not help and the stop is at once."""
        if self._task is not None and drain_seconds > 0 and self.publisher.last_ok > self.publisher.last_error:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_seconds):
                    while not self.spool.empty:
                        self._wake.set()
                        await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            self.spool.close()

    @property
    def spool_usable(self) -> bool:
        return self.spool.enabled and not self.spool.broken and not self.spool_error and not self.spool_full

    async def accept(self, records: list[OutRecord]) -> Via:
        """Make the records durable and say where, or raise UnavailableError (nothing was accepted then)."""
        if not self.spool.empty:
            return await self._spool(records, "the spool still holds older records")
        started = time.perf_counter()
        try:
            await self.publisher.publish(records, timeout=self.send_timeout)
        except PublishError as exc:
            self.metrics.produce_error.observe(time.perf_counter() - started)
            return await self._spool(records, str(exc))
        self.metrics.produce_ok.observe(time.perf_counter() - started)
        return "broker"

    async def _spool(self, records: list[OutRecord], why: str) -> Via:
        if not self.spool.enabled:
            raise UnavailableError(f"{why}, and the local spool is disabled (AIWORKER_SPOOL_MAX_BYTES=0)")
        try:
            async with self._lock:
                await asyncio.to_thread(self.spool.append, records)
        except SpoolError as exc:
            self.spool_full = isinstance(exc, SpoolFullError)
            if not self.spool_full:
                self.spool_error = str(exc)
                log.error("spool write failed: %s", exc)
            raise UnavailableError(f"{why}, and {exc}") from exc
        self.spool_error, self.spool_full = "", False
        self.metrics.spooled.inc(len(records))
        self._wake.set()
        return "spool"

    async def _drain_forever(self) -> None:
        backoff = Backoff(0.2, DRAIN_BACKOFF_MAX)
        while True:
            self._wake.clear()
            if self.spool.empty:
                await self._wake.wait()
                continue
            try:
                cause = await self._drain_once()
            except SpoolError as exc:  # the spool's disk: the records stay where they are, the drain waits
                cause = "spool"
                log.error("spool drain: %s; retrying in %.1fs", exc, backoff.next)
            except Exception as exc:  # noqa: BLE001 - db/errors.py: anything else is a hold, retried the same way
                cause = "error"
                self.health.failed("spool drain", exc, backoff.next)
            if cause is None:
                self.health.ok("spool drain")
                backoff.reset()
                continue
            self.metrics.drain_failures.labels(cause).inc()
            await backoff.sleep()

    async def _drain_once(self) -> str | None:
        """Send the oldest spooled records; None when that made progress, else the cause it did not."""
        if not await self.publisher.ensure_started() or not await self.publisher.probe(timeout=2.0):
            return "broker"
        async with self._lock:
            entries = await asyncio.to_thread(self.spool.read, DRAIN_CHUNK_BYTES)
        if not entries:
            if self.spool.empty:
                return None
            log.error("spool drain: %d records are spooled but none can be read; check the disk", self.spool.records)
            return "spool"
        records = [record for entry in entries for record in entry.records]
        started = time.perf_counter()
        outcomes = await self.publisher.publish_settled(records, timeout=DRAIN_TIMEOUT)
        done, position, dead = await self._settled(entries, outcomes)
        if done:
            self.metrics.produce_seconds.labels("drain").observe(time.perf_counter() - started)
            async with self._lock:
                await asyncio.to_thread(self.spool.commit, done)
            self.spool_full = False
            self.metrics.drained.inc(position - dead)
            self.metrics.dead_lettered.inc(dead)
            if self.spool.empty:
                log.info("spool drained; records go to the broker directly again")
        if len(done) < len(entries):
            log.warning(
                "spool drain: the broker took %d of %d records (%s); retrying the rest",
                position, len(records), self.publisher.last_error_text,
            )  # fmt: skip
            return None if done else "broker"
        return None

    async def _settled(self, entries: list[Entry], outcomes: list[BaseException | None]) -> tuple[list[Entry], int, int]:
        """The longest run of entries whose every record the broker took or refused for good (those dead-lettered),
        the records in it and how many were dead-lettered; the rest is sent again."""
        done: list[Entry] = []
        position = dead = 0
        for entry in entries:
            mine = outcomes[position : position + len(entry.records)]
            failed = [(record, exc) for record, exc in zip(entry.records, mine, strict=True) if exc is not None]
            lettered = await self._dead_letter(failed) if failed else 0
            if lettered is None:
                break
            self._strikes = 0
            done.append(entry)
            position += len(entry.records)
            dead += lettered
        return done, position, dead

    def _for_good(self, exc: BaseException) -> bool:
        return dead_letter.refused_for_good(exc, self._strikes + 1)

    async def _dead_letter(self, failed: list[tuple[OutRecord, BaseException]]) -> int | None:
        """How many of the failed records went to the dlq, once each is on the broker or, refused for good, on the
        dlq; None when one is not (transient trouble: sent again later). Each is sent alone once more first: the
        broker refuses a whole batch for one record in it."""
        if not all(self._for_good(exc) for _, exc in failed):
            self._strikes += any(dead_letter.unnamed(exc) for _, exc in failed)
            return None
        lettered = 0
        for record, _ in failed:
            (again,) = await self.publisher.publish_settled([record], timeout=DRAIN_TIMEOUT)
            if again is None:
                continue  # taken alone: it was a batch-mate's refusal
            if not self._for_good(again):
                return None
            reason = dead_letter.reason_of(again)
            kept = await asyncio.to_thread(dead_letter.keep, self.spool.directory, record)
            (sent,) = await self.publisher.publish_settled(
                [dead_letter.dlq_record(record, reason, self.dlq_topic, kept)], timeout=DRAIN_TIMEOUT
            )
            if sent is not None:
                return None
            log.error("spooled record for %s (%d bytes) dead-lettered: %s", record.topic, len(record.value), reason)
            lettered += 1
        return lettered
