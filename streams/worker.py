"""The Faust app of the fold workers: the router, the fold, the outbox relay and the sweeper, in one place.

Two stages (see streams/route.py): `route` reads the three input topics and re-keys records onto
`fold.tasks` by their ordering entity (a plain aiokafka consumer group, streams/router.py, that commits
after routing); `fold` (the Faust agent) reads `fold.tasks` and, beside it, agent.events (its agents' own
events and logs need no re-keying: `route.direct_part`), and folds batches into MySQL, taking batches
without acknowledging (`noack_take`) and acknowledging only after their transaction committed;
every loop follows one error policy (db/errors.py): trouble is retried with backoff, so a partition waits and
never skips; a record that fails goes to the dlq; a failure that hits every record alike holds the partition and
makes the worker unhealthy (`FoldRuntime.health`, read by /healthz); no exception ends an agent or a task.
During shutdown a failing batch is abandoned unacknowledged (it is redelivered to the next owner).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.exceptions import NotReady

from app import topics
from app.observe import Probes, Verdict
from app.producer import kafka_producer
from app.settings import Settings
from app.topics import router_group
from db import observe as observe_sql
from db.errors import Health, until_done
from db.pool import create_pool
from streams import faust_transport
from streams.batches import by_bytes
from streams.ends import BrokerEnds
from streams.fold import Fold
from streams.intake import ConsumedRecord
from streams.monitor import FoldMonitor, Owned
from streams.outcomes import FoldStats
from streams.relay import OutboxRelay
from streams.router import Router, run_router
from streams.sweeper import Sweeper

log = logging.getLogger(__name__)
T = TypeVar("T")


def faust_broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


class FoldRuntime:
    """Resources of one worker process: the pool, the router, the fold, the relay, the sweeper, a producer."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.pool: Any = None
        self.fold: Fold | None = None
        self.router: Router | None = None
        self.relay: OutboxRelay | None = None
        self.sweeper: Sweeper | None = None
        self.producer: AIOKafkaProducer | None = None
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self._starting = asyncio.Lock()
        self.health = Health()
        """Which loops are held (the code fails on every record) or waiting out trouble, since when: for /healthz."""
        self.monitor = FoldMonitor(settings, {"fold": settings.worker_id, "route": router_group(settings)}, self.health)

    async def start(self) -> None:
        """Open the pool, the producer and the stages, once (the relay task, or the first seek to stored positions:
        Faust seeks before it starts the app's tasks)."""
        async with self._starting:
            if not self.ready.is_set():
                await self._start()

    async def _start(self) -> None:
        url = self.settings.database_url.get_secret_value()
        self.pool = await until_done("database pool", lambda: create_pool(url, minsize=1, maxsize=8), self.health)
        self.fold = Fold(self.pool, self.settings, direct=True)
        # The router frames input records (what a topic takes, app/topics.py, less the frame's headroom), the relay
        # publishes outbox rows and dlq notes; what the broker can never take becomes a dlq note (streams/relay.py).
        self.producer = kafka_producer(self.settings, self.bootstrap)
        await self.producer.start()
        producer = self.producer

        async def send(topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any:
            return await producer.send(topic, value=value, key=key, headers=headers)

        self.router = Router(self.pool, self.settings, send)
        self.relay = OutboxRelay(
            self.pool,
            send,
            database_url=self.settings.database_url.get_secret_value(),
            batch_size=self.settings.outbox_batch_size,
            dlq_topic=self.settings.topic(topics.DLQ),
            health=self.health,
        )
        self.sweeper = Sweeper(self.pool, self.settings, self.health)
        sweeper, relay = self.sweeper, self.relay
        self.monitor.count_dlq("parked_expired", lambda: sweeper.expired)
        self.monitor.count_dlq("unpublishable", lambda: relay.unpublishable)
        router = self.router
        self.monitor.count_dlq("poison", lambda: router.dead_lettered)
        self.ready.set()

    async def stop(self) -> None:
        self.stopping.set()
        if self.producer is not None:
            await self.producer.stop()
        if self.pool is not None:
            self.pool.close()
            await self.pool.wait_closed()

    async def _until_done(self, stage: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt` until it succeeds (db/errors.py: trouble waits, a hold waits unhealthy; nothing skips)."""

        def retried(exc: BaseException) -> None:
            if not isinstance(exc, KafkaError):
                self.monitor.retried(stage)

        return await until_done(stage, attempt, self.health, stopping=self.stopping, on_failure=retried)

    async def stored_positions(self, consumer: str) -> dict[tuple[str, int], int]:
        """The next offsets `consumer` stored in fold_positions: where its partitions resume after an assignment
        (positions are the database's, not Kafka's committed offsets). Database trouble waits."""
        await self.start()

        async def read() -> dict[tuple[str, int], int]:
            async with self.pool.acquire() as conn, conn.cursor() as cur:
                found = await observe_sql.stored_positions(cur, consumer)
                await conn.rollback()
            return found

        return await until_done(f"positions of {consumer}", read, self.health, stopping=self.stopping)

    async def route_until_done(self, records: list[ConsumedRecord]) -> int:
        await self.ready.wait()
        router = self.router
        assert router is not None
        started = time.monotonic()
        routed = await self._until_done("route", lambda: router.route_batch(records))
        if routed < len(records):
            log.warning("router: %d record(s) below the stored positions skipped (delivered again)", len(records) - routed)
        self.monitor.batch_done("route", records, time.monotonic() - started)
        return routed

    async def fold_until_done(self, records: list[ConsumedRecord]) -> FoldStats:
        """Fold a batch, retrying database trouble with backoff: the partition waits, it never skips."""
        await self.ready.wait()
        fold, relay = self.fold, self.relay
        assert fold is not None and relay is not None
        started = time.monotonic()
        stats = await self._until_done("fold", lambda: fold.apply_batch(records))
        if stats.replayed:
            log.warning("fold: %d record(s) below the stored positions skipped (delivered again)", stats.replayed)
        self.monitor.batch_done("fold", records, time.monotonic() - started, stats)
        relay.wake.set()
        return stats


def _records(events: list[Any]) -> list[ConsumedRecord]:
    """The consumed records; a tombstone (a null value) is an empty one (dead-lettered as not JSON, never a crash)."""
    return [
        ConsumedRecord(m.topic, m.partition, m.offset, m.key, m.value or b"", float(m.timestamp or 0.0))
        for m in (e.message for e in events)
    ]


def log_batch(records: list[ConsumedRecord], stats: FoldStats) -> None:
    """One line per folded batch (counts by outcome), one per refusal (type, id, reason, where it came from)."""
    if stats.events or stats.logs:
        log.info("folded %d record(s): %s", len(records), stats.summary())
    for refusal in stats.refusals:
        where = refusal.source
        log.warning(
            "refused %s %s: %s", refusal.event_type, refusal.event_id or f"at {where.topic}/{where.partition}@{where.offset}",
            refusal.reason,
            extra={"event_id": refusal.event_id or None, "event_type": refusal.event_type, "task_id": refusal.task_id,
                   "agent_id": refusal.agent_id, "delivery_id": refusal.delivery_id, "topic": where.topic,
                   "partition": where.partition, "offset": where.offset, "outcome": "refused"},
        )  # fmt: skip


def _faust_owned(app: faust.App, topic_names: set[str]) -> Owned:
    def owned() -> dict[tuple[str, int], int | None]:
        consumer = app.consumer
        try:
            return {(tp.topic, tp.partition): consumer.highwater(tp) for tp in consumer.assignment() if tp.topic in topic_names}
        except NotReady:  # the consumer thread has not started yet: nothing owned
            return {}

    return owned


async def serve_probes(app: faust.App, runtime: FoldRuntime) -> None:
    """The worker's /healthz, /readyz and /metrics (Faust's own web server is off), and the monitor's sampling."""
    settings, monitor = runtime.settings, runtime.monitor
    monitor.attach("fold", _faust_owned(app, {settings.topic(topics.FOLD_TASKS), settings.topic(topics.AGENT_EVENTS)}))
    ends = BrokerEnds(runtime.bootstrap)
    monitor.ends = ends  # the lag of a partition owned but no longer fetched (streams/monitor.py)

    async def healthz() -> Verdict:
        return monitor.health()

    async def readyz() -> Verdict:
        return await monitor.readiness(runtime.pool)

    probes = Probes(monitor.registry, healthz, readyz)
    runner = await probes.serve(settings.http_host, settings.worker_http_port, "worker")
    try:
        await monitor.run(lambda: runtime.pool, runtime.stopping, probes.ready.set)
    finally:
        monitor.ends = None
        await asyncio.shield(ends.close())
        if runner is not None:
            await asyncio.shield(runner.cleanup())


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
    folded = (settings.topic(topics.FOLD_TASKS), settings.topic(topics.AGENT_EVENTS))
    faust_transport.install(app, settings.kafka_fetch_max_wait_ms, lambda: runtime.stored_positions(settings.worker_id), folded)
    inputs = app.topic(*folded, value_serializer="raw")

    @app.task  # type: ignore[untyped-decorator]
    async def route() -> None:
        await run_router(runtime, settings, bootstrap)

    @app.agent(inputs, name="fold")
    async def fold(stream: Any) -> None:
        async for events in stream.noack_take(settings.worker_batch_size, within=settings.worker_batch_seconds):
            for records in by_bytes(_records(events), settings.worker_batch_bytes):
                stats = await runtime.fold_until_done(records)
                log_batch(records, stats)
            for event in events:
                await stream.ack(event)

    @app.task  # type: ignore[untyped-decorator]
    async def relay() -> None:
        await runtime.start()
        assert runtime.relay is not None
        await runtime.relay.run(runtime.stopping)

    @app.task  # type: ignore[untyped-decorator]
    async def observe() -> None:
        await serve_probes(app, runtime)

    @app.task  # type: ignore[untyped-decorator]
    async def sweeper() -> None:
        await runtime.ready.wait()
        assert runtime.sweeper is not None and runtime.relay is not None
        await runtime.sweeper.run(runtime.stopping, runtime.relay.wake)

    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        await runtime.stop()

    app.on_before_shutdown.connect(on_shutdown)  # type: ignore[arg-type]
    return app, runtime
