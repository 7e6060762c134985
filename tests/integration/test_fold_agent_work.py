"""An agent speaks only for its own work (issue 11, point 3), folded against the real database.

Before: any agent's task.started took over a task that another, working agent held (then it could ask and finish
as its assignee), and log lines about another agent's task were stored as that task's logs.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from app import topics
from app.settings import Settings
from streams.fold import Fold
from tests.harness import fetch_all
from tests.integration.test_fold_engine import T0, Feed, agent_registered, project_upserted, task_created


def event(kind: str, agent: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"{kind}-{agent}-{uuid.uuid4().hex[:8]}", "type": kind, "time": T0, "agent_id": agent, **fields}


async def outbox(pool: Any, settings: Settings, short: str) -> list[dict[str, Any]]:
    rows = await fetch_all(pool, "SELECT payload FROM outbox WHERE topic = %s ORDER BY id", [settings.topic(short)])
    return [json.loads(bytes(r["payload"])) for r in rows]


async def task_row(pool: Any, task: str) -> dict[str, Any]:
    [row] = await fetch_all(pool, "SELECT state, assigned_agent_id, assigned_at, started_at FROM tasks WHERE id = %s", [task])
    return row


async def started_task(fold: Fold, feed: Feed, tag: str) -> tuple[str, str, str]:
    """A task that agent `a` started; agent `b` is registered too. (task, a, b)"""
    u = uuid.uuid4().hex[:8]
    project, task, a, b = f"p-{tag}-{u}", f"t-{tag}-{u}", f"a-{tag}-{u}", f"b-{tag}-{u}"
    setup = [
        feed.record(topics.CONTROL_EVENTS, project_upserted(project)),
        feed.record(topics.CONTROL_EVENTS, task_created(task, project)),
        feed.record(topics.AGENT_EVENTS, agent_registered(a)),
        feed.record(topics.AGENT_EVENTS, agent_registered(b)),
        feed.record(topics.AGENT_EVENTS, event("agent.heartbeat", a, status="idle")),
        feed.record(topics.AGENT_EVENTS, event("task.started", a, task_id=task)),
    ]
    stats = await fold.apply_batch(setup)
    assert stats.refused == 0, stats
    return task, a, b


async def test_an_agent_cannot_take_a_working_agents_task_but_reclaims_it_from_an_offline_one(
    settings: Settings, pool: Any
) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    task, a, b = await started_task(fold, feed, "take")
    taking = feed.record(topics.AGENT_EVENTS, event("task.started", b, task_id=task))
    stats = await fold.apply_batch([taking])
    assert stats.refused == 1, stats  # before: applied, the task silently became b's
    row = await task_row(pool, task)
    assert (row["state"], row["assigned_agent_id"]) == ("in_progress", a)
    [dlq] = [d for d in await outbox(pool, settings, topics.DLQ) if d["source"]["offset"] == taking.offset]
    assert dlq["reason"] == (
        f"task {task} is in_progress with agent {a}, which is busy; agent {b} may take it over only once agent {a} "
        "is offline or error"
    )
    [b_row] = await fetch_all(pool, "SELECT status, current_task_id FROM agents WHERE id = %s", [b])
    assert (b_row["status"], b_row["current_task_id"]) == ("initializing", None)  # the whole event changed nothing

    # Agent a stops (its pod is gone): b's next task.started is a reclaim, and the transition says from whom.
    stopped = feed.record(topics.AGENT_EVENTS, event("agent.stopped", a))
    reclaim = event("task.started", b, task_id=task, time="2026-11-22T10:30:00Z")
    stats = await fold.apply_batch([stopped, feed.record(topics.AGENT_EVENTS, reclaim)])
    assert (stats.applied, stats.refused) == (2, 0), stats
    row = await task_row(pool, task)
    assert (row["state"], row["assigned_agent_id"], str(row["assigned_at"])) == ("in_progress", b, "2026-11-22 10:30:00")
    assert str(row["started_at"]) == "2026-11-22 10:00:00"  # the work began with agent a
    [moved] = [t for t in await outbox(pool, settings, topics.TASK_TRANSITIONS) if t["data"]["cause"]["id"] == reclaim["id"]]
    assert (moved["data"]["from"], moved["data"]["to"]) == ("in_progress", "in_progress")
    assert moved["data"]["reclaimed_from"] == {"agent_id": a, "status": "offline"}
    assert moved["data"]["row"]["assigned_agent_id"] == b

    # Now a (registered again) cannot take it back while b works on it; b asks as the assignee.
    again = [
        feed.record(topics.AGENT_EVENTS, agent_registered(a, "2026-11-22T10:31:00Z") | {"id": f"r2{a}"}),
        feed.record(topics.AGENT_EVENTS, event("task.started", a, task_id=task)),
        feed.record(topics.AGENT_EVENTS, event("task.question_asked", b, task_id=task, question_id=f"q-{b}", question="?")),
    ]
    stats = await fold.apply_batch(again)
    assert (stats.applied, stats.refused) == (2, 1), stats
    assert (await task_row(pool, task))["state"] == "needs_input"


async def test_questions_reviews_and_task_logs_come_only_from_the_assignee(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    task, a, b = await started_task(fold, feed, "speak")
    question = feed.record(topics.AGENT_EVENTS, event("task.question_asked", b, task_id=task, question_id=f"q-{b}", question="?"))
    ready = feed.record(topics.AGENT_EVENTS, event("task.ready_for_review", b, task_id=task, pr_number=9))
    lines = [
        event("log", b, message="own line"),
        event("log", b, message="about a's task", task_id=task),
        event("log", b, message="about a task not folded yet", task_id=f"{task}-later"),
        event("log", b, message="about a's task again", task_id=task),
    ]
    batch = feed.record(topics.AGENT_EVENTS, {"id": f"batch-{b}", "type": "log.batch", "time": T0, "agent_id": b, "logs": lines})
    single = feed.record(topics.AGENT_EVENTS, event("log", b, message="one line about a's task", task_id=task))
    own = feed.record(topics.AGENT_EVENTS, event("log", a, message="a's own line", task_id=task))
    stats = await fold.apply_batch([question, ready, batch, single, own])
    assert (stats.refused, stats.logs) == (4, 3), stats  # question, ready, the batch's foreign lines, the single line
    row = await task_row(pool, task)
    assert (row["state"], row["assigned_agent_id"]) == ("in_progress", a)
    assert not await fetch_all(pool, "SELECT id FROM task_questions WHERE task_id = %s", [task])
    stored = await fetch_all(pool, "SELECT agent_id, task_id, message, metadata FROM agent_logs WHERE agent_id IN (%s, %s) "
                             "ORDER BY id", [a, b])  # fmt: skip
    assert [(r["agent_id"], r["task_id"], r["message"]) for r in stored] == [
        (b, None, "own line"), (b, None, "about a task not folded yet"), (a, task, "a's own line"),
    ]  # fmt: skip
    assert json.loads(stored[1]["metadata"]) == {"task_id": f"{task}-later"}  # unknown task: kept aside, as before

    dlq = {d["source"]["offset"]: d for d in await outbox(pool, settings, topics.DLQ)}
    not_a = f"agent {b} is not the assignee of task {task} (agent {a} is)"
    assert dlq[question.offset]["reason"] == f"{not_a}; task.question_asked about a task comes only from its assignee"
    assert dlq[ready.offset]["reason"] == f"{not_a}; task.ready_for_review about a task comes only from its assignee"
    assert (
        dlq[batch.offset]["reason"]
        == f"2 of 4 log line(s) refused: {not_a}; a log line about a task comes only from its assignee"
    )
    refused_lines = json.loads(dlq[batch.offset]["value"])  # only the refused lines: a replay re-drives just them
    assert refused_lines["type"] == "log.batch" and [x["id"] for x in refused_lines["logs"]] == [lines[1]["id"], lines[3]["id"]]
    assert dlq[single.offset]["reason"].startswith("1 of 1 log line(s) refused: " + not_a)
    assert json.loads(dlq[single.offset]["value"])["message"] == "one line about a's task"

    # The same records again (a redelivery) write no line twice and no second dlq record.
    before = len(await outbox(pool, settings, topics.DLQ))
    stats = await fold.apply_batch([batch, single, own])
    assert (stats.logs, stats.replayed) == (0, 3)
    assert len(await outbox(pool, settings, topics.DLQ)) == before


async def test_a_line_about_a_task_nobody_holds_yet_is_stored(settings: Settings, pool: Any) -> None:
    # The agent's own task.started reaches the task on the task's partition; its first lines may come first.
    fold, feed = Fold(pool, settings), Feed(settings)
    u = uuid.uuid4().hex[:8]
    project, task, agent = f"p-early-{u}", f"t-early-{u}", f"a-early-{u}"
    setup = [
        feed.record(topics.CONTROL_EVENTS, project_upserted(project)),
        feed.record(topics.CONTROL_EVENTS, task_created(task, project)),
        feed.record(topics.AGENT_EVENTS, agent_registered(agent)),
        feed.record(topics.AGENT_EVENTS, event("log", agent, message="cloning", task_id=task)),
    ]
    stats = await fold.apply_batch(setup)
    assert (stats.refused, stats.logs) == (0, 1), stats
    [line] = await fetch_all(pool, "SELECT task_id FROM agent_logs WHERE agent_id = %s", [agent])
    assert line["task_id"] == task
