"""The one real path, end to end: HTTP -> agent.events -> fold worker -> MySQL row -> task.transitions.

The transition is read as a downstream consumer reads it: a raw record, its mode told by its headers (the
CloudEvents Kafka protocol binding), parsed by the CloudEvents SDK's Kafka binding."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat

from app.settings import Settings
from tests.harness import WorkerProcess, eventually, fetch_all, read_records
from webhooks.auth import agent_token
from webhooks.server import init

T0 = "2026-11-22T10:00:00Z"
STRUCTURED = b"application/cloudevents+json; charset=UTF-8"


def as_cloudevent(record: Any) -> BaseCloudEvent:
    """A record as a consumer following the binding sees it: structured mode is the header `content-type:
    application/cloudevents+json; charset=UTF-8` (the binding's MUST), binary mode `ce_` headers."""
    headers = {name: bytes(value) for name, value in record.headers}
    assert headers.get("content-type") == STRUCTURED, f"record without the structured-mode header: {headers}"
    assert not [name for name in headers if name.startswith("ce_")], headers  # from_kafka would take it as binary
    return kafka.from_kafka(kafka.KafkaMessage(headers=headers, key=record.key, value=record.value), JSONFormat())


async def test_task_started_moves_the_row_and_emits_a_transition(settings: Settings, pool: Any, worker: WorkerProcess) -> None:
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    agent = {"Authorization": f"Bearer {agent_token(settings.agent_token_key.get_secret_value(), 'agent-1')}"}
    task_id = f"task-{settings.worker_id}"
    async with TestClient(TestServer(init(settings, settings.kafka_bootstrap))) as client:
        project_id = f"proj-{task_id}"[:36]
        project = {"id": f"p-{task_id}", "type": "project.upserted", "time": T0, "project_id": project_id,
                   "name": "Webshop", "k8s_namespace": f"ns-{task_id}"[:63]}  # fmt: skip
        created = {"id": f"c-{task_id}", "type": "task.created", "time": T0, "task_id": task_id,
                   "project_id": project_id, "title": "Add a cart"}  # fmt: skip
        # project.upserted and task.created travel on different partitions (keyed by their entity): the
        # project must be folded before a task can name it.
        response = await client.post("/events", json=project, headers=service)
        assert response.status == 202, await response.text()

        async def project_exists() -> bool:
            return bool(await fetch_all(pool, "SELECT id FROM projects WHERE id = %s", [project_id]))

        await eventually(project_exists, what="the project.upserted fold")
        response = await client.post("/events", json=created, headers=service)
        assert response.status == 202, await response.text()
        registered = {
            "id": f"r-{task_id}",
            "type": "agent.registered",
            "time": T0,
            "agent_id": "agent-1",
            "pod_name": "agent-pod-1",
        }
        response = await client.post("/events", json=registered, headers=agent)
        assert response.status == 202, await response.text()

        async def task_exists() -> bool:
            return bool(await fetch_all(pool, "SELECT id FROM tasks WHERE id = %s", [task_id]))

        await eventually(task_exists, what="the task.created fold")
        started = {"id": f"s-{task_id}", "type": "task.started", "time": "2026-11-22T10:05:00Z", "agent_id": "agent-1",
                   "task_id": task_id}  # fmt: skip
        response = await client.post("/events", json=started, headers=agent)
        assert response.status == 202, await response.text()

    async def in_progress() -> dict[str, Any] | None:
        rows = await fetch_all(pool, "SELECT * FROM tasks WHERE id = %s AND state = 'in_progress'", [task_id])
        return rows[0] if rows else None

    row = await eventually(in_progress, what="the task to be in_progress")
    assert row["assigned_agent_id"] == "agent-1"
    assert str(row["started_at"]) == "2026-11-22 10:05:00"
    assert str(row["assigned_at"]) == "2026-11-22 10:05:00"
    positions = await fetch_all(
        pool,
        "SELECT next_offset FROM fold_positions WHERE consumer = %s AND topic = %s",
        [settings.worker_id, settings.topic("agent.events")],
    )
    assert sum(p["next_offset"] for p in positions) == 2  # agent.registered and task.started

    async def transition() -> BaseCloudEvent | None:
        for record in await read_records(settings.kafka_bootstrap, settings.topic("task.transitions"), timeout=1.0):
            event = as_cloudevent(record)
            data = event.get_data()
            if event.get_subject() == task_id and isinstance(data, dict) and data["to"] == "in_progress":
                return event
        return None

    event = await eventually(transition, what="the transition on task.transitions")
    assert event.get_specversion() == "1.0"
    assert event.get_type() == "aiworker.task.state_changed"
    assert event.get_source() == "aiworker-events"
    assert event.get_datacontenttype() == "application/json"
    assert event.get_extension("partitionkey") == task_id  # the record's key, as the binding maps it
    assert str(event.get_time()) == "2026-11-22 10:05:00+00:00"
    data = event.get_data()
    assert isinstance(data, dict) and data["from"] == "backlog"
    assert data["cause"] == {"id": f"s-{task_id}", "source": settings.topic("agent.events"), "type": "task.started"}
    assert data["row"]["assigned_agent_id"] == "agent-1"
    published = await fetch_all(pool, "SELECT published_at FROM outbox WHERE event_id = %s", [event.get_id()])
    assert published and published[0]["published_at"] is not None
