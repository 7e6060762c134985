"""What the console reads from the broker: the end of topics (for the fold's lag) and the newest dlq records.

One group-less consumer for the web process, started on first use (the web starts while the broker is down)
and used under a lock (assign and seek are per consumer). Ends are a fetch answer's high watermark, not
ListOffsets alone (Tansu answers that with the last batch's base offset + 1 after batched writes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from app.replay_records import DlqEntry, DlqFormatError, parse_dlq_record
from webhooks import WebhooksError


class BrokerLookError(WebhooksError):
    """The broker did not answer the console's read; the page says so and the rest of it still shows."""


class BrokerLook:
    def __init__(self, bootstrap: str, timeout: float = 3.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False, request_timeout_ms=int(self.timeout * 1000) + 1000,
                fetch_max_wait_ms=50, max_partition_fetch_bytes=4 << 20,
            )  # fmt: skip
            await asyncio.wait_for(consumer.start(), self.timeout)
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _partitions(self, consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
        names = list(topics)
        if any(not consumer.partitions_for_topic(t) for t in names):
            await consumer._client.force_metadata_update()
        return [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or set())]

    async def ends(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """The end offset of every partition of `topics`."""
        try:
            async with self._lock, asyncio.timeout(self.timeout):
                consumer = await self._started()
                tps = await self._partitions(consumer, topics)
                return await self._ends(consumer, tps)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise BrokerLookError(f"the broker did not answer ({type(exc).__name__})") from exc

    async def starts(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """The first offset still held (after retention) of every partition of `topics`."""
        try:
            async with self._lock, asyncio.timeout(self.timeout):
                consumer = await self._started()
                tps = await self._partitions(consumer, topics)
                found = await consumer.beginning_offsets(tps) if tps else {}
        except (KafkaError, TimeoutError, OSError) as exc:
            raise BrokerLookError(f"the broker did not answer ({type(exc).__name__})") from exc
        return {(tp.topic, tp.partition): int(offset) for tp, offset in found.items()}

    async def _ends(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[tuple[str, int], int]:
        if not tps:
            return {}
        consumer.assign(tps)
        listed = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(listed[tp] - 1, 0))
        while any(consumer.highwater(tp) is None for tp in tps if listed[tp] > 0):
            await consumer.getmany(*tps, timeout_ms=100, max_records=len(tps))
        return {(tp.topic, tp.partition): max(int(listed[tp]), int(consumer.highwater(tp) or 0)) for tp in tps}

    async def newest_dlq(self, topic: str, per_partition: int) -> tuple[list[DlqEntry], int]:
        """The newest `per_partition` records of each dlq partition (newest first), and how many the topic holds."""
        try:
            async with self._lock, asyncio.timeout(self.timeout):
                consumer = await self._started()
                tps = await self._partitions(consumer, [topic])
                ends = await self._ends(consumer, tps)
                starts = await consumer.beginning_offsets(tps)
                entries = await self._read(consumer, tps, starts, ends, per_partition)
        except (KafkaError, TimeoutError, OSError) as exc:
            raise BrokerLookError(f"the broker did not answer ({type(exc).__name__})") from exc
        held = sum(max(0, ends[(tp.topic, tp.partition)] - int(starts[tp])) for tp in tps)
        entries.sort(key=lambda e: (e.timestamp_ms, e.dlq_partition, e.dlq_offset), reverse=True)
        return entries, held

    async def _read(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], starts: dict[TopicPartition, int],
        ends: dict[tuple[str, int], int], per_partition: int,
    ) -> list[DlqEntry]:  # fmt: skip
        pending: set[TopicPartition] = set()
        for tp in tps:
            end = ends[(tp.topic, tp.partition)]
            begin = max(int(starts[tp]), end - per_partition)
            if begin < end:
                consumer.seek(tp, begin)
                pending.add(tp)
        entries: list[DlqEntry] = []
        deadline = time.monotonic() + self.timeout
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=200)
            for tp, records in batch.items():
                end = ends[(tp.topic, tp.partition)]
                for record in records:
                    if record.offset < end:
                        entries.append(_entry(tp.partition, record.offset, record.timestamp, record.value))
                if records and records[-1].offset + 1 >= end:
                    pending.discard(tp)
        return entries


def _entry(partition: int, offset: int, timestamp: int, value: bytes | None) -> DlqEntry:
    try:
        return parse_dlq_record(partition, offset, timestamp, value)
    except DlqFormatError as exc:
        return DlqEntry(partition, offset, timestamp, "", f"not a dlq record: {exc}", "?", -1, -1, None, value or b"")
