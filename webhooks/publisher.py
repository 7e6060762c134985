"""Publishing accepted events: returns only once the broker acknowledged every record (acks=all)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from app.producer import KeyPartitioner, kafka_producer
from app.settings import Settings
from webhooks import WebhooksError


class PublishError(WebhooksError):
    """The records could not be made durable on the broker; nothing may be answered 2xx for them."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes


@dataclass(slots=True)
class ProduceCounts:
    """Records of requests the broker acknowledged, for /metrics (the spool drain's are counted by the drain)."""

    acknowledged: int = 0


class KafkaPublisher:
    """The web's producers (app/producer.py: the durability settings the contract asks for).

    `KAFKA_WEB_PRODUCERS` of them (1 by default, 4 in deploy/k8s): aiokafka sends one produce request per broker at
    a time and runs its sender in the web's event loop between requests, so one producer's round trips set the web's
    pace (bench ingest: 27 ms per acknowledgement under load, for 5 ms in a process of its own). A record's partition
    (by its key, as every producer of the service picks it: app/producer.py) picks its producer, so each partition's
    records go through one producer, in the order they were sent, as with one.
    `last_ok` / `last_error` (monotonic seconds) tell /readyz how the broker answered lately.
    """

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.producers: list[AIOKafkaProducer] = []
        self._partitioner = KeyPartitioner()
        self.counts = ProduceCounts()
        self.last_ok = 0.0
        self.last_error = 0.0
        self.last_error_text = ""

    @property
    def producer(self) -> AIOKafkaProducer | None:
        """The first producer (None before the start): metadata and probes."""
        return self.producers[0] if self.producers else None

    async def _send(self, record: OutRecord) -> asyncio.Future[object]:
        """Hand the record to the producer of its partition; the future of its acknowledgement."""
        producers = self.producers
        partition = None
        producer = producers[0]
        if len(producers) > 1:
            partitions = sorted(await producer.partitions_for(record.topic))
            partition = self._partitioner(record.key, partitions, partitions)
            producer = producers[partition % len(producers)]
        future: asyncio.Future[object] = await producer.send(
            record.topic, value=record.value, key=record.key, partition=partition
        )
        return future

    async def start(self) -> None:
        """Start the producers; a broker that is down at start-up is not fatal (requests spool, the drain retries)."""
        await self.ensure_started()

    async def ensure_started(self) -> bool:
        """Create and start the producers unless they run; False when the broker cannot be reached now."""
        if self.producers:
            return True
        wait = max(5.0, self.settings.kafka_send_timeout * 2)
        # Batches that cannot be delivered expire after this; a request gives up much earlier (spooling), so
        # keeping it short limits the duplicates a late delivery of an abandoned batch can cause.
        producers = [
            kafka_producer(self.settings, self.bootstrap, request_timeout_ms=int(wait * 1000))
            for _ in range(self.settings.kafka_web_producers)
        ]
        try:
            async with asyncio.timeout(wait):
                for producer in producers:
                    await producer.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            self._failed(exc)
            for producer in producers:
                await producer.stop()
            return False
        self.producers = producers
        return True

    async def stop(self) -> None:
        """Flush what is buffered (waiting for acknowledgements) and close the producers."""
        producers, self.producers = self.producers, []
        for producer in producers:
            try:
                async with asyncio.timeout(10.0):
                    await producer.flush()
            except (KafkaError, OSError, TimeoutError) as exc:
                self._failed(exc)
            await producer.stop()

    def _failed(self, exc: BaseException) -> None:
        self.last_error = time.monotonic()
        self.last_error_text = repr(exc)

    async def publish(self, records: list[OutRecord], *, timeout: float) -> None:
        """Send all records and wait for every acknowledgement within `timeout` seconds, or raise PublishError."""
        if not self.producers:
            raise PublishError("the producer is not started")
        try:
            async with asyncio.timeout(timeout):
                if len(records) == 1:  # a Gitea delivery: no gather (a task per request) needed
                    record = records[0]
                    await (await self._send(record))
                else:
                    futures = [await self._send(r) for r in records]
                    await asyncio.gather(*futures)
        except (KafkaError, TimeoutError, OSError) as exc:
            self._failed(exc)
            raise PublishError(f"the broker did not acknowledge the records within {timeout:.1f}s: {exc!r}") from exc
        self.counts.acknowledged += len(records)
        self.last_ok = time.monotonic()

    async def publish_settled(self, records: list[OutRecord], *, timeout: float) -> list[BaseException | None]:
        """Send all records and wait until each is acknowledged or failed for good (not abandoned, so that a
        retry does not duplicate what the broker took late): None for each record the broker acknowledged, else
        what refused it. A record the producer refuses before sending (larger than its max_request_size) fails
        alone; its batch-mates are still sent."""
        if not self.producers:
            return [PublishError("the producer is not started")] * len(records)
        sent: list[asyncio.Future[object] | BaseException] = []
        try:
            async with asyncio.timeout(timeout):
                for r in records:
                    try:
                        sent.append(await self._send(r))
                    except KafkaError as exc:
                        if exc.retriable:
                            raise
                        sent.append(exc)
                futures = [f for f in sent if isinstance(f, asyncio.Future)]
                await asyncio.gather(*futures, return_exceptions=True)
        except (KafkaError, TimeoutError, OSError) as exc:
            self._failed(exc)
            sent += [exc] * (len(records) - len(sent))
        outcomes = [_outcome(f) for f in sent]
        failures = [o for o in outcomes if o is not None]
        if failures:
            self._failed(failures[0])
        else:
            self.last_ok = time.monotonic()
        return outcomes

    async def probe(self, *, timeout: float) -> bool:
        """Whether the broker answers a metadata request within `timeout` seconds."""
        if self.producer is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self.producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return False
        return True


def _outcome(sent: asyncio.Future[object] | BaseException) -> BaseException | None:
    """None when the send was acknowledged, else why not (a future still pending was abandoned: a timeout)."""
    if isinstance(sent, BaseException):
        return sent
    if not sent.done() or sent.cancelled():
        return TimeoutError("the broker did not answer in time")
    return sent.exception()
