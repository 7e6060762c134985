"""The same event id twice changes nothing, log lines included (issue 12, point 8): a line is stored once per
(agent, event id), whatever record carried it, and the fold still skips a redelivered record by its position."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from app import topics
from app.settings import Settings
from streams.fold import Fold
from streams.intake import ConsumedRecord
from tests.harness import fetch_all, read_records
from tests.integration.test_fold_engine import T0, Feed, agent_registered
from webhooks.server import init


def line(agent: str, n: int, message: str = "") -> dict[str, Any]:
    return {"id": f"l-{agent}-{n}", "type": "log", "time": T0, "agent_id": agent, "message": message or f"line {n}"}


async def stored(pool: Any, agent: str) -> list[tuple[str, str | None]]:
    rows = await fetch_all(pool, "SELECT message, event_id FROM agent_logs WHERE agent_id = %s ORDER BY id", [agent])
    return [(r["message"], r["event_id"]) for r in rows]


async def test_the_same_log_event_in_two_requests_stores_one_line(settings: Settings, pool: Any) -> None:
    agent = f"a-lid-{uuid.uuid4().hex[:8]}"
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    async with TestClient(TestServer(init(settings, settings.kafka_bootstrap))) as client:
        for body in ([line(agent, 0)], [line(agent, 0), line(agent, 1)], [line(agent, 0)]):  # a retry, then more
            response = await client.post("/events", json=body, headers=service)
            assert response.status == 202, await response.text()
    records = await read_records(settings.kafka_bootstrap, settings.topic(topics.AGENT_EVENTS), timeout=5.0)
    assert len(records) == 3  # three requests, three log.batch records: the web does not remember
    fold, feed = Fold(pool, settings), Feed(settings)
    await fold.apply_batch([feed.record(topics.AGENT_EVENTS, agent_registered(agent))])
    inputs = [ConsumedRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
    stats = await fold.apply_batch(inputs)
    assert stats.invalid == stats.refused == 0, stats
    assert await stored(pool, agent) == [("line 0", f"l-{agent}-0"), ("line 1", f"l-{agent}-1")]
    await fold.apply_batch(inputs)  # redelivered: skipped by position, as before
    assert len(await stored(pool, agent)) == 2


async def test_the_same_batch_produced_twice_stores_its_lines_once(settings: Settings, pool: Any) -> None:
    agent, other = f"a-lid-{uuid.uuid4().hex[:8]}", f"a-lid-{uuid.uuid4().hex[:8]}"
    fold, feed = Fold(pool, settings), Feed(settings)
    batch = {"id": f"b-{agent}", "type": "log.batch", "time": T0, "agent_id": agent,
             "logs": [line(agent, 0), line(agent, 1), line(agent, 0)]}  # fmt: skip
    foreign = line(other, 0) | {"id": f"l-{agent}-0"}  # another agent's line with the same id is its own
    await fold.apply_batch([feed.record(topics.AGENT_EVENTS, agent_registered(a)) for a in (agent, other)])
    stats = await fold.apply_batch([feed.record(topics.AGENT_EVENTS, batch), feed.record(topics.AGENT_EVENTS, foreign)])
    assert stats.invalid == stats.refused == 0, stats
    stats = await fold.apply_batch([feed.record(topics.AGENT_EVENTS, batch, partition=1)])  # produced again
    assert stats.invalid == stats.refused == 0, stats
    assert await stored(pool, agent) == [("line 0", f"l-{agent}-0"), ("line 1", f"l-{agent}-1")]
    assert await stored(pool, other) == [("line 0", f"l-{agent}-0")]
