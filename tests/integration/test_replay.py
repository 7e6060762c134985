"""`aiworker-events replay` against the real broker, database and a worker process.

Some dlq records here are written directly in the fold's (stable) dlq format, for valid events that
"a bug in the fold refused": that is the situation the tool is for (after the fix, re-drive them),
and it keeps these tests independent of which refusals the fold makes. Others are real refusals
made by the worker from garbage that a misbehaving producer wrote onto an input topic.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

from app import topics
from app.settings import Settings
from tests.harness import WorkerProcess, eventually, fetch_all, fold_caught_up, produce, read_records, read_topic, run_cli

T0 = "2026-11-22T10:00:00Z"


def dlq_record(
    settings: Settings, event: dict[str, Any] | bytes, *, reason: str, key: str, topic: str = topics.CONTROL_EVENTS
) -> tuple[str, bytes, bytes]:
    value = event if isinstance(event, bytes) else json.dumps(event).encode()
    try:
        text: str | None = value.decode()
    except UnicodeDecodeError:
        text = None
    body = {
        "id": str(uuid.uuid4()),
        "reason": reason,
        "source": {"topic": settings.topic(topic), "partition": 0, "offset": 1_000_000},
        "key": key,
        "value": text,
        "value_base64": None if text is not None else base64.b64encode(value).decode(),
    }
    return settings.topic(topics.DLQ), key.encode(), json.dumps(body).encode()


def project(project_id: str, name: str = "Shop") -> dict[str, Any]:
    return {"id": f"up-{project_id}-{name}", "type": "project.upserted", "time": T0, "project_id": project_id,
            "name": name, "k8s_namespace": f"ns-{project_id}"}  # fmt: skip


def counts(output: str) -> dict[str, int]:
    match = re.search(r"^replay: (.*)$", output, re.MULTILINE)
    assert match, output
    return {k: int(v) for k, v in (part.split("=") for part in match.group(1).split())}


async def test_dry_run_changes_nothing_then_replay_applies_once(settings: Settings, pool: Any, worker: WorkerProcess) -> None:
    tag = settings.worker_id[-8:]
    pid = f"p-{tag}"
    await produce(
        settings.kafka_bootstrap, [(settings.topic(topics.CONTROL_EVENTS), pid.encode(), json.dumps(project(pid)).encode())]
    )
    await eventually(lambda: fetch_all(pool, "SELECT id FROM projects WHERE id = %s", [pid]), what="the project")
    task = {"id": f"tc-{tag}", "type": "task.created", "time": T0, "task_id": f"t-{tag}", "project_id": pid, "title": "Cart"}
    other = {"id": f"tc2-{tag}", "type": "task.created", "time": T0, "task_id": f"t2-{tag}", "project_id": pid, "title": "X"}
    await produce(settings.kafka_bootstrap, [
        dlq_record(settings, task, reason="simulated: a fold bug refused it", key=task["task_id"]),
        dlq_record(settings, other, reason="another reason", key=other["task_id"]),
    ])  # fmt: skip
    outbox_before = await fetch_all(pool, "SELECT COUNT(*) AS n FROM outbox")

    code, output = await run_cli(settings, "replay", "--reason", "fold bug", "--dry-run")
    assert code == 0, output
    assert counts(output)["matched"] == 1 and counts(output)["replayed"] == 0
    assert f"task.created id=tc-{tag}" in output and f"applies: t-{tag}: None -> backlog" in output, output
    assert not await fetch_all(pool, "SELECT id FROM tasks WHERE id = %s", [f"t-{tag}"]), "the dry run changed a row"
    assert await fetch_all(pool, "SELECT COUNT(*) AS n FROM outbox") == outbox_before

    code, output = await run_cli(settings, "replay", "--reason", "fold bug")
    assert code == 0, output
    assert counts(output)["replayed"] == 1 and counts(output)["filtered"] == 1
    await eventually(lambda: fetch_all(pool, "SELECT id FROM tasks WHERE id = %s", [f"t-{tag}"]), what="the replayed task")
    assert not await fetch_all(pool, "SELECT id FROM tasks WHERE id = %s", [f"t2-{tag}"]), "a filtered record was replayed"

    # The same command again resumes after what it did: nothing left to scan.
    code, output = await run_cli(settings, "replay", "--reason", "fold bug")
    assert code == 0 and counts(output)["scanned"] == 0, output
    # Forced to start over, it re-drives the record a second time: it applies once all the same.
    code, output = await run_cli(settings, "replay", "--reason", "fold bug", "--from-start")
    assert code == 0 and counts(output)["replayed"] == 1, output
    await fold_caught_up(settings, pool)
    code, output = await run_cli(settings, "replay", "--reason", "fold bug", "--from-start", "--dry-run")
    assert "duplicate: already applied" in output, output
    assert len(await fetch_all(pool, "SELECT id FROM tasks WHERE id = %s", [f"t-{tag}"])) == 1
    assert len(await fetch_all(pool, "SELECT event_id FROM processed_events WHERE event_id = %s", [f"tc-{tag}"])) == 1

    async def one_transition() -> list[Any]:
        values = await read_topic(settings.kafka_bootstrap, settings.topic(topics.TASK_TRANSITIONS), timeout=1.0)
        return [v for v in values if v["subject"] == f"t-{tag}"]

    transitions = await eventually(one_transition, what="the task's transition")
    assert len({t["id"] for t in transitions}) == 1, transitions


async def test_interrupted_replay_resumes_where_it_stopped(settings: Settings, pool: Any, worker: WorkerProcess) -> None:
    tag = settings.worker_id[-8:]
    ids = [f"r{i}-{tag}" for i in range(5)]
    await produce(
        settings.kafka_bootstrap,
        [dlq_record(settings, project(pid), reason="simulated: refused by a bug", key=pid) for pid in ids],
        partition=0,
    )
    # A run that stops after 3 records (what an interrupt between two committed batches leaves).
    code, output = await run_cli(settings, "replay", "--batch-size", "2", "--limit", "3")
    assert code == 0 and counts(output)["replayed"] == 3, output
    code, output = await run_cli(settings, "replay", "--batch-size", "2")
    assert code == 0 and counts(output)["replayed"] == 2 and counts(output)["scanned"] == 2, output

    async def all_projects() -> bool:
        return len(await fetch_all(pool, f"SELECT id FROM projects WHERE id IN ({', '.join(['%s'] * 5)})", ids)) == 5

    await eventually(all_projects, what="every replayed project")
    await fold_caught_up(settings, pool)
    rows = await fetch_all(pool, "SELECT event_id FROM processed_events WHERE event_id LIKE %s", [f"up-r%-{tag}-Shop"])
    assert len(rows) == 5


async def test_real_refusals_filters_and_byte_exact_redrive(settings: Settings, pool: Any, worker: WorkerProcess) -> None:
    garbage = b"\xff\xfe not json \x00"
    agent_topic = settings.topic(topics.AGENT_EVENTS)
    await produce(settings.kafka_bootstrap, [(agent_topic, b"agent-x", garbage), (agent_topic, b"agent-y", b"[1, 2]")])

    async def two_dlq_records() -> list[Any]:
        records = await read_records(settings.kafka_bootstrap, settings.topic(topics.DLQ), timeout=1.0)
        return records if len(records) >= 2 else []

    records = await eventually(two_dlq_records, what="the worker's dlq records")
    bodies = [json.loads(r.value) for r in records]
    assert {b["source"]["topic"] for b in bodies} == {agent_topic} and all(b["reason"] for b in bodies)

    code, output = await run_cli(settings, "replay", "--dry-run", "--entity", "agent-x")
    assert code == 0 and counts(output)["matched"] == 1 and counts(output).get("refused") == 1, output
    # What happened and why, once: the reason it was dead-lettered with (not "refused: refused").
    assert "was: 'record is not JSON" in output and "-> refused: the same reason again" in output, output
    for flags, matched in [
        (["--reason-regex", "^record is not JSON"], 1),
        (["--source-topic", "agent.events"], 2),
        (["--source-topic", "control.events"], 0),
        (["--since", "2999-01-01"], 0),
        (["--until", "2000-01-01T00:00:00+00:00"], 0),
        (["--type", "task.*"], 0),
    ]:
        code, output = await run_cli(settings, "replay", "--dry-run", *flags)
        assert code == 0 and counts(output)["matched"] == matched, (flags, output)

    # Re-driven for real, the garbage goes back byte for byte, and is refused again into the dlq.
    code, output = await run_cli(settings, "replay", "--entity", "agent-x")
    assert code == 0 and counts(output)["replayed"] == 1, output
    again = await eventually(lambda: _dlq_values_of(settings, "agent-x", 2), what="the second refusal")
    assert [base64.b64decode(b["value_base64"]) for b in again] == [garbage, garbage]
    assert again[0]["source"]["offset"] != again[1]["source"]["offset"]

    # Dead-lettered for a reason that no longer holds, refused now for another one: the line says the new one.
    old = dlq_record(settings, b"[3]", reason="simulated: an old bug", key="agent-z", topic=topics.AGENT_EVENTS)
    await produce(settings.kafka_bootstrap, [old])
    code, output = await run_cli(settings, "replay", "--dry-run", "--entity", "agent-z")
    assert "was: 'simulated: an old bug' -> refused: record is a JSON list, not an event object" in output, output


async def _dlq_values_of(settings: Settings, key: str, count: int) -> list[Any]:
    records = await read_records(settings.kafka_bootstrap, settings.topic(topics.DLQ), timeout=1.0)
    bodies = [json.loads(r.value) for r in records if r.key == key.encode()]
    return bodies if len(bodies) >= count else []


async def test_bad_filters_and_missing_topic_say_so(settings: Settings) -> None:
    code, output = await run_cli(settings, "replay", "--reason-regex", "(")
    assert code == 1 and "bad filter" in output, output
    code, output = await run_cli(settings, "replay", "--topic-prefix", "nosuchprefix.", "--create-topics", "false")
    assert code == 1 and "does not exist" in output, output
