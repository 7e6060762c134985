"""One task's whole life through the three sources, produced as the real producers would, and row snapshots.

Used by tests/integration/test_fold_*.py. Each step is produced once the step it depends on is folded,
as in production (an agent reacts to the transitions it sees).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from app import topics
from app.envelope import make_envelope
from app.settings import Settings
from streams.gitea_map import task_id_for_issue
from tests.gitea_samples import load_sample
from tests.harness import eventually, fetch_all

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
REPO_ID = 4242
PROJECT = "proj-life"
AGENT = "agent-life"
GROUP = "group-life"
TASK = task_id_for_issue(REPO_ID, 17)
BRANCH = f"task/{TASK}"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def gitea(name: str, minutes: float, edit: Callable[[dict[str, Any]], None] | None = None) -> bytes:
    sample = load_sample(name)
    payload = sample.payload
    payload["repository"]["id"] = REPO_ID
    if "pull_request" in payload:
        payload["pull_request"]["head"]["ref"] = BRANCH
    if edit is not None:
        edit(payload)
    delivery = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}|{minutes}"))
    envelope = make_envelope(
        delivery_id=delivery, event_type=sample.event_type, event_group=sample.headers.get("X-Gitea-Event", ""),
        received_at=T0 + timedelta(minutes=minutes), repository=payload["repository"]["full_name"],
        payload=json.dumps(payload, separators=(",", ":")).encode(), project_id=PROJECT,
    )  # fmt: skip
    return envelope.encode()


def deployment(kind: str, dep: str, env: str, minutes: float) -> dict[str, Any]:
    return {"id": f"{dep}-{kind}", "type": f"deployment.{kind}", "time": at(minutes), "deployment_id": dep,
            "project_id": PROJECT, "environment": env, "task_group_id": GROUP}  # fmt: skip


class Producer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")

    async def __aenter__(self) -> Producer:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, topic: str, key: str, value: bytes | dict[str, Any]) -> None:
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        await self.producer.send_and_wait(self.settings.topic(topic), value=data, key=key.encode())

    async def agent(self, event: dict[str, Any]) -> None:
        await self.send(topics.AGENT_EVENTS, event["agent_id"], event)

    async def control(self, event: dict[str, Any], key: str) -> None:
        await self.send(topics.CONTROL_EVENTS, key, event)

    async def gitea(self, value: bytes) -> None:
        await self.send(topics.GITEA_WEBHOOKS, "acme/webshop", value)


async def task_state(pool: Any) -> str | None:
    rows = await fetch_all(pool, "SELECT state FROM tasks WHERE id = %s", [TASK])
    return str(rows[0]["state"]) if rows else None


async def run(settings: Settings, pool: Any, *, illegal: bool = True) -> None:
    """Produce the whole life (plus noise: ignored Gitea types, logs, illegal events) and wait for each step."""

    def reaches(state: str) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            return await task_state(pool) == state

        return probe

    ag = {"agent_id": AGENT}
    async with Producer(settings) as p:
        await p.control({"id": "e-project", "type": "project.upserted", "time": at(0), "project_id": PROJECT,
                         "name": "Webshop", "k8s_namespace": "webshop-life", "gitea_repo_id": REPO_ID,
                         "gitea_owner": "acme", "gitea_repo_name": "webshop"}, PROJECT)  # fmt: skip
        await p.agent({"id": "e-register", "type": "agent.registered", "time": at(0), **ag, "pod_name": "agent-life-0"})

        async def project_known() -> bool:  # Gitea's webhook is configured once the project exists
            return bool(await fetch_all(pool, "SELECT id FROM projects WHERE id = %s", [PROJECT]))

        await eventually(project_known, what="the project")
        await p.gitea(gitea("issues__opened_aiworker", 1))
        await p.gitea(gitea("push__new_branch", 1.5))  # counted as ignored
        await eventually(reaches("backlog"), what="the task from the Gitea issue")
        await p.agent({"id": "e-started", "type": "task.started", "time": at(2), **ag, "task_id": TASK})
        await p.agent({"id": "e-logs", "type": "log.batch", "time": at(2.5), **ag, "logs": [
            {"id": f"l{i}", "type": "log", "time": at(2.5), **ag, "level": "info", "message": f"line {i}", "task_id": TASK}
            for i in range(5)]})  # fmt: skip
        await p.agent({"id": "e-asked", "type": "task.question_asked", "time": at(3), **ag, "task_id": TASK,
                       "question_id": "q-life", "question": "Which coupon wins?"})  # fmt: skip
        await eventually(reaches("needs_input"), what="needs_input")
        if illegal:  # approving a task that waits for input: refused, to the dlq
            await p.control({"id": "e-bad-approve", "type": "task.approved", "time": at(3.5), "task_id": TASK}, TASK)
            await p.agent({"id": "e-bad-json", **ag})  # no type: invalid

            async def refused() -> bool:  # folded (to the dlq) before the answer that would make it legal later
                return len(await fetch_all(pool, "SELECT event_id FROM outbox WHERE topic LIKE %s", ["%.dlq"])) >= 2

            await eventually(refused, what="the illegal events in the dlq")
        await p.control({"id": "e-answered", "type": "task.question_answered", "time": at(4), "question_id": "q-life",
                         "response": "The larger one", "responded_by": "u1"}, "q-life")  # fmt: skip
        await eventually(reaches("in_progress"), what="in_progress after the answer")
        await p.gitea(gitea("pull_request__opened", 5))

        async def has_pr() -> bool:
            return bool(await fetch_all(pool, "SELECT id FROM tasks WHERE id = %s AND pr_number = 23", [TASK]))

        await eventually(has_pr, what="the PR on the task")
        await p.agent({"id": "e-review", "type": "task.ready_for_review", "time": at(6), **ag, "task_id": TASK,
                       "preview_url": "https://preview.example/t"})  # fmt: skip
        await eventually(reaches("ready_to_test"), what="ready_to_test")
        await p.gitea(gitea("pull_request_review_approved", 7))
        await eventually(reaches("approved"), what="approved by the Gitea review")
        await p.control({"id": "e-group", "type": "task_group.created", "time": at(8), "task_group_id": GROUP,
                         "project_id": PROJECT, "task_ids": [TASK], "staging_branch": "staging"}, GROUP)  # fmt: skip
        await p.control(deployment("started", "dep-staging", "staging", 9), "dep-staging")
        await p.control(deployment("succeeded", "dep-staging", "staging", 10), "dep-staging")
        await eventually(reaches("staging"), what="staging")
        await p.control(deployment("succeeded", "dep-prod", "production", 12), "dep-prod")
        await eventually(reaches("production"), what="production")


SNAPSHOT = {
    "projects": "SELECT * FROM projects ORDER BY id",
    "agents": "SELECT * FROM agents ORDER BY id",
    "tasks": "SELECT * FROM tasks ORDER BY id",
    "task_questions": "SELECT * FROM task_questions ORDER BY id",
    "task_groups": "SELECT * FROM task_groups ORDER BY id",
    "deployments": "SELECT * FROM deployments ORDER BY id",
    "agent_logs": "SELECT agent_id, task_id, level, message, metadata, created_at FROM agent_logs ORDER BY created_at, message",
    "processed_events": "SELECT event_id, topic, outcome FROM processed_events ORDER BY event_id",
    "outbox": "SELECT event_id, topic, message_key, payload FROM outbox ORDER BY event_id",
    "parked_events": "SELECT event_id FROM parked_events ORDER BY event_id",
}


async def snapshot(pool: Any) -> dict[str, list[dict[str, Any]]]:
    """Every row the fold writes, minus auto ids (comparable across databases and consumer groups)."""
    return {table: await fetch_all(pool, sql) for table, sql in SNAPSHOT.items()}


async def transitions_of(read: Callable[[str], Awaitable[list[Any]]], settings: Settings) -> list[tuple[str, str, Any, str]]:
    out = []
    for name in (topics.TASK_TRANSITIONS, topics.AGENT_TRANSITIONS, topics.DEPLOYMENT_TRANSITIONS):
        for value in await read(settings.topic(name)):
            out.append((value["type"], value["subject"], value["data"]["from"], value["data"]["to"]))
    return out


async def count_records(bootstrap: str, topic: str, *, timeout: float = 0.5) -> int:
    """How many records a topic holds (read from the beginning, values not decoded)."""
    import asyncio
    import time

    from tests.harness import from_beginning

    count = 0
    async with from_beginning(bootstrap, topic) as (consumer, _tps):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            count += sum(len(records) for records in batch.values())
            await asyncio.sleep(0)
    return count


def assert_same(got: dict[str, list[dict[str, Any]]], want: dict[str, list[dict[str, Any]]]) -> None:
    """Snapshots equal, or an error naming the table and the rows only one side has."""
    for table in want:
        if got[table] != want[table]:
            extra = [r for r in got[table] if r not in want[table]]
            lacking = [r for r in want[table] if r not in got[table]]
            raise AssertionError(f"{table} differs:\n only in got: {extra}\n only in want: {lacking}")
