"""AIWORKER_HEARTBEAT_GRANULARITY_SECONDS (issue 17): a heartbeat that only moves its agent's times forward by less
than the granularity writes no row; a status or task change always writes; the sweeper still marks a silent agent
offline, at most the granularity late and never early, and never a live one whose stored times lag behind."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app import topics
from app.settings import Settings
from streams.fold import Fold
from streams.intake import ConsumedRecord
from streams.sweeper import Sweeper
from tests.harness import fetch_all

OFFLINE, GRANULARITY = 60, 15


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Feed:
    """Records of an agent.events partition of the test's own (the sweeper's clock is per partition: other tests'
    agents on partition 0 would move it), received (broker timestamp) when the test says."""

    def __init__(self, settings: Settings, partition: int) -> None:
        self.topic = settings.topic(topics.AGENT_EVENTS)
        self.partition = partition
        self.offset = 0

    def record(self, agent: str, event: dict[str, Any], received: datetime) -> ConsumedRecord:
        self.offset += 1
        body = {"id": f"{event['type']}-{agent}-{self.offset}", "time": _iso(received), "agent_id": agent, **event}
        return ConsumedRecord(
            self.topic, self.partition, self.offset - 1, agent.encode(), json.dumps(body).encode(), received.timestamp()
        )


async def _row(pool: Any, agent: str) -> dict[str, Any]:
    sql = "SELECT status, current_task_id, last_heartbeat, last_seen_at, updated_at FROM agents WHERE id = %s"
    return (await fetch_all(pool, sql, [agent]))[0]


async def test_a_heartbeat_within_the_granularity_leaves_the_row_and_a_status_change_always_writes(
    settings: Settings, pool: Any
) -> None:
    settings = settings.model_copy(update={"heartbeat_granularity_seconds": GRANULARITY})
    fold, feed, agent = Fold(pool, settings), Feed(settings, 41), f"a-gran-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    await fold.apply_batch([feed.record(agent, {"type": "agent.registered", "pod_name": agent}, start)])
    await fold.apply_batch([feed.record(agent, {"type": "agent.heartbeat", "status": "idle"}, start + timedelta(seconds=1))])
    first = await _row(pool, agent)
    assert first["status"] == "idle" and first["last_seen_at"] == (start + timedelta(seconds=1)).replace(tzinfo=None)
    for seconds in (6, 11, 15):  # less than 15 s after the stored heartbeat: nothing written, every column as it was
        stats = await fold.apply_batch([feed.record(agent, {"type": "agent.heartbeat", "status": "idle"},
                                                    start + timedelta(seconds=seconds))])  # fmt: skip
        assert stats.unchanged == 1 and await _row(pool, agent) == first
    await fold.apply_batch([feed.record(agent, {"type": "agent.heartbeat", "status": "idle"}, start + timedelta(seconds=16))])
    moved = await _row(pool, agent)
    assert moved["last_heartbeat"] == moved["last_seen_at"] == (start + timedelta(seconds=16)).replace(tzinfo=None)
    # A new status within the granularity writes at once (and its time with it).
    busy = {"type": "agent.heartbeat", "status": "busy"}
    await fold.apply_batch([feed.record(agent, busy, start + timedelta(seconds=17))])
    after = await _row(pool, agent)
    assert after["status"] == "busy" and after["last_heartbeat"] == (start + timedelta(seconds=17)).replace(tzinfo=None)
    transitions = await fetch_all(pool, "SELECT payload FROM outbox WHERE topic = %s AND message_key = %s",
                                  [settings.topic(topics.AGENT_TRANSITIONS), agent])  # fmt: skip
    assert [json.loads(bytes(r["payload"]))["data"]["to"] for r in transitions] == ["initializing", "idle", "busy"]


async def test_the_sweeper_marks_a_silent_agent_offline_at_most_the_granularity_late_and_a_live_one_never(
    settings: Settings, pool: Any
) -> None:
    """Two agents beat every 10 s (so every other heartbeat is written: the stored times lag up to 10 s); one stops.
    Swept a second after each heartbeat round: the live one stays, the silent one goes offline once its stored
    heartbeat is 60 + 15 s old by the stream's clock, which is 60 to 75 s after its last heartbeat, never before 60."""
    settings = settings.model_copy(update={"heartbeat_granularity_seconds": GRANULARITY, "agent_offline_seconds": OFFLINE})
    fold, sweeper, feed = Fold(pool, settings), Sweeper(pool, settings), Feed(settings, 42)
    u = uuid.uuid4().hex[:8]
    live, silent = f"a-live-{u}", f"a-silent-{u}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    await fold.apply_batch([feed.record(a, {"type": "agent.registered", "pod_name": a}, start) for a in (live, silent)])
    last_silent = start
    for step in range(1, 16):
        received = start + timedelta(seconds=10 * step)
        beating = [live] if step > 2 else [live, silent]  # its last heartbeat (20 s) is not written: 10 s after it
        if silent in beating:
            last_silent = received
        await fold.apply_batch([feed.record(a, {"type": "agent.heartbeat", "status": "idle"}, received) for a in beating])
        await sweeper.sweep_once(received + timedelta(seconds=1))
        rows = await fetch_all(pool, "SELECT id, status FROM agents WHERE id IN (%s, %s)", [live, silent])
        status = {r["id"]: r["status"] for r in rows}
        assert status[live] == "idle", (step, status)
        silence = received + timedelta(seconds=1) - last_silent
        if silence < timedelta(seconds=OFFLINE):
            assert status[silent] == "idle", (step, status)
        if silence >= timedelta(seconds=OFFLINE + GRANULARITY + 10):  # + the time between two sweeps here
            assert status[silent] == "offline", (step, status)
    rows = await fetch_all(pool, "SELECT payload FROM outbox WHERE topic = %s AND message_key IN (%s, %s)",
                           [settings.topic(topics.AGENT_TRANSITIONS), live, silent])  # fmt: skip
    offline = [
        json.loads(bytes(r["payload"]))["subject"] for r in rows if json.loads(bytes(r["payload"]))["data"]["to"] == "offline"
    ]
    assert offline == [silent]
