"""One agent's order across its tasks (issue 4: order per task AND per agent for agent rows).

task.started and task.ready_for_review change a task row and an agent row. The router sends each twice onto
fold.tasks: keyed by the task (scope "task") and keyed by the agent (scope "agent"), so the agent halves travel
with the agent's heartbeats, in the agent's order, however late the task partitions are folded. Before, both
were keyed by the task: a ready_for_review folded after the agent's next task.started missed its count.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from app import topics
from app.settings import Settings
from streams.fold import Fold
from streams.intake import ConsumedRecord
from streams.route import Source, frame, route_keys, routed_keys
from tests.harness import fetch_all
from tests.integration.test_fold_engine import T0, agent_registered, project_upserted, task_created


class Routed:
    """Input records as the router puts them on fold.tasks: each half on the partition of its key."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.inputs: dict[str, int] = {}
        self.offsets: dict[int, int] = {}

    def route(self, short: str, event: dict[str, Any]) -> list[ConsumedRecord]:
        topic = self.settings.topic(short)
        offset = self.inputs.get(topic, 0)
        self.inputs[topic] = offset + 1
        source = Source(topic, 0, offset, None, json.dumps(event).encode())
        out = []
        for key, scope in route_keys(short, source):
            partition = 0 if key is not None and key.decode() == event.get("agent_id") else 1
            if event["type"] in ("project.upserted", "task.created"):
                partition = 2
            at = self.offsets.get(partition, 0)
            self.offsets[partition] = at + 1
            out.append(ConsumedRecord(self.settings.topic(topics.FOLD_TASKS), partition, at, key, frame(source, scope)))
        return out


async def test_the_agent_row_follows_the_agents_order_however_late_its_tasks_are_folded(settings: Settings, pool: Any) -> None:
    fold, routed = Fold(pool, settings), Routed(settings)
    u = uuid.uuid4().hex[:8]
    project, agent, tasks = f"p-s-{u}", f"a-s-{u}", [f"t-s-{u}-{k}" for k in range(3)]
    setup = routed.route(
        topics.CONTROL_EVENTS,
        project_upserted(project),
    )
    for task in tasks:
        setup += routed.route(
            topics.CONTROL_EVENTS,
            task_created(task, project),
        )
    setup += routed.route(topics.AGENT_EVENTS, agent_registered(agent))
    await fold.apply_batch(setup)
    records: list[ConsumedRecord] = []
    for k, task in enumerate(tasks):
        minute = f"2026-11-22T11:{k:02d}:00Z"
        records += routed.route(
            topics.AGENT_EVENTS, {"id": f"s{task}", "type": "task.started", "time": minute, "agent_id": agent, "task_id": task}
        )
        records += routed.route(
            topics.AGENT_EVENTS,
            {
                "id": f"f{task}",
                "type": "task.ready_for_review",
                "time": minute,
                "agent_id": agent,
                "task_id": task,
                "pr_number": 7 + k,
            },
        )
        records += routed.route(topics.AGENT_EVENTS, {"id": f"h{task}", "type": "agent.heartbeat", "time": minute,
                                                      "agent_id": agent, "status": "idle"})  # fmt: skip
    by_agent = [r for r in records if r.partition == 0]
    by_task = [r for r in records if r.partition == 1]
    assert len(by_agent) == 9 and len(by_task) == 6
    await fold.apply_batch(by_agent)  # the agent's partition first, the tasks' partitions late
    [row] = await fetch_all(pool, "SELECT status, tasks_completed, current_task_id FROM agents WHERE id = %s", [agent])
    assert (row["status"], row["tasks_completed"], row["current_task_id"]) == ("idle", 3, None)
    rows = await fetch_all(pool, "SELECT id, state FROM tasks WHERE id IN (%s, %s, %s)", tasks)
    assert {r["state"] for r in rows} == {"backlog"}  # the task halves have not been folded yet
    await fold.apply_batch(by_task)
    rows = await fetch_all(pool, "SELECT id, state, assigned_agent_id FROM tasks WHERE id IN (%s, %s, %s)", tasks)
    assert {(r["state"], r["assigned_agent_id"]) for r in rows} == {("ready_to_test", agent)}
    # Each half exactly once: redelivered (same positions) or sent again (new offsets) changes nothing.
    outbox = await fetch_all(pool, "SELECT COUNT(*) AS n FROM outbox")
    assert (await fold.apply_batch(records)).replayed == len(records)
    again = [ConsumedRecord(r.topic, r.partition + 10, r.offset, r.key, r.value) for r in records]
    stats = await fold.apply_batch(again)
    assert (stats.duplicates, stats.applied) == (len(records), 0), stats
    assert await fetch_all(pool, "SELECT COUNT(*) AS n FROM outbox") == outbox
    [row] = await fetch_all(pool, "SELECT tasks_completed FROM agents WHERE id = %s", [agent])
    assert row["tasks_completed"] == 3
    halves = await fetch_all(pool, "SELECT event_id FROM processed_events WHERE event_id LIKE %s", [f"%{tasks[0]}%"])
    assert {r["event_id"] for r in halves} == {f"c{tasks[0]}", f"s{tasks[0]}", f"s{tasks[0]}|agent", f"f{tasks[0]}",
                                               f"f{tasks[0]}|agent", f"h{tasks[0]}"}  # fmt: skip


