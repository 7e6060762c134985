"""The routing stage: input records re-keyed onto `fold.tasks` (the rules, keys and frames: streams/route.py).

`Router.route_batch`: input records onto `fold.tasks`, then their positions, then the ack.

Per batch, in one transaction: lock the stored positions of the input partitions (consumer = the
router's group, `<worker id>.router`, so `fold_positions` shows how far each input partition has been
taken in, beside the fold's own positions under the worker id), produce the
fresh records framed with their source position (streams/route.py) and wait for the broker's
acknowledgements, then advance the positions and commit. A crash after producing and before the
commit produces those records again: the fold drops the copies (event ids, log positions, dlq ids
derived from the source position), so this stage needs no Kafka transactions.

A record the router cannot read its keys from (its values break `routed_keys`: db/errors.py calls that the
record's property) goes to the dlq straight from here, with the reason and its position, and its batch-mates are
routed; a failure that hits every record alike holds the router instead (HeldError, `Suspects`).

Its consumer loop (`run_router`) is a plain aiokafka consumer group, not a Faust agent. The router only reads JSON
and re-keys records; it needs none of Faust's stream machinery, which costs ~250 µs per record on this machine. A
plain consumer costs a fraction of that, so the pipeline pays Faust's price once (in the fold), not twice. Offsets
are committed to Kafka after a batch is routed (for lag tools), but an assigned partition resumes from the router's
positions in `fold_positions` (`_SeekToStored`), which also make a redelivered record a no-op: a crash or rebalance
between routing and commit, or a wrong offset commit, loses and duplicates nothing.

Imports go one way: streams/worker.py starts `run_router` with itself as the `RouterRuntime`; nothing here imports
the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from asyncmy.cursors import DictCursor

from app import topics
from app.settings import Settings
from db import fold_store, trace
from db.errors import Health, HeldError, Suspects, describe, until_done
from db.trace import OutcomeRow
from streams.decode import dlq_row
from streams.intake import ConsumedRecord
from streams.monitor import FoldMonitor
from streams.route import Source, decoded, frame, routed_keys, source_order
from streams.tracing import unroutable_row

log = logging.getLogger(__name__)
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]


RECORD_OVERHEAD = 1024
"""Bytes a produce request adds around one record's key and value (batch and record headers), with room to spare."""


