"""The Faust app of the fold workers: topics, the fold agent and the outbox relay, declared in one place."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from asyncmy.errors import MySQLError

from app import topics
from app.settings import Settings
from db.pool import create_pool
from streams.fold import Fold, FoldStats, InputRecord
from streams.relay import OutboxRelay

log = logging.getLogger(__name__)


def faust_broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


class FoldRuntime:
    """Resources of one worker process: the pool, the fold, the relay and its producer."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.pool: Any = None
        self.fold: Fold | None = None
        self.relay: OutboxRelay | None = None
        self.producer: AIOKafkaProducer | None = None
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.totals = FoldStats()

    async def start(self) -> None:
        backoff = 0.5
        while self.pool is None:
            try:
                self.pool = await create_pool(self.settings.database_url, minsize=1, maxsize=4)
            except (MySQLError, OSError) as exc:
                log.warning("database unreachable (%r); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        self.fold = Fold(self.pool, self.settings)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=self.settings.kafka_idempotence,
            linger_ms=self.settings.kafka_linger_ms,
            compression_type=None if self.settings.kafka_compression == "none" else self.settings.kafka_compression,
        )
        await self.producer.start()
        producer = self.producer

        async def send(topic: str, key: bytes, value: bytes) -> Any:
            return await producer.send(topic, value=value, key=key)

        self.relay = OutboxRelay(
            self.pool, send, database_url=self.settings.database_url, batch_size=self.settings.outbox_batch_size
        )
        self.ready.set()

    async def stop(self) -> None:
        self.stopping.set()
        if self.producer is not None:
            await self.producer.stop()
        if self.pool is not None:
            self.pool.close()
            await self.pool.wait_closed()

    async def fold_until_done(self, records: list[InputRecord]) -> FoldStats:
        """Fold a batch, retrying database trouble with backoff: the partition waits, it never skips."""
        await self.ready.wait()
        assert self.fold is not None and self.relay is not None
        backoff = 0.2
        while True:
            try:
                stats = await self.fold.apply_batch(records)
            except (MySQLError, OSError, ConnectionError) as exc:
                log.warning("fold of %d records failed (%r); retrying in %.1fs", len(records), exc, backoff)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 10.0)
                continue
            self.totals.add(stats)
            self.relay.wake.set()
            return stats


def create_app(settings: Settings, bootstrap: str) -> tuple[faust.App, FoldRuntime]:
    """The worker's Faust app and its runtime; run it with `faust.Worker(app).execute_from_commandline()`."""
    app = faust.App(
        settings.worker_id,
        broker=faust_broker_url(bootstrap),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        broker_session_timeout=settings.kafka_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout / 3),
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        web_enabled=False,
    )
    runtime = FoldRuntime(settings, bootstrap)
    inputs = app.topic(*(settings.topic(name) for name in topics.INPUT_TOPICS), value_serializer="raw")

    @app.agent(inputs, name="fold")
    async def fold(stream: Any) -> None:
        async for events in stream.noack_take(settings.worker_batch_size, within=settings.worker_batch_seconds):
            records = [
                InputRecord(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
                for e in events
            ]
            stats = await runtime.fold_until_done(records)
            log.info("folded %d record(s): %s", len(records), stats)
            for event in events:
                await stream.ack(event)

    @app.task  # type: ignore[untyped-decorator]
    async def relay() -> None:
        await runtime.start()
        assert runtime.relay is not None
        await runtime.relay.run(runtime.stopping)

    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        await runtime.stop()

    app.on_before_shutdown.connect(on_shutdown)  # type: ignore[arg-type]
    return app, runtime
