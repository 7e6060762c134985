"""The ingest fast path to the broker: what the requests of one event-loop turn publish leaves as one produce
request per partition leader (acks=all), through aiokafka's own client (its connections, metadata and protocol
versions), with one record batch per partition.

Why: aiokafka's `send()` costs about 60 µs of CPU per record here (a delivery future per record, a batch per
partition drained by its sender task, and a timer per call for the request's deadline), which was a quarter of
an ingest request's CPU; grouped per turn it is about 30 µs. It is a fast path only. Records whose partition
leader is not known yet, a request whose records span leaders, a record over the batch size, and every error
the broker answers go through aiokafka's producer (with its retries) instead, and the idempotent producer is
never bypassed (its sequence numbers live in aiokafka). Order per key holds: a turn's batches go out in turn
order on the leader's one connection, and Kafka appends a connection's requests in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from webhooks import WebhooksError

if TYPE_CHECKING:
    from webhooks.publisher import KeyPartitioner, OutRecord

# Per record in a batch, beyond its key and value: attributes, timestamp and offset deltas, lengths, header count
# (varints of at most 21 bytes together); rounded up generously (compression may grow incompressible bytes a
# little), so that a turn's batches together never outgrow `batch_bytes`.
RECORD_OVERHEAD = 64
BATCH_OVERHEAD = 61  # the record batch header
UNBOUNDED = 2**31 - 1  # the builders' own limit: the turn's accounting keeps them under `batch_bytes`
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # Kafka's compression attribute values


class TurnFailed(WebhooksError):
    """The broker refused some partitions of a turn (`failed`: partition -> error), or its request failed."""

    def __init__(self, failed: dict[TopicPartition, KafkaError]) -> None:
        super().__init__(f"the broker refused {len(failed)} partition(s): {next(iter(failed.values()))!r}")
        self.failed = failed


@dataclass(slots=True)
class _Batch:
    builder: DefaultRecordBatchBuilder
    count: int = 0


@dataclass(slots=True)
class _Turn:
    """One produce request being filled during a loop turn."""

    node: int
    deadline: asyncio.TimerHandle | None = None
    size: int = 0
    sent: bool = False
    batches: dict[TopicPartition, _Batch] = field(default_factory=dict)
    waiters: list[tuple[asyncio.Future[None], tuple[TopicPartition, ...]]] = field(default_factory=list)

    def expire(self) -> None:
        for waiter, _ in self.waiters:
            if not waiter.done():
                waiter.set_exception(TimeoutError("the broker did not acknowledge the produce request in time"))


@dataclass(frozen=True, slots=True)
class _Route:
    partitions: list[int]
    available: list[int]
    leaders: dict[int, int]


class TurnBatcher:
    """`submit(records, timeout)` places records into this turn's produce request, or says it cannot (None)."""

    def __init__(
        self,
        client: AIOKafkaClient,
        partitioner: KeyPartitioner,
        *,
        compression: str,
        batch_bytes: int,
        request_timeout_ms: int,
    ) -> None:
        self.client = client
        self.partitioner = partitioner
        self.codec = CODECS[compression]
        self.batch_bytes = batch_bytes
        self.request_timeout_ms = request_timeout_ms
        self._routes: dict[str, _Route] = {}
        self._turns: dict[tuple[int, float], _Turn] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self.requests_sent = 0  # produce requests and the records in them, for tests and curiosity
        self.records_sent = 0
        self._listener: Callable[[ClusterMetadata], None] = lambda _cluster: self._routes.clear()
        client.cluster.add_listener(self._listener)

    async def close(self, timeout: float) -> None:
        """Stop following metadata; wait up to `timeout` seconds for the produce requests still out."""
        self.client.cluster.remove_listener(self._listener)
        if self._in_flight:
            _done, late = await asyncio.wait(set(self._in_flight), timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def _route(self, topic: str) -> _Route | None:
        route = self._routes.get(topic)
        if route is None:
            cluster = self.client.cluster
            partitions = cluster.partitions_for_topic(topic)
            if not partitions:
                return None
            leaders = {p: cluster.leader_for_partition(TopicPartition(topic, p)) for p in partitions}
            # The same lists, in the same order, as aiokafka's producer passes its partitioner.
            available = list(cluster.available_partitions_for_topic(topic) or ())
            route = self._routes[topic] = _Route(list(partitions), available, leaders)
        return route

    def submit(self, records: list[OutRecord], timeout: float) -> tuple[asyncio.Future[None], list[TopicPartition]] | None:
        """A future that resolves once the broker acknowledged every record (or fails: TurnFailed, TimeoutError
        after `timeout` seconds), and each record's partition; None when the fast path cannot take them."""
        node: int | None = None
        placed: list[TopicPartition] = []
        need = 0
        for record in records:
            route = self._route(record.topic)
            if route is None:
                return None
            partition = self.partitioner(record.key, route.partitions, route.available)
            leader = route.leaders.get(partition)
            if leader is None or leader < 0 or (node is not None and leader != node):
                return None
            node = leader
            placed.append(TopicPartition(record.topic, partition))
            need += len(record.key) + len(record.value) + RECORD_OVERHEAD
        need += BATCH_OVERHEAD * (1 if len(placed) == 1 else len(set(placed)))  # as if every batch were new
        if node is None or need > self.batch_bytes:
            return None
        turn = self._turn(node, timeout, need)
        for tp, record in zip(placed, records, strict=True):
            batch = turn.batches.get(tp)
            if batch is None:
                # magic 2, no transaction, no producer id, epoch or sequence (not idempotent), as Java's producer
                batch = turn.batches[tp] = _Batch(DefaultRecordBatchBuilder(2, self.codec, 0, -1, -1, -1, UNBOUNDED))
            batch.builder.append(batch.count, None, record.key, record.value, [])
            batch.count += 1
        turn.size += need
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turn.waiters.append((waiter, tuple(placed)))
        return waiter, placed

    def _turn(self, node: int, timeout: float, need: int) -> _Turn:
        """This turn's request to `node`, or a new one when the records would not fit (the full one leaves now)."""
        key = (node, timeout)
        turn = self._turns.get(key)
        if turn is not None and turn.size + need > self.batch_bytes:
            self._send(turn, key)
            turn = None
        if turn is None:
            loop = asyncio.get_running_loop()
            turn = self._turns[key] = _Turn(node)
            turn.deadline = loop.call_later(timeout, turn.expire)
            loop.call_soon(self._send, turn, key)
        return turn

    def _send(self, turn: _Turn, key: tuple[int, float]) -> None:
        if turn.sent:
            return
        turn.sent = True
        if self._turns.get(key) is turn:
            del self._turns[key]
        task = asyncio.create_task(self._produce(turn))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _produce(self, turn: _Turn) -> None:
        topics: dict[str, list[tuple[int, bytearray]]] = {}
        for tp, batch in turn.batches.items():
            topics.setdefault(tp.topic, []).append((tp.partition, batch.builder.build()))
        request = ProduceRequest(
            transactional_id=None, required_acks=-1, timeout=self.request_timeout_ms, topics=list(topics.items())
        )
        self.requests_sent += 1
        self.records_sent += sum(batch.count for batch in turn.batches.values())
        failed: dict[TopicPartition, KafkaError] = {}
        try:
            response = await self.client.send(turn.node, request)
        except KafkaError as exc:
            failed = dict.fromkeys(turn.batches, exc)
        except asyncio.CancelledError:  # closing: the waiters learn that their records' fate is unknown
            self._settle(turn, dict.fromkeys(turn.batches, KafkaError("the producer closed before the broker answered")))
            raise
        else:
            for topic, partitions in response.topics:
                for info in partitions:
                    if info[1]:
                        failed[TopicPartition(topic, info[0])] = for_code(info[1])()
        if any(getattr(error, "invalid_metadata", False) for error in failed.values()):
            self.client.force_metadata_update()
        self._settle(turn, failed)

    @staticmethod
    def _settle(turn: _Turn, failed: dict[TopicPartition, KafkaError]) -> None:
        if turn.deadline is not None:
            turn.deadline.cancel()
        for waiter, tps in turn.waiters:
            if waiter.done():
                continue
            refused = {tp: failed[tp] for tp in tps if tp in failed}
            if refused:
                waiter.set_exception(TurnFailed(refused))
            else:
                waiter.set_result(None)