class Router:
    def __init__(self, pool: Any, settings: Settings, send: Send) -> None:
        self.pool = pool
        self.send = send
        self.consumer = topics.router_group(settings)
        self.target = settings.topic(topics.FOLD_TASKS)
        self.dlq_topic = settings.topic(topics.DLQ)
        self.record_trace = settings.trace_retention_seconds > 0
        self.max_record = topics.topic_message_bytes(settings) - RECORD_OVERHEAD
        self.suspects = Suspects()
        self._short = {settings.topic(name): name for name in topics.INPUT_TOPICS}
        self.routed = 0
        self.dead_lettered = 0
        """Records sent to the dlq because their keys could not be read (committed batches only)."""

    async def route_batch(self, records: Sequence[ConsumedRecord]) -> int:
        """Route the fresh records of the batch; the number produced. DB and broker trouble raise."""
        async with self.pool.acquire() as conn:
            try:
                await conn.begin()
                async with conn.cursor(DictCursor) as cur:
                    positions = await fold_store.lock_positions(cur, self.consumer, ((r.topic, r.partition) for r in records))
                    fresh = [r for r in records if r.offset >= positions[(r.topic, r.partition)]]
                    sources = [Source(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp) for r in fresh]
                    questions = await self._question_tasks(cur, sources)
                    # every record's keys first: a hold (HeldError) leaves nothing produced, not even dlq records
                    traced: list[OutcomeRow] = []
                    plan = [(s, self._routed(s, questions, traced)) for s in source_order(sources, lambda s: s)]
                    acks = []
                    dead = 0
                    for source, sends in plan:
                        for topic, key, value in sends:
                            acks.append(await self.send(topic, key, value))
                            dead += topic == self.dlq_topic
                        positions[(source.topic, source.partition)] = source.offset + 1
                    await asyncio.gather(*acks)
                    if self.record_trace:
                        await trace.insert_outcomes(cur, traced)  # for `trace`, as the fold records its own
                    await fold_store.save_positions(cur, self.consumer, positions)
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
        self.routed += len(fresh)
        self.dead_lettered += dead
        return len(fresh)

    def _routed(
        self, source: Source, questions: dict[str, str], traced: list[OutcomeRow]
    ) -> list[tuple[str, bytes | None, bytes]]:
        """(topic, key, value) of what the router sends for `source`: its frames, or its dlq record."""
        try:
            keys = routed_keys(self._short.get(source.topic, ""), source, questions)
        except Exception as exc:  # the record's values broke the reading of its keys: see the module docstring
            where = f"record {source.topic}/{source.partition}@{source.offset}"
            if self.suspects.failed(exc):
                raise HeldError(f"router: {where}: {describe(exc)}, the {self.suspects.run}th in a row: the code fails") from exc
            context = {"topic": source.topic, "partition": source.partition, "offset": source.offset, "outcome": "poison"}
            log.error("router: %s cannot be routed (%s); it goes to the dlq", where, describe(exc), exc_info=exc, extra=context)
            reason = f"the router cannot read this record: {describe(exc)}"
            dlq_id, topic, key, value = dlq_row(source, reason, self.dlq_topic)
            traced.append(unroutable_row(source, reason, dlq_id))
            return [(topic, key.encode() if source.key is not None else None, value)]
        self.suspects.applied()
        sends = [(self.target, key, frame(source, scope)) for key, scope in keys]
        largest = max((len(value) + len(key or b"") for _, key, value in sends), default=0)
        if largest > self.max_record:  # a direct producer wrote what the topics should have refused: not routable
            reason = (
                f"the record is {len(source.value)} bytes, too large to route (its frame would be {largest} bytes; the "
                f"topics take {self.max_record + RECORD_OVERHEAD}, AIWORKER_MAX_EVENT_BYTES + 64 KiB)"
            )
            log.warning("router: record %s/%s@%s: %s; it goes to the dlq", source.topic, source.partition, source.offset,
                        reason, extra={"topic": source.topic, "partition": source.partition, "offset": source.offset,
                                       "outcome": "invalid"})  # fmt: skip
            dlq_id, topic, dlq_key, value = dlq_row(source, reason, self.dlq_topic)
            traced.append(unroutable_row(source, reason, dlq_id))
            return [(topic, dlq_key.encode() if source.key is not None else None, value)]
        return sends

    async def _question_tasks(self, cur: Any, sources: Sequence[Source]) -> dict[str, str]:
        """question id -> task id for the answers of the batch that do not name their task."""
        asked: dict[str, str] = {}
        wanted: set[str] = set()
        for source in sources:
            if b"task.question_" not in source.value:
                continue
            try:
                data = decoded(source)
            except RecursionError:  # nested past what the decoder takes: `_routed` sends it to the dlq
                continue
            if data is None:
                continue
            if data.get("type") == "task.question_asked" and data.get("task_id"):
                asked[str(data.get("question_id"))] = str(data["task_id"])
            elif data.get("type") == "task.question_answered" and not data.get("task_id"):
                wanted.add(str(data.get("question_id")))
        lookup = sorted(wanted - set(asked))
        if lookup:
            marks = ", ".join(["%s"] * len(lookup))
            await cur.execute(f"SELECT id, task_id FROM task_questions WHERE id IN ({marks})", lookup)
            asked.update({row["id"]: row["task_id"] for row in await cur.fetchall()})
        return asked


class RouterRuntime(Protocol):
    """What the router's loop needs of the worker (streams/worker.py FoldRuntime)."""

    ready: asyncio.Event
    stopping: asyncio.Event
    health: Health
    monitor: FoldMonitor

    async def stored_positions(self, consumer: str) -> dict[tuple[str, int], int]: ...

    async def route_until_done(self, records: list[ConsumedRecord]) -> int: ...


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    """Assigned partitions resume from the router's stored positions (0 where none is stored), never from Kafka's
    committed offsets: a wrong commit can neither skip nor replay input records."""

    def __init__(self, consumer: AIOKafkaConsumer, runtime: RouterRuntime, group: str) -> None:
        self.consumer, self.runtime, self.group = consumer, runtime, group

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        stored = await self.runtime.stored_positions(self.group)
        for tp in assigned:
            self.consumer.seek(tp, stored.get((tp.topic, tp.partition), 0))


async def run_router(runtime: RouterRuntime, settings: Settings, bootstrap: str) -> None:
    """Route input records onto fold.tasks until the runtime stops."""
    await runtime.ready.wait()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=topics.router_group(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_poll_records=settings.worker_batch_size,
        session_timeout_ms=int(settings.kafka_session_timeout * 1000),
        heartbeat_interval_ms=int(min(3.0, settings.kafka_session_timeout / 3) * 1000),
    )
    group = topics.router_group(settings)
    consumer.subscribe([settings.topic(name) for name in topics.INPUT_TOPICS], listener=_SeekToStored(consumer, runtime, group))
    try:  # a stop while the first group join is under way (Ctrl-C right after start-up) still closes the consumer
        await until_done("router consumer", consumer.start, runtime.health)
        runtime.monitor.attach(
            "route", lambda: {(tp.topic, tp.partition): consumer.highwater(tp) for tp in consumer.assignment()}
        )
        while not runtime.stopping.is_set():
            batch = await until_done(
                "router fetch", lambda: consumer.getmany(timeout_ms=int(settings.worker_batch_seconds * 1000) or 1),
                runtime.health, stopping=runtime.stopping,
            )  # fmt: skip
            records = [
                ConsumedRecord(r.topic, r.partition, r.offset, r.key, r.value or b"", float(r.timestamp or 0) / 1000.0)
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
