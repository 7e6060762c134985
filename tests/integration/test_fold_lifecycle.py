"""One task's whole life through all three sources, real broker and database, one and two workers, replays."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from app import topics
from app.settings import Settings
from db.migrate import drop_database, migrate
from db.pool import create_pool, parse_database_url
from tests.harness import WorkerProcess, eventually, fetch_all, fold_drained, read_topic
from tests.streams import lifecycle as life

pytestmark = pytest.mark.integration
Pools = Callable[[], "AsyncIterator[tuple[str, Any]]"]


@pytest.fixture
async def databases(mysql_server: str) -> AsyncIterator[Callable[[], Any]]:
    """Make fresh migrated databases (and their pools) on demand; all dropped after the test."""
    made: list[tuple[str, Any]] = []

    async def make() -> tuple[str, Any]:
        url = f"{mysql_server}/aiw_fold_{uuid.uuid4().hex[:12]}"
        await migrate(url)
        pool = await create_pool(url, minsize=1, maxsize=4)
        made.append((url, pool))
        return url, pool

    yield make
    for url, pool in made:
        pool.close()
        await pool.wait_closed()
        await drop_database(url)


def variant(settings: Settings, url: str, **changes: Any) -> Settings:
    return settings.model_copy(update={"database_url": SecretStr(url), "agent_offline_seconds": 10**7, **changes})


def replayer(settings: Settings, url: str, worker_id: str) -> Settings:
    """A worker replaying a whole history: one batch window long enough to merge every partition by time.

    Across partitions the fold restores the produced order by broker timestamps within one batch
    (streams/route.py `source_order`); live, causally dependent events are produced after their cause
    was folded, so the default 50 ms window suffices there.
    """
    return variant(settings, url, worker_id=worker_id, worker_batch_seconds=4.0, worker_batch_size=5000)


def start(settings: Settings, tmp_path: Path, name: str, started: list[WorkerProcess]) -> WorkerProcess:
    process = WorkerProcess(settings, log_path=tmp_path / f"{name}.log").start()
    started.append(process)
    return process


@pytest.fixture
def workers() -> Any:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.stop()
        print(f"---- {process.log_path.name} (tail) ----\n" + process.log()[-4000:])


def n(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


EXPECTED_TRANSITIONS = [
    ("aiworker.agent.status_changed", life.AGENT, None, "initializing"),
    ("aiworker.task.state_changed", life.TASK, None, "backlog"),
    ("aiworker.task.state_changed", life.TASK, "backlog", "in_progress"),
    ("aiworker.agent.status_changed", life.AGENT, "initializing", "busy"),
    ("aiworker.task.state_changed", life.TASK, "in_progress", "needs_input"),
    ("aiworker.task.state_changed", life.TASK, "needs_input", "in_progress"),
    ("aiworker.task.state_changed", life.TASK, "in_progress", "ready_to_test"),
    ("aiworker.agent.status_changed", life.AGENT, "busy", "idle"),
    ("aiworker.task.state_changed", life.TASK, "ready_to_test", "approved"),
    ("aiworker.task_group.status_changed", life.GROUP, None, "pending"),
    ("aiworker.deployment.status_changed", "dep-staging", None, "in_progress"),
    ("aiworker.deployment.status_changed", "dep-staging", "in_progress", "completed"),
    ("aiworker.task_group.status_changed", life.GROUP, "pending", "staging"),
    ("aiworker.task.state_changed", life.TASK, "approved", "staging"),
    ("aiworker.deployment.status_changed", "dep-prod", None, "completed"),
    ("aiworker.task_group.status_changed", life.GROUP, "staging", "production"),
    ("aiworker.task.state_changed", life.TASK, "staging", "production"),
]


async def check_life(settings: Settings, pool: Any) -> None:
    """The exact rows and the exact transitions of the scenario."""
    [task] = await fetch_all(pool, "SELECT * FROM tasks WHERE id = %s", [life.TASK])
    assert task["state"] == "production" and task["project_id"] == life.PROJECT
    assert task["title"] == "Checkout total wrong with coupon + free shipping" and task["priority"] == "high"
    assert task["gitea_issue_number"] == 17 and task["assigned_agent_id"] == life.AGENT
    assert (task["branch_name"], task["pr_number"]) == (life.BRANCH, 23)
    assert task["pr_url"] == "https://git.acme.dev/acme/webshop/pulls/23"
    assert task["preview_url"] == "https://preview.example/t"
    assert task["started_at"] == n(life.at(2)) and task["assigned_at"] == n(life.at(2))
    assert task["deployed_staging_at"] == n(life.at(10)) and task["deployed_production_at"] == n(life.at(12))
    assert task["completed_at"] == n(life.at(12)) and task["actual_duration_minutes"] == 10
    [agent] = await fetch_all(pool, "SELECT * FROM agents WHERE id = %s", [life.AGENT])
    assert (agent["status"], agent["current_task_id"], agent["tasks_completed"]) == ("idle", None, 1)
    [question] = await fetch_all(pool, "SELECT * FROM task_questions")
    assert (question["status"], question["response"], question["task_id"]) == ("answered", "The larger one", life.TASK)
    [group] = await fetch_all(pool, "SELECT status, task_ids FROM task_groups")
    assert group["status"] == "production"
    deployments = await fetch_all(pool, "SELECT id, status, duration_seconds FROM deployments ORDER BY id")
    assert [(d["id"], d["status"], d["duration_seconds"]) for d in deployments] == [
        ("dep-prod", "completed", None), ("dep-staging", "completed", 60)]  # fmt: skip
    logs = await fetch_all(pool, "SELECT message, task_id FROM agent_logs ORDER BY message")
    assert [(r["message"], r["task_id"]) for r in logs] == [(f"line {i}", life.TASK) for i in range(5)]
    assert not await fetch_all(pool, "SELECT id FROM parked_events")

    async def all_published() -> list[Any] | None:
        got = await life.transitions_of(lambda t: read_topic(settings.kafka_bootstrap, t, timeout=1.0), settings)
        return got if len(got) >= len(EXPECTED_TRANSITIONS) else None

    got = await eventually(all_published, what="every transition on the transition topics")
    for entity in {t[1] for t in EXPECTED_TRANSITIONS}:  # the order per entity is exact
        assert [t for t in got if t[1] == entity] == [t for t in EXPECTED_TRANSITIONS if t[1] == entity], entity
    assert sorted(got, key=str) == sorted(EXPECTED_TRANSITIONS, key=str)


async def check_dlq(settings: Settings) -> None:
    async def dead() -> list[Any] | None:
        got = await read_topic(settings.kafka_bootstrap, settings.topic(topics.DLQ), timeout=1.0)
        return got if len(got) >= 2 else None

    records = await eventually(dead, what="the illegal events in the dlq")
    reasons = sorted(r["reason"] for r in records)
    assert len(records) == 2
    assert "needs a ready_to_test task" in reasons[1] and reasons[0].startswith("invalid event")
    assert all(
        r["source"]["topic"] in (settings.topic(topics.AGENT_EVENTS), settings.topic(topics.CONTROL_EVENTS)) for r in records
    )


async def test_a_task_lives_through_all_three_sources_and_replays_change_nothing(
    settings: Settings, databases: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    url, pool = await databases()
    one = variant(settings, url)
    start(one, tmp_path, "worker", workers)
    await life.run(one, pool)
    await check_life(one, pool)
    await check_dlq(one)
    await eventually(lambda: fold_drained(one, pool), what="the first worker to drain")
    before = await life.snapshot(pool)
    assert before["processed_events"] and len(before["agent_logs"]) == 5

    # The same input from offset 0, by a new consumer group, into the same database: nothing changes.
    again = replayer(settings, url, f"{settings.worker_id}-again")
    start(again, tmp_path, "replay-same-db", workers)
    await eventually(lambda: fold_drained(again, pool), timeout=90, what="the replay into the same database")
    life.assert_same(await life.snapshot(pool), before)

    # Into an empty database: the same rows (auto ids aside).
    empty_url, empty_pool = await databases()
    fresh = replayer(settings, empty_url, f"{settings.worker_id}-fresh")
    start(fresh, tmp_path, "replay-empty-db", workers)
    await eventually(lambda: fold_drained(fresh, empty_pool), timeout=90, what="the replay into an empty database")
    life.assert_same(await life.snapshot(empty_pool), before)
    assert parse_database_url(empty_url).database != parse_database_url(url).database


async def test_two_workers_give_the_same_rows_as_one(
    settings: Settings, databases: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    url, pool = await databases()
    two = variant(settings, url)
    start(two, tmp_path, "worker-a", workers)
    start(two, tmp_path, "worker-b", workers)
    await life.run(two, pool)
    await check_life(two, pool)
    await eventually(lambda: fold_drained(two, pool), what="the two workers to drain")
    shared = await life.snapshot(pool)
    logs = [w.log() for w in workers]
    assert all("folded" in text for text in logs), "both workers should have folded records"

    # One worker, the same input from offset 0, an empty database: the same rows.
    one_url, one_pool = await databases()
    one = replayer(settings, one_url, f"{settings.worker_id}-one")
    start(one, tmp_path, "worker-one", workers)
    await eventually(lambda: fold_drained(one, one_pool), timeout=90, what="one worker to drain")
    life.assert_same(await life.snapshot(one_pool), shared)
