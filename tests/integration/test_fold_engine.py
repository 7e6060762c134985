"""The fold engine against the real database (no broker needed): parking, exactly once, logs, the sweeper."""

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

T0 = "2026-11-22T10:00:00Z"


def project_upserted(project: str) -> dict[str, Any]:
    return {"id": f"p{project}", "type": "project.upserted", "time": T0, "project_id": project, "name": "P",
            "k8s_namespace": project}  # fmt: skip


def task_created(task: str, project: str) -> dict[str, Any]:
    return {"id": f"c{task}", "type": "task.created", "time": T0, "task_id": task, "project_id": project, "title": "t"}


def agent_registered(agent: str, time: str = T0) -> dict[str, Any]:
    return {"id": f"r{agent}", "type": "agent.registered", "time": time, "agent_id": agent, "pod_name": agent}


class Feed:
    """Records as they would sit on the input topics, with growing offsets per (topic, partition)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.offsets: dict[tuple[str, int], int] = {}

    def record(self, short: str, event: dict[str, Any], partition: int = 0) -> ConsumedRecord:
        topic = self.settings.topic(short)
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        return ConsumedRecord(topic, partition, offset, None, json.dumps(event).encode())


def ids(tag: str) -> tuple[str, str, str]:
    u = uuid.uuid4().hex[:8]
    return f"p-{tag}-{u}", f"t-{tag}-{u}", f"a-{tag}-{u}"


async def test_events_wait_for_rows_of_other_partitions_and_keep_their_order(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    project, task, agent = ids("park")
    await fold.apply_batch([feed.record(topics.AGENT_EVENTS, agent_registered(agent))])
    early = [
        feed.record(topics.CONTROL_EVENTS, task_created(task, project)),
        feed.record(topics.AGENT_EVENTS, {"id": f"s{task}", "type": "task.started", "time": T0, "agent_id": agent,
                                          "task_id": task}),
        feed.record(topics.CONTROL_EVENTS, {"id": f"x{task}", "type": "task.cancelled", "time": T0, "task_id": task}, 1),
    ]  # fmt: skip
    stats = await fold.apply_batch(early)
    assert (stats.parked, stats.refused, stats.applied) == (3, 0, 0)
    assert len(await fetch_all(pool, "SELECT id FROM parked_events WHERE entity IN (%s, %s)", [task, project])) == 3
    project_event = project_upserted(project)
    stats = await fold.apply_batch([feed.record(topics.CONTROL_EVENTS, project_event, 2)])
    assert stats.applied == 4 and stats.refused == 0
    [row] = await fetch_all(pool, "SELECT state, assigned_agent_id FROM tasks WHERE id = %s", [task])
    assert (row["state"], row["assigned_agent_id"]) == ("cancelled", agent)  # created, started, cancelled: in order
    assert not await fetch_all(pool, "SELECT id FROM parked_events WHERE entity = %s", [task])


async def test_redelivery_and_the_same_event_id_change_nothing(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    project, task, _ = ids("once")
    batch = [
        feed.record(topics.CONTROL_EVENTS, project_upserted(project)),
        feed.record(topics.CONTROL_EVENTS, task_created(task, project)),
    ]  # fmt: skip
    assert (await fold.apply_batch(batch)).applied == 2
    outbox = await fetch_all(pool, "SELECT COUNT(*) AS n FROM outbox")
    assert (await fold.apply_batch(batch)).replayed == 2
    again = feed.record(topics.CONTROL_EVENTS, json.loads(batch[1].value))  # the same id at a new offset
    assert (await fold.apply_batch([again])).duplicates == 1
    assert await fetch_all(pool, "SELECT COUNT(*) AS n FROM outbox") == outbox


async def test_log_batches_become_rows_once(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    _, task, agent = ids("logs")
    register = agent_registered(agent)
    lines = [{"id": f"{agent}-{i}", "type": "log", "time": T0, "agent_id": agent, "message": f"m{i}", "task_id": task}
             for i in range(100)]  # fmt: skip
    batch = [feed.record(topics.AGENT_EVENTS, register),
             feed.record(topics.AGENT_EVENTS, {"id": f"b{agent}", "type": "log.batch", "time": T0, "agent_id": agent,
                                               "logs": lines})]  # fmt: skip
    stats = await fold.apply_batch(batch)
    assert stats.logs == 100
    # A new consumer group replays the same records: log positions are per agent, for every group.
    other = Fold(pool, settings.model_copy(update={"worker_id": f"{settings.worker_id}-other"}))
    assert (await other.apply_batch(batch)).logs == 0
    rows = await fetch_all(pool, "SELECT task_id, metadata FROM agent_logs WHERE agent_id = %s", [agent])
    assert len(rows) == 100
    assert rows[0]["task_id"] is None and json.loads(rows[0]["metadata"]) == {"task_id": task}  # unknown task kept aside
    assert not await fetch_all(pool, "SELECT event_id FROM processed_events WHERE event_id LIKE %s", [f"{agent}-%"])


async def test_a_silent_agent_goes_offline_once(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    _, _, agent = ids("stale")
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    await fold.apply_batch([feed.record(topics.AGENT_EVENTS, agent_registered(agent, old))])
    sweeper = Sweeper(pool, settings)
    assert await sweeper.sweep_once() >= 1
    [row] = await fetch_all(pool, "SELECT status FROM agents WHERE id = %s", [agent])
    assert row["status"] == "offline"
    assert await sweeper.sweep_once() == 0 or not await fetch_all(
        pool, "SELECT id FROM agents WHERE id = %s AND status <> 'offline'", [agent]
    )
    sent = await fetch_all(pool, "SELECT payload FROM outbox WHERE message_key = %s AND topic = %s",
                           [agent, settings.topic(topics.AGENT_TRANSITIONS)])  # fmt: skip
    moves = [(json.loads(r["payload"])["data"]["from"], json.loads(r["payload"])["data"]["to"]) for r in sent]
    assert moves.count(("initializing", "offline")) == 1
