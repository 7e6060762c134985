"""The produce fast path (webhooks/turn_batcher.py) on a real broker: records published in one loop turn leave
together, land byte for byte on the partition aiokafka's producer would choose, in order per key; what it cannot
take (unknown metadata, a record over the batch size, a refused request) goes through aiokafka's producer; a
broker that does not answer fails the request at its deadline."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.broker import EmbeddedBroker
from app.settings import Settings, load_settings
from tests.webhooks.ingest_helpers import Raw, read_raw
from webhooks.publisher import MAX_BATCH_BYTES, KafkaPublisher, OutRecord, PublishError
from webhooks.turn_batcher import TurnBatcher

PARTITIONS = 6


async def new_topic(bootstrap: str) -> str:
    topic = f"turns-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    return topic


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[KafkaPublisher]:
    running = KafkaPublisher(settings, settings.kafka_bootstrap)
    assert await running.ensure_started()
    yield running
    await running.stop()


def turns_of(publisher: KafkaPublisher) -> TurnBatcher:
    assert publisher.turns is not None, "the fast path is on by default"
    return publisher.turns


def records(topic: str, count: int, *, keys: int = 13, size: int = 300) -> list[OutRecord]:
    return [OutRecord(topic, f"owner/repo-{i % keys}".encode(), f"{i:06d}:".encode() + os.urandom(size)) for i in range(count)]


async def publish_concurrently(publisher: KafkaPublisher, sent: list[OutRecord], timeout: float = 5.0) -> None:
    await asyncio.gather(*(publisher.publish([record], timeout=timeout) for record in sent))


def by_value(raws: list[Raw]) -> dict[bytes, Raw]:
    return {raw.value: raw for raw in raws}


async def test_one_turn_leaves_as_few_requests_and_lands_where_aiokafka_would_put_it(
    publisher: KafkaPublisher, settings: Settings
) -> None:
    fast_topic, slow_topic = await new_topic(settings.kafka_bootstrap), await new_topic(settings.kafka_bootstrap)
    await publisher.publish(records(fast_topic, 1), timeout=5.0)  # the topic's metadata: the first goes through aiokafka
    turns = turns_of(publisher)
    requests_before, records_before = turns.requests_sent, turns.records_sent
    sent = records(fast_topic, 300)
    await publish_concurrently(publisher, sent)
    assert turns.records_sent - records_before == 300
    assert turns.requests_sent - requests_before < 30, "records of one turn share a produce request"

    slow = KafkaPublisher(
        load_settings(kafka_bootstrap=settings.kafka_bootstrap, kafka_turn_batching=False), settings.kafka_bootstrap
    )
    assert await slow.ensure_started() and slow.turns is None
    try:
        for record in sent:  # one by one: aiokafka's own partitioner decides
            await slow.publish([OutRecord(slow_topic, record.key, record.value)], timeout=5.0)
    finally:
        await slow.stop()

    fast_raws = by_value(await read_raw(settings.kafka_bootstrap, fast_topic, expect=301, timeout=10.0))
    slow_raws = by_value(await read_raw(settings.kafka_bootstrap, slow_topic, expect=300, timeout=10.0))
    for record in sent:
        raw = fast_raws[record.value]  # byte for byte, key included
        assert raw.key == record.key
        assert raw.partition == slow_raws[record.value].partition
    for key in {record.key for record in sent}:  # in publishing order per key (gather starts them in order)
        mine = [fast_raws[r.value] for r in sent if r.key == key]
        assert [raw.offset for raw in mine] == sorted(raw.offset for raw in mine)


async def test_a_full_turn_leaves_and_the_next_one_starts(publisher: KafkaPublisher, settings: Settings) -> None:
    topic = await new_topic(settings.kafka_bootstrap)
    await publisher.publish(records(topic, 1), timeout=5.0)
    turns = turns_of(publisher)
    requests_before = turns.requests_sent
    sent = records(topic, 60, size=20_000)  # 1.2 MB in one turn: at least five requests of at most 256 KiB
    await publish_concurrently(publisher, sent)
    assert turns.requests_sent - requests_before >= 5
    raws = by_value(await read_raw(settings.kafka_bootstrap, topic, expect=61, timeout=10.0))
    assert all(raws[record.value].key == record.key for record in sent)


async def test_a_multi_record_request_is_acknowledged_whole(publisher: KafkaPublisher, settings: Settings) -> None:
    topic = await new_topic(settings.kafka_bootstrap)
    await publisher.publish(records(topic, 1), timeout=5.0)
    turns = turns_of(publisher)
    before = turns.records_sent
    batch = records(topic, 40, keys=40)
    await publisher.publish(batch, timeout=5.0)
    assert turns.records_sent - before == 40
    raws = by_value(await read_raw(settings.kafka_bootstrap, topic, expect=41, timeout=10.0))
    assert {record.value for record in batch} <= set(raws)


async def test_what_the_fast_path_cannot_take_goes_through_aiokafka(publisher: KafkaPublisher, settings: Settings) -> None:
    topic = await new_topic(settings.kafka_bootstrap)
    turns = turns_of(publisher)
    before = turns.records_sent
    unknown = records(topic, 1)  # no metadata for the topic yet
    huge = [OutRecord(topic, b"owner/huge", os.urandom(MAX_BATCH_BYTES + 1))]  # over one batch
    await publisher.publish(unknown, timeout=5.0)
    await publisher.publish(huge, timeout=5.0)
    assert turns.records_sent == before
    assert (publisher.counts.batched, publisher.counts.producer) == (0, 2)
    raws = by_value(await read_raw(settings.kafka_bootstrap, topic, expect=2, timeout=10.0))
    assert unknown[0].value in raws and huge[0].value in raws


async def test_a_refused_turn_is_sent_again_through_aiokafka(publisher: KafkaPublisher, settings: Settings) -> None:
    topic = await new_topic(settings.kafka_bootstrap)
    await publisher.publish(records(topic, 1), timeout=5.0)
    turns = turns_of(publisher)
    route = turns._route(topic)
    assert route is not None
    route.leaders.update(dict.fromkeys(route.leaders, 9999))  # a leader the client cannot reach: the request fails
    tried = turns.records_sent
    sent = records(topic, 20)
    await publish_concurrently(publisher, sent)
    assert turns.records_sent - tried == 20, "the fast path tried them first"
    assert publisher.counts.refused == 20
    raws = await read_raw(settings.kafka_bootstrap, topic, expect=21, timeout=10.0)
    values = [raw.value for raw in raws]
    assert all(values.count(record.value) == 1 for record in sent), "each record exactly once"


async def test_a_broker_that_does_not_answer_fails_the_turn_at_its_deadline_and_what_waited_is_not_sent(
    own_broker: EmbeddedBroker,
) -> None:
    bootstrap = own_broker.bootstrap
    topic = await new_topic(bootstrap)
    publisher = KafkaPublisher(load_settings(kafka_bootstrap=bootstrap), bootstrap)
    assert await publisher.ensure_started()
    out, waited = records(topic, 5), records(topic, 5)
    try:
        await publisher.publish(records(topic, 1), timeout=5.0)
        assert own_broker.process is not None
        os.kill(own_broker.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            first = asyncio.gather(*(publisher.publish([r], timeout=0.5) for r in out))
            await asyncio.sleep(0.05)  # the first request is out; these wait behind it, past their deadline
            with pytest.raises(PublishError, match="did not acknowledge"):
                await publish_concurrently(publisher, waited, timeout=0.5)
            with pytest.raises(PublishError, match="did not acknowledge"):
                await first
            assert time.monotonic() - started < 3.0, "the deadline, not the producer's request timeout"
        finally:
            os.kill(own_broker.process.pid, signal.SIGCONT)
        await publisher.publish(records(topic, 1), timeout=5.0)  # the lane moves on once the broker answers
    finally:
        await publisher.stop()
    values = {raw.value for raw in await read_raw(bootstrap, topic, expect=7, timeout=5.0)}
    assert not values & {record.value for record in waited}, "a request that every waiter gave up on is not sent"
