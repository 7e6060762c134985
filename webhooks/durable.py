"""2xx means durable: records go to the broker (acks=all), or, while it does not answer, to the fsync'd spool.

While the spool holds anything, new records go to the spool too, behind the older ones, so that the order per
key is kept; a background task drains the spool in order once the broker answers again (also right after a
restart of the process, with what the previous one left).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Literal

from webhooks import WebhooksError
from webhooks.metrics import Metrics
from webhooks.publisher import KafkaPublisher, OutRecord, PublishError
from webhooks.spool import Spool, SpoolError, SpoolFullError

log = logging.getLogger(__name__)

Via = Literal["broker", "spool"]
DRAIN_TIMEOUT = 60.0  # a bound only: aiokafka fails undeliverable batches after its request timeout
DRAIN_CHUNK_BYTES = 1024 * 1024


class UnavailableError(WebhooksError):
    """The records could not be made durable (broker unreachable and spool full, disabled or failing): 503."""

    retry_after = 5


class DurableSink:
    def __init__(self, publisher: KafkaPublisher, spool: Spool, metrics: Metrics, *, send_timeout: float) -> None:
        self.publisher = publisher
        self.spool = spool
        self.metrics = metrics
        self.send_timeout = send_timeout
        self.spool_error = ""  # the last failure of the spool itself, for /readyz
        self.spool_full = False  # the last append found no room (until an append or a drain succeeds)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.spool.enabled:
            await asyncio.to_thread(self.spool.open)
            self._task = asyncio.create_task(self._drain_forever(), name="spool-drain")

    async def stop(self) -> None:
        """Stop draining (what is left stays on disk for the next start) and close the spool."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            self.spool.close()

    @property
    def spool_usable(self) -> bool:
        return self.spool.enabled and not self.spool_error and not self.spool_full

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
        backoff = 0.2
        while True:
            self._wake.clear()
            if self.spool.empty:
                await self._wake.wait()
                continue
            if await self._drain_once():
                backoff = 0.2
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _drain_once(self) -> bool:
        """Send the oldest spooled records; False when the broker does not take them now."""
        if not await self.publisher.ensure_started() or not await self.publisher.probe(timeout=2.0):
            return False
        async with self._lock:
            entries = await asyncio.to_thread(self.spool.read, DRAIN_CHUNK_BYTES)
        if not entries:
            return True
        records = [record for entry in entries for record in entry.records]
        started = time.perf_counter()
        acknowledged = await self.publisher.publish_settled(records, timeout=DRAIN_TIMEOUT)
        done, position = [], 0
        for entry in entries:  # the longest run of entries the broker took whole; the rest is sent again
            if not all(acknowledged[position : position + len(entry.records)]):
                break
            done.append(entry)
            position += len(entry.records)
        if done:
            self.metrics.produce_seconds.labels("drain").observe(time.perf_counter() - started)
            async with self._lock:
                await asyncio.to_thread(self.spool.commit, done)
            self.spool_full = False
            self.metrics.drained.inc(position)
            if self.spool.empty:
                log.info("spool drained; records go to the broker directly again")
        if len(done) < len(entries):
            log.warning(
                "spool drain: the broker took %d of %d records (%s); retrying the rest",
                position, len(records), self.publisher.last_error_text,
            )  # fmt: skip
            return False
        return True
