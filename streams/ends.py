"""The end offsets of partitions as the broker lists them (ListOffsets), for the worker's lag (streams/monitor.py).

A consumer's `highwater()` is only as fresh as its last fetch answer: a partition the worker owns but no longer
fetches (paused by a rebalance that never resumed it, a fetcher that stopped) keeps the high watermark it had, or
none, and its lag would read 0 while records pile up behind it. So the monitor asks the broker as well, with one
group-less consumer of its own (started on first use: the worker starts while the broker may be down), and takes
the larger of both. Tansu answers ListOffsets with the last batch's base offset + 1, short of the end after a batch
of several records; the larger of both is still exact once the consumer fetched, and never more than the real lag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition


class BrokerEnds:
    def __init__(self, bootstrap: str, timeout: float = 3.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._consumer: AIOKafkaConsumer | None = None

    async def __call__(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The listed end offset of each (topic, partition); KafkaError, OSError or TimeoutError when the broker does
        not answer within the timeout."""
        tps = [TopicPartition(topic, partition) for topic, partition in sorted(set(partitions))]
        if not tps:
            return {}
        async with asyncio.timeout(self.timeout):
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                    request_timeout_ms=int(self.timeout * 1000) + 1000,
                )  # fmt: skip
                try:
                    await consumer.start()
                except BaseException:
                    await consumer.stop()
                    raise
                self._consumer = consumer
            listed = await self._consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): int(offset) for tp, offset in listed.items()}

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
