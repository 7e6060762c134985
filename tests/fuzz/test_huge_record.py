"""A record near the broker's size limit on an input topic (found by the topic fuzz suite: it jammed the relay).

Its dlq record copied the whole value (base64: a third bigger), more than the relay producer's default 1 MB
request, and the relay retried MessageSizeTooLargeError forever, holding up every later transition. Now the dlq
record keeps at most 64 KiB of the value with its size and sha256 (the replay re-reads the original from its
source position), and an outbox row the broker can never take is replaced by a small dlq note.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from app import topics
from app.replay_records import parse_dlq_record
from app.settings import Settings
from streams import decode
from streams.relay import OutboxRelay
from streams.route import Source
from tests.fuzz.test_topic_fuzz import good_record
from tests.harness import WorkerProcess, eventually, fetch_all, produce_at, read_records, run_cli


async def test_a_huge_garbage_record_is_dead_lettered_and_later_transitions_still_flow(
    settings: Settings, pool: Any, worker: WorkerProcess
) -> None:
    huge = b"\xff" + b"z" * 1_000_000
    [position] = await produce_at(settings.kafka_bootstrap, [(settings.topic(topics.AGENT_EVENTS), b"huge", huge)])
    after = f"after-huge-{uuid.uuid4().hex[:12]}"
    await produce_at(settings.kafka_bootstrap, [(settings.topic(topics.AGENT_EVENTS), *good_record(after)[1:])])

    async def dlq_and_transition() -> Any:
        dlq = await read_records(settings.kafka_bootstrap, settings.topic(topics.DLQ), timeout=1.0)
        moved = await read_records(settings.kafka_bootstrap, settings.topic(topics.AGENT_TRANSITIONS), timeout=1.0)
        mine = [r for r in dlq if r.key == b"huge"]
        return mine if mine and any(json.loads(r.value)["subject"] == after for r in moved) else None

    [record] = await eventually(dlq_and_transition, timeout=60, what="the huge record's dlq record and the next transition")
    body = json.loads(record.value)
    assert len(record.value) < 100_000 and body["truncated"] is True
    assert (body["value_size"], body["value_sha256"]) == (len(huge), hashlib.sha256(huge).hexdigest())
    assert (body["source"]["topic"], body["source"]["partition"], body["source"]["offset"]) == position
    entry = parse_dlq_record(record.partition, record.offset, record.timestamp, record.value)
    assert entry.truncated and entry.value == huge[: decode.DLQ_VALUE_BYTES]
    assert worker.process is not None and worker.process.poll() is None, "the worker died"
    # The replay re-reads the original from its source position (the dlq holds only its start) ...
    code, output = await run_cli(settings, "replay", "--entity", "huge")
    assert code == 0 and "replayed=1" in output and "unavailable=0" in output, output
    again = await read_records(settings.kafka_bootstrap, settings.topic(topics.AGENT_EVENTS), timeout=2.0)
    assert [r.value == huge for r in again if r.key == b"huge"] == [True, True]
    # ... and refuses, saying so, a truncated copy whose original is gone or differs.
    forged = dict(body, value_sha256="0" * 64, id=str(uuid.uuid4()), key="forged")
    forged["source"] = dict(body["source"], offset=position[2] + 1)  # the good record there: another digest
    await produce_at(settings.kafka_bootstrap, [(settings.topic(topics.DLQ), b"forged", json.dumps(forged).encode())])
    code, output = await run_cli(settings, "replay", "--entity", "forged")
    assert code == 0 and "unavailable=1" in output and "replayed=0" in output and "no longer there" in output, output


def test_a_dlq_record_of_a_small_value_copies_it_whole_and_a_long_key_is_cut() -> None:
    source = Source("t.agent.events", 1, 7, b"k" * 300, b'{"id": "x"}')
    _, _, key, payload = decode.dlq_row(source, "why", "t.dlq")
    body = json.loads(payload)
    assert body["value"] == '{"id": "x"}' and len(key) == 255 and body["truncated"] is True
    cut = Source("t.agent.events", 1, 8, None, "é".encode() * 40_000)  # cut inside a character: still text
    body = json.loads(decode.dlq_row(cut, "why", "t.dlq")[3])
    assert body["value"] == "é" * (decode.DLQ_VALUE_BYTES // 2) and body["value_size"] == 80_000


async def test_an_unpublishable_outbox_row_becomes_a_dlq_note_and_the_rest_flow(settings: Settings, pool: Any) -> None:
    """Whatever the producer's limit, a row the broker cannot take must not block the rows behind it."""
    tag = uuid.uuid4().hex[:8]
    topic = settings.topic(topics.TASK_TRANSITIONS)
    rows = [(f"{tag}-1", topic, "k1", b"small"), (f"{tag}-2", topic, "k2", b"x" * 5000), (f"{tag}-3", topic, "k3", b"ok")]
    async with pool.acquire() as conn:
        async with conn.cursor() as cur:
            await cur.execute("UPDATE outbox SET published_at = CURRENT_TIMESTAMP(3) WHERE published_at IS NULL")
            await cur.executemany("INSERT INTO outbox (event_id, topic, message_key, payload) VALUES (%s, %s, %s, %s)", rows)
        await conn.commit()
    sent: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []

    async def send(topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        if len(value) > 4096:
            raise MessageSizeTooLargeError("larger than max_request_size")
        sent.append((topic, key, headers))

        async def ack() -> None:
            return None

        return ack()

    relay = OutboxRelay(
        pool, send, database_url=settings.database_url.get_secret_value(), batch_size=10, dlq_topic=settings.topic(topics.DLQ)
    )
    async with pool.acquire() as conn:
        assert await relay.publish_once(conn) == 3  # before: raised MessageSizeTooLargeError, every round
        assert await relay.publish_once(conn) == 1  # the note, in the row's place
        assert await relay.publish_once(conn) == 0
    structured = [("content-type", b"application/cloudevents+json; charset=UTF-8")]  # transitions; the dlq note: none
    assert sent == [(topic, b"k1", structured), (topic, b"k3", structured), (settings.topic(topics.DLQ), b"k2", [])]
    [note] = await fetch_all(pool, "SELECT payload, published_at FROM outbox WHERE event_id = %s", [f"{tag}-2"])
    body = json.loads(bytes(note["payload"]))
    assert note["published_at"] is not None and body["outbox"]["event_id"] == f"{tag}-2" and body["outbox"]["size"] == 5000
    assert "MessageSizeTooLargeError" in body["reason"]
