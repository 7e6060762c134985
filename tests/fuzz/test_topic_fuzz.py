"""Fuzzing the raw input topics, as a misbehaving direct producer would write them, against a worker process.

Hypothesis draws a mix of bad records (garbage bytes, non-objects, wrong field types, missing fields, huge
values, an event on the wrong topic) and good ones (registrations of fresh agents), all produced in one run.
Then: the worker is alive and folded every good record (also those after bad ones); every bad record is in
the dlq with a reason, at its exact source position; no bad record was applied.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app import jsonio, topics
from app.envelope import GiteaEnvelope
from app.events import AGENT_TYPES, CONTROL_TYPES, parse_event
from app.settings import Settings
from tests.fuzz.strategies import FUZZ, T0, bad_utf8, broken_event, hostile_event, json_values, valid_event
from tests.harness import WorkerProcess, eventually, fetch_all, produce_at, read_records

Record = tuple[str, bytes | None, bytes]
SOURCE_TYPES = {topics.AGENT_EVENTS: AGENT_TYPES, topics.CONTROL_EVENTS: CONTROL_TYPES}


def is_valid(short_topic: str, value: bytes) -> bool:
    """What the contract accepts on an input topic (the oracle; the fold may still refuse a valid event)."""
    try:
        if short_topic == topics.GITEA_WEBHOOKS:
            GiteaEnvelope.decode(value)
            return True
        data = jsonio.loads(value, max_depth=jsonio.MAX_DEPTH + jsonio.BATCH_DEPTH)  # the one decoder decides
        return isinstance(data, dict) and parse_event(data).type in SOURCE_TYPES[short_topic]
    except (ValueError, ValidationError):
        return False


def good_record(agent_id: str) -> tuple[str, bytes, bytes]:
    event = {"id": f"reg-{agent_id}", "type": "agent.registered", "time": T0, "agent_id": agent_id, "pod_name": f"pod-{agent_id}"}
    return topics.AGENT_EVENTS, agent_id.encode(), json.dumps(event).encode()


@st.composite
def raw_record(draw: st.DrawFn) -> tuple[str, bytes | None, bytes]:
    """(short topic, key, value) of one record a misbehaving producer might write, or a good one."""
    kind = draw(st.sampled_from(["good", "bytes", "json", "broken", "wrong-topic", "utf8", "big", "gitea", "hostile"]))
    key = draw(st.one_of(st.none(), st.binary(max_size=20), st.just(b"fuzz-agent")))
    topic = draw(st.sampled_from([topics.AGENT_EVENTS, topics.CONTROL_EVENTS]))
    if kind == "good":
        return good_record(f"fz-{uuid.uuid4().hex[:20]}")
    if kind == "bytes":
        return topic, key, draw(st.binary(max_size=200))
    if kind == "json":
        return topic, key, json.dumps(draw(json_values)).encode()
    if kind == "utf8":
        return topic, key, draw(bad_utf8)
    if kind == "hostile":  # strategies.HOSTILE_KINDS: the oracle (`is_valid`) decodes as the fold does
        return topic, key, draw(hostile_event()).raw
    if kind == "broken":
        return topic, key, json.dumps(draw(broken_event())).encode()
    if kind == "big":
        event = draw(valid_event()) | {"filler": "y" * draw(st.integers(100_000, 400_000)), "type": "agent.error", "message": 7}
        return topic, key, json.dumps(event).encode()
    if kind == "gitea":
        return (
            topics.GITEA_WEBHOOKS,
            key,
            draw(st.one_of(st.binary(max_size=100), json_values.map(lambda v: json.dumps(v).encode()))),
        )
    event = draw(valid_event())  # wrong topic for its type
    wrong = topics.CONTROL_EVENTS if event["type"] in AGENT_TYPES else topics.AGENT_EVENTS
    return wrong, key, json.dumps(event).encode()


async def test_bad_records_go_to_the_dlq_and_the_worker_goes_on(settings: Settings, pool: Any, worker: WorkerProcess) -> None:
    drawn: list[tuple[str, bytes | None, bytes]] = []

    @FUZZ
    @given(record=raw_record())
    def collect(record: tuple[str, bytes | None, bytes]) -> None:
        drawn.append(record)

    collect()
    # Good records after all the bad ones, on every partition: the worker must still fold them.
    drawn += [good_record(f"after-{uuid.uuid4().hex[:16]}") for _ in range(3 * settings.topic_partitions)]
    records: list[Record] = [(settings.topic(short), key, value) for short, key, value in drawn]
    positions = await produce_at(settings.kafka_bootstrap, records)
    bad = {pos for pos, (short, _, value) in zip(positions, drawn, strict=True) if not is_valid(short, value)}
    good_agents = [key.decode() for short, key, value in drawn if value.startswith(b'{"id": "reg-') and key is not None]
    print(f"produced {len(records)} record(s): {len(bad)} bad, {len(good_agents)} good registrations")

    async def all_agents() -> bool:
        rows = await fetch_all(
            pool, "SELECT id FROM agents WHERE id IN (" + ", ".join(["%s"] * len(good_agents)) + ")", good_agents
        )
        return len(rows) == len(good_agents)

    await eventually(all_agents, timeout=90, what="every good record to be folded")

    async def every_bad_in_dlq() -> dict[tuple[str, int, int], str] | None:
        dlq = await read_records(settings.kafka_bootstrap, settings.topic(topics.DLQ), timeout=2.0)
        found = {}
        for record in dlq:
            body = json.loads(record.value)
            source = body["source"]
            found[(source["topic"], source["partition"], source["offset"])] = body["reason"]
        return found if bad <= set(found) else None

    found = await eventually(every_bad_in_dlq, timeout=90, what="a dlq record of every bad record")
    assert all(found[pos] for pos in bad), "a dlq record without a reason"
    applied = await fetch_all(pool, "SELECT topic, `partition`, `offset` FROM processed_events")
    # Refused events may be remembered as refused (processed_events.outcome); none may count as applied.
    outcome = await fetch_all(pool, "SHOW COLUMNS FROM processed_events LIKE 'outcome'")
    if outcome:
        applied = await fetch_all(pool, "SELECT topic, `partition`, `offset` FROM processed_events WHERE outcome = 'applied'")
    assert not bad & {(r["topic"], int(r["partition"]), int(r["offset"])) for r in applied}, "a bad record was applied"

    assert worker.process is not None and worker.process.poll() is None, "the worker died"