async def test_a_refused_task_half_leaves_the_agent_half_to_its_own_machine(settings: Settings, pool: Any) -> None:
    """The agent reported that it works on the task: its row says so even when the task machine refuses."""
    fold, routed = Fold(pool, settings), Routed(settings)
    u = uuid.uuid4().hex[:8]
    project, agent, task = f"p-x-{u}", f"a-x-{u}", f"t-x-{u}"
    batch = routed.route(
        topics.CONTROL_EVENTS,
        project_upserted(project),
    )
    batch += routed.route(
        topics.CONTROL_EVENTS,
        task_created(task, project),
    )
    batch += routed.route(
        topics.CONTROL_EVENTS, {"id": f"x{task}", "type": "task.cancelled", "time": T0, "task_id": task, "reason": "no"}
    )
    batch += routed.route(topics.AGENT_EVENTS, agent_registered(agent))
    batch += routed.route(topics.AGENT_EVENTS, {"id": f"s{task}", "type": "task.started", "time": T0, "agent_id": agent,
                                                "task_id": task})  # fmt: skip
    stats = await fold.apply_batch(batch)
    assert stats.refused == 1, stats
    [row] = await fetch_all(pool, "SELECT state, assigned_agent_id FROM tasks WHERE id = %s", [task])
    assert (row["state"], row["assigned_agent_id"]) == ("cancelled", None)
    [row] = await fetch_all(pool, "SELECT status, current_task_id FROM agents WHERE id = %s", [agent])
    assert (row["status"], row["current_task_id"]) == ("busy", task)


async def test_the_worker_folds_agent_halves_straight_from_agent_events_and_the_rest_from_the_router(
    settings: Settings, pool: Any
) -> None:
    """Fold(direct=True), as in the worker: agent.events records as they sit on the topic, beside what the router
    sends on (`routed_keys`): every part applied once, the router-only records only advance the position."""
    fold = Fold(pool, settings, direct=True)
    u = uuid.uuid4().hex[:8]
    project, agent, task = f"p-d-{u}", f"a-d-{u}", f"t-d-{u}"
    agent_topic, internal = settings.topic(topics.AGENT_EVENTS), settings.topic(topics.FOLD_TASKS)
    counts = {agent_topic: 0, internal: 0}

    def feed(short: str, event: dict[str, Any]) -> list[ConsumedRecord]:
        """The record on its input topic (read by the fold when it is agent.events) and what the router sends on."""
        topic = settings.topic(short)
        offset = counts.setdefault(topic, 0)
        counts[topic] += 1
        source = Source(topic, 0, offset, event.get("agent_id", "").encode() or None, json.dumps(event).encode())
        out = [ConsumedRecord(topic, 0, offset, source.key, source.value)] if short == topics.AGENT_EVENTS else []
        for key, scope in routed_keys(short, source):
            out.append(ConsumedRecord(internal, 0, counts[internal], key, frame(source, scope)))
            counts[internal] += 1
        return out

    upserted = project_upserted(project)  # fmt: skip
    records = feed(topics.CONTROL_EVENTS, upserted)
    records += feed(topics.CONTROL_EVENTS, task_created(task, project))  # fmt: skip
    records += feed(topics.AGENT_EVENTS, agent_registered(agent))  # fmt: skip
    records += feed(topics.AGENT_EVENTS, {"id": f"s{task}", "type": "task.started", "time": T0, "agent_id": agent,
                                          "task_id": task})  # fmt: skip
    records += feed(topics.AGENT_EVENTS, {"id": f"q{task}", "type": "task.question_asked", "time": T0, "agent_id": agent,
                                          "task_id": task, "question_id": f"q{task}", "question": "why?"})  # fmt: skip
    records += feed(topics.AGENT_EVENTS, {"id": f"l{task}", "type": "log.batch", "time": T0, "agent_id": agent, "logs": [
        {"id": f"l{task}-0", "type": "log", "time": T0, "agent_id": agent, "task_id": task, "message": "hi", "level": "info"},
    ]})  # fmt: skip
    direct = [r for r in records if r.topic == agent_topic]
    assert len(direct) == 4 and counts[internal] == 4  # the router: project, task, task half, question (no logs)
    stats = await fold.apply_batch(records)
    assert (stats.refused, stats.invalid, stats.parked, stats.logs) == (0, 0, 0, 1), stats
    [row] = await fetch_all(pool, "SELECT status, current_task_id FROM agents WHERE id = %s", [agent])
    assert (row["status"], row["current_task_id"]) == ("busy", task)
    [row] = await fetch_all(pool, "SELECT state, assigned_agent_id FROM tasks WHERE id = %s", [task])
    assert (row["state"], row["assigned_agent_id"]) == ("needs_input", agent)
    done = await fetch_all(pool, "SELECT event_id FROM processed_events WHERE event_id LIKE %s", [f"%{u}%"])
    assert sorted(r["event_id"] for r in done) == sorted(
        [f"p{project}", f"c{task}", f"r{agent}", f"s{task}", f"s{task}|agent", f"q{task}"]
    )  # each part once: the question was folded from fold.tasks only, the logs by position
    positions = await fetch_all(pool, "SELECT next_offset FROM fold_positions WHERE consumer = %s AND topic = %s",
                                [settings.worker_id, agent_topic])  # fmt: skip
    assert [p["next_offset"] for p in positions] == [4]  # past the router-only record too
    again = await fold.apply_batch(records)
    assert again.replayed == len(records) and again.applied == 0
