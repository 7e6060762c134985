"""An agent speaks only for its own work, end to end (issue 11, point 3): each agent with its own token over HTTP,
the broker, a fold worker (task.started split into its task and agent halves), rows, the dlq and task.transitions.

Before: agent b's task.started took over agent a's task while a was working on it, and b's log lines about it were
stored as the task's.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from app import topics
from app.settings import Settings
from tests.harness import WorkerProcess, eventually, fetch_all
from webhooks.auth import agent_token
from webhooks.server import init

T0 = "2026-11-22T10:00:00Z"


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"{kind}-{uuid.uuid4().hex[:12]}", "type": kind, "time": T0, **fields}


async def test_an_agent_takes_only_what_it_may_and_reclaims_from_a_stopped_agent(
    settings: Settings, pool: Any, worker: WorkerProcess
) -> None:
    u = uuid.uuid4().hex[:8]
    project, task, a, b = f"p-e2e-{u}", f"t-e2e-{u}", f"a-e2e-{u}", f"b-e2e-{u}"
    key = settings.agent_token_key.get_secret_value()
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    as_a = {"Authorization": f"Bearer {agent_token(key, a)}"}
    as_b = {"Authorization": f"Bearer {agent_token(key, b)}"}

    async def row() -> dict[str, Any] | None:
        rows = await fetch_all(pool, "SELECT state, assigned_agent_id FROM tasks WHERE id = %s", [task])
        return rows[0] if rows else None

    async def dlq_reasons() -> list[str]:
        rows = await fetch_all(pool, "SELECT payload FROM outbox WHERE topic = %s", [settings.topic(topics.DLQ)])
        return [json.loads(bytes(r["payload"]))["reason"] for r in rows]

    async with TestClient(TestServer(init(settings, settings.kafka_bootstrap))) as client:

        async def post(headers: dict[str, str], *items: dict[str, Any]) -> None:
            response = await client.post("/events", json=list(items), headers=headers)
            assert response.status == 202, await response.text()

        await post(service, event("project.upserted", project_id=project, name="P", k8s_namespace=project))
        await eventually(lambda: fetch_all(pool, "SELECT id FROM projects WHERE id = %s", [project]), what="the project")
        await post(service, event("task.created", task_id=task, project_id=project, title="t"))
        await post(as_a, event("agent.registered", agent_id=a, pod_name=a))
        await post(as_b, event("agent.registered", agent_id=b, pod_name=b))
        await eventually(row, what="the task")
        await post(as_a, event("task.started", agent_id=a, task_id=task), event("agent.heartbeat", agent_id=a, status="busy"))
        assert await eventually(lambda: _if(row, lambda r: r["assigned_agent_id"] == a), what="a's start") is not None

        taking = event("task.started", agent_id=b, task_id=task)
        await post(as_b, taking, event("log", agent_id=b, message="b about a's task", task_id=task),
                   event("log", agent_id=b, message="b's own line"))  # fmt: skip
        refused = f"task {task} is in_progress with agent {a}, which is busy; agent {b} may take it over"
        await eventually(lambda: _if(dlq_reasons, lambda rs: any(refused in r for r in rs)), what="the refused start")
        await eventually(lambda: _if(dlq_reasons, lambda rs: any("1 of 2 log line(s) refused" in r for r in rs)),
                         what="the refused log line")  # fmt: skip
        assert (await row()) == {"state": "in_progress", "assigned_agent_id": a}
        lines = await fetch_all(pool, "SELECT task_id, message FROM agent_logs WHERE agent_id = %s", [b])
        assert [(r["task_id"], r["message"]) for r in lines] == [(None, "b's own line")]

        # a's pod stops: b's next task.started reclaims the task, and the transition says from whom.
        await post(as_a, event("agent.stopped", agent_id=a))
        await eventually(
            lambda: _if(lambda: fetch_all(pool, "SELECT status FROM agents WHERE id = %s", [a]),
                        lambda rs: rs[0]["status"] == "offline"), what="a offline",
        )  # fmt: skip
        reclaim = event("task.started", agent_id=b, task_id=task)
        await post(as_b, reclaim)
        await eventually(lambda: _if(row, lambda r: r["assigned_agent_id"] == b), what="the reclaim")

    transitions = await fetch_all(pool, "SELECT payload FROM outbox WHERE topic = %s", [settings.topic(topics.TASK_TRANSITIONS)])
    [moved] = [t for t in (json.loads(bytes(r["payload"])) for r in transitions) if t["data"]["cause"]["id"] == reclaim["id"]]
    assert (moved["data"]["from"], moved["data"]["to"]) == ("in_progress", "in_progress")
    assert moved["data"]["reclaimed_from"] == {"agent_id": a, "status": "offline"}


async def _if(probe: Any, test: Any) -> Any:
    """`probe()`'s value when `test` holds for it, else None (for `eventually`)."""
    value = await probe()
    return value if value and test(value) else None
