"""The router stage's consumer loop: a plain aiokafka consumer group, not a Faust agent.

The router only reads JSON and re-keys records (streams/repartition.py); it needs none of Faust's
stream machinery, which costs ~250 µs per record on this machine. A plain consumer costs a fraction
of that, so the pipeline pays Faust's price once (in the fold), not twice. Offsets are committed
to Kafka after a batch is routed (for lag tools), but an assigned partition resumes from the router's positions
in `fold_positions` (`_SeekToStored`), which also make a redelivered record a no-op: a crash or rebalance between
routing and commit, or a wrong offset commit, loses and duplicates nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from app import topics
from app.settings import Settings
from db.errors import until_done
from streams.intake import ConsumedRecord
from streams.repartition import router_group

if TYPE_CHECKING:
    from streams.worker import FoldRuntime

log = logging.getLogger(__name__)


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    """Assigned partitions resume from the router's stored positions (0 where none is stored), never from Kafka's
    committed offsets: a wrong commit can neither skip nor replay input records."""

    def __init__(self, consumer: AIOKafkaConsumer, runtime: FoldRuntime, group: str) -> None:
        self.consumer, self.runtime, self.group = consumer, runtime, group

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        stored = await self.runtime.stored_positions(self.group)
        for tp in assigned:
            self.consumer.seek(tp, stored.get((tp.topic, tp.partition), 0))


async def run_router(runtime: FoldRuntime, settings: Settings, bootstrap: str) -> None:
    """Route input records onto fold.tasks until the runtime stops."""
    await runtime.ready.wait()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=router_group(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_poll_records=settings.worker_batch_size,
        session_timeout_ms=int(settings.kafka_session_timeout * 1000),
        heartbeat_interval_ms=int(min(3.0, settings.kafka_session_timeout / 3) * 1000),
    )
    group = router_group(settings)
    consumer.subscribe([settings.topic(name) for name in topics.INPUT_TOPICS], listener=_SeekToStored(consumer, runtime, group))
    await until_done("router consumer", consumer.start, runtime.health)
    runtime.monitor.attach("route", lambda: {(tp.topic, tp.partition): consumer.highwater(tp) for tp in consumer.assignment()})
    try:
        while not runtime.stopping.is_set():
            batch = await until_done(
                "router fetch", lambda: consumer.getmany(timeout_ms=int(settings.worker_batch_seconds * 1000) or 1),
                runtime.health, stopping=runtime.stopping,
            )  # fmt: skip
            records = [
                ConsumedRecord(r.topic, r.partition, r.offset, r.key, r.value, float(r.timestamp or 0) / 1000.0)
                for messages in batch.values()
                for r in messages
            ]
            if not records:
                continue
            await runtime.route_until_done(records)
            try:
                await consumer.commit({tp: messages[-1].offset + 1 for tp, messages in batch.items() if messages})
            except KafkaError as exc:  # a rebalance took the partitions: the next owner skips what was routed
                log.warning("router: offset commit failed (%r); the stored positions skip what was routed", exc)
    finally:
        runtime.monitor.attach("route", None)
        await asyncio.shield(consumer.stop())
