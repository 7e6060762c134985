"""`aiworker-events trace` against a running system: the web (in process), a worker process, the real broker and
database; the command itself runs as a process (`python -m app trace`), as an operator runs it."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from app import topics
from app.envelope import make_envelope
from app.settings import Settings
from streams.gitea_map import task_id_for_issue
from tests.harness import WorkerProcess, eventually, fetch_all, produce, read_records, run_cli
from webhooks.auth import agent_token
from webhooks.server import init

T0 = "2026-11-22T10:00:00Z"


def issue_opened(repo_id: int, number: int) -> dict[str, Any]:
    repository = {"id": repo_id, "name": f"r{repo_id}", "full_name": f"org/r{repo_id}", "owner": {"id": 1, "login": "org"}}
    return {
        "action": "opened", "number": number, "repository": repository, "sender": {"login": "pm"},
        "issue": {"id": number, "number": number, "title": "Trace me", "body": "", "state": "open",
                  "labels": [{"id": 1, "name": "aiworker"}]},
    }  # fmt: skip


async def _row(pool: Any, sql: str, *params: Any) -> dict[str, Any] | None:
    rows = await fetch_all(pool, sql, list(params))
    return rows[0] if rows else None


async def _trace(settings: Settings, key: str) -> dict[str, Any]:
    code, out = await run_cli(settings, "trace", key, "--json")
    assert code == 0, out
    document: dict[str, Any] = json.loads(out)
    return document


async def test_trace_of_a_delivery_a_refused_event_a_task_and_an_agent(
    settings: Settings, pool: Any, worker: WorkerProcess
) -> None:
    u = uuid.uuid4().hex[:8]
    project, task, agent, repo_id = f"p-tr-{u}", f"t-tr-{u}", f"a-tr-{u}", random.randint(10**8, 2 * 10**9)
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    mine = {"Authorization": f"Bearer {agent_token(settings.agent_token_key.get_secret_value(), agent)}"}
    delivery = str(uuid.uuid4())
    async with TestClient(TestServer(init(settings, settings.kafka_bootstrap))) as client:

        async def post(event: dict[str, Any], headers: dict[str, str]) -> None:
            response = await client.post("/events", json=event, headers=headers)
            assert response.status == 202, await response.text()

        await post({"id": f"pu-{u}", "type": "project.upserted", "time": T0, "project_id": project, "name": "Trace",
                    "k8s_namespace": project, "gitea_repo_id": repo_id, "gitea_owner": "org",
                    "gitea_repo_name": f"r{repo_id}"}, service)  # fmt: skip
        await eventually(lambda: _row(pool, "SELECT id FROM projects WHERE id = %s", project), what="the project")
        await post({"id": f"tc-{u}", "type": "task.created", "time": T0, "task_id": task, "project_id": project,
                    "title": "Traced"}, service)  # fmt: skip
        await post({"id": f"ar-{u}", "type": "agent.registered", "time": T0, "agent_id": agent, "pod_name": agent}, mine)
        await eventually(lambda: _row(pool, "SELECT id FROM tasks WHERE id = %s", task), what="the task")
        await post({"id": f"ap-{u}", "type": "task.approved", "time": T0, "task_id": task}, service)  # backlog: refused
        await eventually(lambda: _row(pool, "SELECT 1 FROM fold_outcomes WHERE event_id = %s", f"ap-{u}"), what="the refusal")
        await post({"id": f"ts-{u}", "type": "task.started", "time": T0, "task_id": task, "agent_id": agent}, mine)
        payload = json.dumps(issue_opened(repo_id, 7)).encode()
        signature = hmac.new(settings.gitea_secret.get_secret_value().encode(), payload, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Gitea-Delivery": delivery, "X-Gitea-Event": "issues",
                   "X-Gitea-Event-Type": "issues", "X-Gitea-Signature": signature}  # fmt: skip
        response = await client.post(f"/webhooks/gitea/{project}", data=payload, headers=headers)
        assert response.status == 202, await response.text()
    issue_task = task_id_for_issue(repo_id, 7)
    await eventually(lambda: _row(pool, "SELECT id FROM tasks WHERE id = %s", issue_task), what="the issue's task")
    await eventually(lambda: _row(pool, "SELECT id FROM tasks WHERE id = %s AND state = 'in_progress'", task), what="start")

    # A Gitea delivery, by its delivery id: its record as it lies on gitea.webhooks, applied, the task it made.
    [record] = [r for r in await read_records(settings.kafka_bootstrap, settings.topic(topics.GITEA_WEBHOOKS))
                if json.loads(r.value)["delivery_id"] == delivery]  # fmt: skip
    traced = await _trace(settings, delivery)
    assert traced["query"] == delivery and traced["truncated"] is False
    [event] = traced["events"]
    assert (event["type"], event["delivery_id"], event["origin"]) == ("issues", delivery, "delivery")
    assert event["event_id"].startswith("gitea:")
    [seen] = event["records"]
    assert (seen["topic"], seen["partition"], seen["offset"]) == (record.topic, record.partition, record.offset)
    assert seen["outcome"] == "applied" and seen["received_at"] and seen["folded_at"] and seen["dlq"] is None
    [made] = event["transitions"]
    assert (made["entity"], made["entity_id"], made["from"], made["to"]) == ("task", issue_task, None, "backlog")
    code, text = await run_cli(settings, "trace", delivery)
    assert code == 0 and "origin delivery" in text and f"task {issue_task}: (new) -> backlog" in text, text

    # A refused event, by its id: the machine's reason, and the dlq record it made (the one on the dlq topic).
    [refused] = (await _trace(settings, f"ap-{u}"))["events"]
    [seen] = refused["records"]
    assert seen["outcome"] == "refused" and "approved" in seen["reason"] and refused["transitions"] == []

    async def dead_letter() -> Any:
        found = [r for r in await read_records(settings.kafka_bootstrap, settings.topic(topics.DLQ))
                 if json.loads(r.value)["id"] == seen["dlq"]["id"]]  # fmt: skip
        return found or None

    [dlq] = await eventually(dead_letter, what="the dlq record on its topic")
    assert json.loads(dlq.value)["reason"] == seen["reason"]
    code, text = await run_cli(settings, "trace", f"ap-{u}")
    assert code == 0 and "refused: " in text and f"dlq         {seen['dlq']['id']}" in text, text

    # A task: every event that named it, in order, and its transitions.
    by_task = await _trace(settings, task)
    order = [(e["event_id"], e["records"][0]["outcome"]) for e in by_task["events"]]
    assert order == [(f"tc-{u}", "applied"), (f"ap-{u}", "refused"), (f"ts-{u}", "applied")], order
    changes = [(t["entity"], t["from"], t["to"]) for e in by_task["events"] for t in e["transitions"] if t["entity"] == "task"]
    started = by_task["events"][2]["records"]  # the router split it: a task half and an agent half, each folded once
    assert sorted((r["scope"] or "task", r["outcome"]) for r in started) == [("agent", "applied"), ("task", "applied")]
    assert changes == [("task", None, "backlog"), ("task", "backlog", "in_progress")]

    # An agent: its registration and the task it started (its own transitions among them).
    by_agent = await _trace(settings, agent)
    assert [e["event_id"] for e in by_agent["events"] if e["records"]] == [f"ar-{u}", f"ts-{u}"]
    for swept in [e for e in by_agent["events"] if not e["records"]]:  # the sweeper's: no heartbeat since T0
        assert [(t["entity_id"], t["to"]) for t in swept["transitions"]] == [(agent, "offline")], swept
    mine_changed = {(t["from"], t["to"]) for e in by_agent["events"] for t in e["transitions"] if t["entity_id"] == agent}
    assert (None, "initializing") in mine_changed or (None, "idle") in mine_changed, mine_changed

    code, text = await run_cli(settings, "trace", f"nothing-{u}")
    assert code == 1 and "nothing known about" in text


async def test_a_reconciled_record_is_traced_as_such(settings: Settings, pool: Any, worker: WorkerProcess) -> None:
    """What `reconcile` publishes (origin reconcile) shows as reconciled, even where the fold ignores it."""
    delivery = f"reconcile-{uuid.uuid4().hex[:8]}"
    payload = json.dumps({"action": "opened", "number": 1, "repository": {"id": 1, "full_name": "nobody/none"}}).encode()
    envelope = make_envelope(delivery_id=delivery, event_type="issues", event_group="issues", received_at=datetime.now(UTC),
                             repository="nobody/none", payload=payload, origin="reconcile")  # fmt: skip
    await produce(settings.kafka_bootstrap, [(settings.topic(topics.GITEA_WEBHOOKS), b"nobody/none", envelope.encode())])
    await eventually(lambda: _row(pool, "SELECT 1 FROM fold_outcomes WHERE delivery_id = %s", delivery), what="the fold")
    [event] = (await _trace(settings, delivery))["events"]
    assert event["origin"] == "reconcile" and event["event_id"] == envelope.id
    assert event["records"][0]["outcome"] in ("ignored", "unchanged")
    code, text = await run_cli(settings, "trace", delivery)
    assert code == 0 and "origin reconcile" in text, text


async def test_a_record_the_router_dead_letters_is_traced(settings: Settings, pool: Any, monkeypatch: Any) -> None:
    """The router's dlq path (a record whose keys cannot be read) is recorded in the router's own transaction."""
    import streams.router as router_stage
    from streams.intake import ConsumedRecord

    def unreadable(*args: Any) -> Any:
        raise ValueError("its keys cannot be read (a test's fault)")

    monkeypatch.setattr(router_stage, "routed_keys", unreadable)
    sent: list[str] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        sent.append(topic)

        async def ack() -> None:
            return None

        return ack()

    event_id = f"rt-{uuid.uuid4().hex[:8]}"
    value = json.dumps({"id": event_id, "type": "task.created", "time": T0, "task_id": "t", "project_id": "p", "title": "x"})
    record = ConsumedRecord(settings.topic(topics.CONTROL_EVENTS), 0, 0, b"t", value.encode(), 1.7e9)
    assert await router_stage.Router(pool, settings, send).route_batch([record]) == 1
    assert sent == [settings.topic(topics.DLQ)]
    [event] = (await _trace(settings, event_id))["events"]
    [seen] = event["records"]
    assert (event["type"], seen["outcome"], seen["offset"]) == ("task.created", "invalid", 0)
    assert "the router cannot read this record" in seen["reason"] and seen["dlq"]["id"]
    rows = await fetch_all(pool, "SELECT COUNT(*) AS n FROM fold_outcomes WHERE event_id = %s", [event_id])
    assert rows[0]["n"] == 1


async def test_trace_retention_zero_records_nothing(settings: Settings, pool: Any) -> None:
    from streams.fold import Fold
    from tests.integration.test_fold_engine import Feed, agent_registered

    feed = Feed(settings)
    for retention, expected in ((0, 0), (3600, 1)):
        agent = f"a-off-{uuid.uuid4().hex[:8]}"
        tuned = settings.model_copy(update={"trace_retention_seconds": retention})
        stats = await Fold(pool, tuned).apply_batch([feed.record(topics.AGENT_EVENTS, agent_registered(agent))])
        assert stats.applied == 1
        rows = await fetch_all(pool, "SELECT outcome FROM fold_outcomes WHERE agent_id = %s", [agent])
        moved = await fetch_all(pool, "SELECT to_state FROM fold_transitions WHERE entity_id = %s", [agent])
        assert (len(rows), len(moved)) == (expected, expected), retention
