"""The error policy in the router (streams/router.py), against the real database and broker: a record it cannot
read its keys from goes to the dlq from the router, with its reason and position, and its batch-mates are routed;
a failure that hits every record alike holds the router instead of dead-lettering the stream."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from app import topics
from app.settings import Settings
from app.topics import router_group
from db.errors import HOLD_AFTER, HeldError
from streams import router as router_stage
from streams.intake import ConsumedRecord
from streams.route import unframe
from streams.router import Router
from tests.harness import fetch_all, read_records, read_topic
from tests.integration.test_fold_engine import T0, task_created


@pytest.fixture
async def router(settings: Settings, pool: Any) -> Iterator[Router]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        return await producer.send(topic, value=value, key=key)

    yield Router(pool, settings, send)
    await producer.stop()


def _records(settings: Settings, ids: list[str]) -> list[ConsumedRecord]:
    topic = settings.topic(topics.CONTROL_EVENTS)
    return [
        ConsumedRecord(topic, 0, i, t.encode(), json.dumps({**task_created(t, "p"), "time": T0}).encode(), 1.0 + i)
        for i, t in enumerate(ids)
    ]


def _unreadable(poison: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Records whose keys the router cannot read (a stand-in for values that break `routed_keys`)."""
    real = router_stage.routed_keys

    def routed_keys(short: str, source: Any, questions: Any = None) -> Any:
        if json.loads(source.value)["task_id"] in poison:
            raise RecursionError("maximum recursion depth exceeded while decoding a JSON object")
        return real(short, source, questions)

    monkeypatch.setattr(router_stage, "routed_keys", routed_keys)


async def _stored(pool: Any, settings: Settings) -> int:
    rows = await fetch_all(pool, "SELECT next_offset FROM fold_positions WHERE consumer = %s AND topic = %s",
                           [router_group(settings), settings.topic(topics.CONTROL_EVENTS)])  # fmt: skip
    return int(rows[0]["next_offset"])


async def test_a_record_the_router_cannot_read_goes_to_the_dlq_and_its_batch_mates_are_routed(
    settings: Settings, pool: Any, router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = uuid.uuid4().hex[:8]
    ids = [f"t-rp{i}-{u}" for i in range(3)]
    _unreadable({ids[1]}, monkeypatch)
    records = _records(settings, ids)
    assert await router.route_batch(records) == 3
    assert await _stored(pool, settings) == 3
    framed = await read_records(settings.kafka_bootstrap, settings.topic(topics.FOLD_TASKS))
    assert sorted(unframe(r.value).offset for r in framed) == [0, 2]  # the batch-mates, framed with their position
    dead = await read_topic(settings.kafka_bootstrap, settings.topic(topics.DLQ))
    [record] = [d for d in dead if d.get("source", {}).get("offset") == 1]
    assert "the router cannot read this record: RecursionError" in record["reason"]
    assert record["source"] == {"topic": records[1].topic, "partition": 0, "offset": 1}
    assert json.loads(record["value"])["task_id"] == ids[1]


async def test_every_record_failing_alike_holds_the_router(
    settings: Settings, pool: Any, router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = uuid.uuid4().hex[:8]
    ids = [f"t-rh{i}-{u}" for i in range(HOLD_AFTER + 2)]
    _unreadable(set(ids), monkeypatch)
    with pytest.raises(HeldError, match="the code fails"):
        await router.route_batch(_records(settings, ids))
    rows = await fetch_all(pool, "SELECT next_offset FROM fold_positions WHERE consumer = %s AND topic = %s",
                           [router_group(settings), settings.topic(topics.CONTROL_EVENTS)])  # fmt: skip
    assert not rows or int(rows[0]["next_offset"]) == 0  # the batch's transaction rolled back: the position waits
    assert not await read_topic(settings.kafka_bootstrap, settings.topic(topics.DLQ))  # and nothing was dead-lettered
    assert not await read_records(settings.kafka_bootstrap, settings.topic(topics.FOLD_TASKS))


async def test_a_record_too_large_to_route_goes_to_the_dlq_cut_and_the_rest_are_routed(
    settings: Settings, pool: Any, router: Router
) -> None:
    # A direct producer wrote past max.message.bytes (Tansu does not enforce it): re-producing it would fail on
    # every retry and hold the router for good.
    u = uuid.uuid4().hex[:8]
    ids = [f"t-rb{i}-{u}" for i in range(3)]
    records = _records(settings, ids)
    big = {**json.loads(records[1].value), "description": "x" * (settings.max_event_bytes + 200_000)}
    records[1] = ConsumedRecord(records[1].topic, 0, 1, records[1].key, json.dumps(big).encode(), 2.0)
    assert await router.route_batch(records) == 3
    assert await _stored(pool, settings) == 3
    framed = await read_records(settings.kafka_bootstrap, settings.topic(topics.FOLD_TASKS))
    assert sorted(unframe(r.value).offset for r in framed) == [0, 2]
    dead = await read_topic(settings.kafka_bootstrap, settings.topic(topics.DLQ))
    [record] = [d for d in dead if d.get("source", {}).get("offset") == 1]
    assert "too large to route" in record["reason"] and record["truncated"] is True
    assert record["value_size"] == len(records[1].value)
