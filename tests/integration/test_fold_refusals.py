"""What the database refuses (found by the topic fuzz suite): it is dead-lettered, never jams, never blames another.

A batch the server refuses is folded record by record. The culprit may be an event parked earlier and woken by
the record that creates its row: the record must still apply, the parked event alone go to the dlq, and the
events parked behind it still follow. Values the server can never store (a time outside TIMESTAMP) are refused
when decoded, with a reason, and errors the driver raises as OperationalError for such values are data errors.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from asyncmy.errors import OperationalError

from app import topics
from app.settings import Settings
from db.errors import refused_by_data
from streams.fold import Fold
from tests.harness import fetch_all
from tests.integration.test_fold_engine import T0, Feed, agent_registered, project_upserted, task_created


async def _dlq(pool: Any, settings: Settings) -> list[dict[str, Any]]:
    rows = await fetch_all(pool, "SELECT payload FROM outbox WHERE topic = %s", [settings.topic(topics.DLQ)])
    return [json.loads(bytes(r["payload"])) for r in rows]


async def test_an_event_time_the_database_cannot_store_is_refused_with_a_reason(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    agent, late = f"a-t-{uuid.uuid4().hex[:8]}", f"a-t-{uuid.uuid4().hex[:8]}"
    batch = [
        feed.record(topics.AGENT_EVENTS, agent_registered(agent, "1970-01-01T00:00:00Z")),
        feed.record(topics.AGENT_EVENTS, agent_registered(late)),
        feed.record(topics.AGENT_EVENTS, {"id": f"h{late}", "type": "agent.heartbeat", "time": "2100-01-01T00:00:00Z",
                                          "agent_id": late, "status": "idle"}),
    ]  # fmt: skip
    stats = await fold.apply_batch(batch)  # before: OperationalError 1292, retried forever by the worker
    assert (stats.applied, stats.invalid) == (1, 2)
    assert [r["id"] for r in await fetch_all(pool, "SELECT id FROM agents WHERE id IN (%s, %s)", [agent, late])] == [late]
    reasons = {d["source"]["offset"]: d["reason"] for d in await _dlq(pool, settings) if d["key"] is None}
    assert "outside what the database stores" in reasons[0] and "outside what the database stores" in reasons[2]


def test_values_the_server_refuses_are_data_errors_whatever_the_driver_calls_them() -> None:
    assert refused_by_data(OperationalError(1292, "Incorrect datetime value"))
    assert not refused_by_data(OperationalError(1213, "Deadlock found when trying to get lock"))
    assert not refused_by_data(OperationalError(2013, "Lost connection to MySQL server during query"))


async def test_a_parked_event_that_fails_when_woken_goes_alone_to_the_dlq(settings: Settings, pool: Any) -> None:
    u = uuid.uuid4().hex[:8]
    project, task, agent = f"p-r-{u}", f"t-r-{u}", f"a-r-{u}"
    # The question fails when its handler runs (the test's fault hook stands in for a value the database refuses:
    # the event models now refuse text longer than its column, so no valid event is such a value any more).
    fold, feed = Fold(pool, settings.model_copy(update={"fault_event_id": f"q{task}"})), Feed(settings)
    setup = [
        feed.record(topics.CONTROL_EVENTS, project_upserted(project)),
        feed.record(topics.AGENT_EVENTS, agent_registered(agent)),
    ]  # fmt: skip
    assert (await fold.apply_batch(setup)).applied == 2
    # Both wait for the task.
    poison = {"id": f"q{task}", "type": "task.question_asked", "time": T0, "agent_id": agent, "task_id": task,
              "question_id": f"q-{u}", "question": "Which cart?"}  # fmt: skip
    started = {"id": f"s{task}", "type": "task.started", "time": T0, "agent_id": agent, "task_id": task}
    early = [feed.record(topics.AGENT_EVENTS, started), feed.record(topics.AGENT_EVENTS, poison)]
    assert (await fold.apply_batch(early)).parked == 2
    created = task_created(task, project)
    other = f"a-r2-{u}"
    batch = [
        feed.record(topics.CONTROL_EVENTS, created, 1),
        feed.record(topics.AGENT_EVENTS, agent_registered(other)),
    ]  # fmt: skip
    stats = await fold.apply_batch(batch)
    # Before: the task.created was refused with the question's failure and the question stayed parked, so every
    # later creator of the task was refused in turn (and the events behind it never applied).
    assert (stats.applied, stats.refused) == (3, 1), stats
    [row] = await fetch_all(pool, "SELECT state, assigned_agent_id FROM tasks WHERE id = %s", [task])
    assert (row["state"], row["assigned_agent_id"]) == ("in_progress", agent)
    assert await fetch_all(pool, "SELECT id FROM agents WHERE id = %s", [other])
    assert not await fetch_all(pool, "SELECT id FROM parked_events WHERE entity = %s", [task])
    assert not await fetch_all(pool, "SELECT id FROM task_questions WHERE task_id = %s", [task])
    refused = [d for d in await _dlq(pool, settings) if "AIWORKER_FAULT_EVENT_ID" in d["reason"]]
    assert [(d["source"]["topic"], d["source"]["offset"]) for d in refused] == [(settings.topic(topics.AGENT_EVENTS), 2)]


async def test_a_log_batch_with_a_line_time_the_database_cannot_store_is_refused_whole(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    agent = f"a-lt-{uuid.uuid4().hex[:8]}"

    def batch(n: int, late: bool) -> dict[str, Any]:
        lines = [{"id": f"l{agent}-{n}-{i}", "type": "log", "time": "2100-01-01T00:00:00Z" if late and i == 1 else T0,
                  "agent_id": agent, "message": f"line {i}"} for i in range(3)]  # fmt: skip
        return {"id": f"b{agent}-{n}", "type": "log.batch", "time": T0, "agent_id": agent, "logs": lines}

    stats = await fold.apply_batch([
        feed.record(topics.AGENT_EVENTS, agent_registered(agent)),
        feed.record(topics.AGENT_EVENTS, batch(0, late=True)),
        feed.record(topics.AGENT_EVENTS, batch(1, late=False)),
    ])  # fmt: skip
    assert (stats.applied, stats.invalid, stats.logs) == (1, 1, 3), stats  # the model refuses the line's time
    lines = await fetch_all(pool, "SELECT message, created_at FROM agent_logs WHERE agent_id = %s ORDER BY id", [agent])
    assert [(r["message"], str(r["created_at"])) for r in lines] == [(f"line {i}", "2026-11-22 10:00:00") for i in range(3)]
    reasons = {d["source"]["offset"]: d["reason"] for d in await _dlq(pool, settings) if d["key"] is None}
    assert reasons[1].startswith("invalid event: log.batch.logs.1.time: ") and "time 2100-01-01" in reasons[1]
    assert 2 not in reasons
