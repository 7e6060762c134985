"""The ingest fast path to the broker: records leave as one produce request per partition leader (acks=all),
with one record batch per partition, through aiokafka's own client (its connections, metadata and protocol
versions). One request is out per leader at a time: what the requests publish meanwhile gathers into the next
one, which leaves as soon as the broker answered (at once, at the end of the loop turn, when none is out).

Why: aiokafka's `send()` costs about 60 µs of CPU per record here (a delivery future per record, a batch per
partition drained by its sender task, and a timer per call for the request's deadline), which was a quarter of
an ingest request's CPU; gathered like this it is about 30 µs. It is a fast path only. Records whose partition
leader is not known yet, a request whose records span leaders, a record over the batch size, and every error
the broker answers go through aiokafka's producer (with its retries) instead, and the idempotent producer is
never bypassed (its sequence numbers live in aiokafka). Order per key holds while the broker answers: one
request at a time per leader, as aiokafka's sender does (pipelined requests also made Tansu slower to answer).
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    """One produce request being filled."""

    timeout: float
    deadline: asyncio.TimerHandle | None = None
    size: int = 0
    batches: dict[TopicPartition, _Batch] = field(default_factory=dict)
    waiters: list[tuple[asyncio.Future[None], tuple[TopicPartition, ...]]] = field(default_factory=list)

    def expire(self) -> None:
        for waiter, _ in self.waiters:
            if not waiter.done():
                waiter.set_exception(TimeoutError("the broker did not acknowledge the produce request in time"))

    @property
    def abandoned(self) -> bool:
        """Every request gave up on it (deadline passed): sending it now would only repeat what they spooled."""
        return all(waiter.done() for waiter, _ in self.waiters)


@dataclass(slots=True)
class _Lane:
    """The requests to one leader: the one being filled, full ones waiting, and whether one is out."""

    node: int
    filling: _Turn | None = None
    full: deque[_Turn] = field(default_factory=deque)
    busy: bool = False
    scheduled: bool = False


@dataclass(frozen=True, slots=True)
class _Route:
    partitions: list[int]
    available: list[int]
    leaders: dict[int, int]


class TurnBatcher:
    """`submit(records, timeout)` places records into the request being filled for their leader, or says it cannot
    (None)."""

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
        self._lanes: dict[int, _Lane] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closing = False
        self.requests_sent = 0  # produce requests and the records in them, for tests and curiosity
        self.records_sent = 0
        self._listener: Callable[[ClusterMetadata], None] = lambda _cluster: self._routes.clear()
        client.cluster.add_listener(self._listener)

    async def close(self, timeout: float) -> None:
        """Stop following metadata; wait up to `timeout` seconds for the produce requests still out."""
        self.client.cluster.remove_listener(self._listener)
        self._closing = True  # nothing new leaves; a request still waiting meets its deadline
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
        """The request being filled for `node`; a new one when the records would not fit (the full one waits)."""
        lane = self._lanes.get(node)
        if lane is None:
            lane = self._lanes[node] = _Lane(node)
        turn = lane.filling
        if turn is not None and (turn.timeout != timeout or turn.size + need > self.batch_bytes):
            lane.full.append(turn)
            turn = None
        if turn is None:
            loop = asyncio.get_running_loop()
            turn = lane.filling = _Turn(timeout)
            turn.deadline = loop.call_later(timeout, turn.expire)
            if not lane.busy and not lane.scheduled:
                lane.scheduled = True
                loop.call_soon(self._next, lane)  # at the end of this loop turn
        return turn

    def _next(self, lane: _Lane) -> None:
        """Send the lane's next request unless one is out (its answer calls this again)."""
        lane.scheduled = False
        while not lane.busy and not self._closing:
            if lane.full:
                turn = lane.full.popleft()
            elif lane.filling is not None:
                turn, lane.filling = lane.filling, None
            else:
                return
            if turn.abandoned:
                continue
            lane.busy = True
            task = asyncio.create_task(self._produce(lane, turn))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _produce(self, lane: _Lane, turn: _Turn) -> None:
        try:
            await self._request(lane.node, turn)
        finally:
            lane.busy = False
            self._next(lane)

    async def _request(self, node: int, turn: _Turn) -> None:
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
            response = await self.client.send(node, request)
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
