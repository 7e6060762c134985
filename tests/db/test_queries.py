"""db.queries against real rows in a migrated MariaDB/MySQL database."""

from __future__ import annotations

import json
import uuid
from typing import Any

from db import queries


def new_id() -> str:
    return str(uuid.uuid4())


async def execute(conn: Any, sql: str, *args: Any) -> None:
    async with conn.cursor() as cur:
        await cur.execute(sql, args or None)


async def add_project(conn: Any) -> str:
    project_id = new_id()
    await execute(conn, "INSERT INTO projects (id, name, k8s_namespace) VALUES (%s, %s, %s)", project_id, "p", project_id[:30])
    return project_id


async def add_task(conn: Any, project_id: str, *, priority: str | None = "medium", state: str = "backlog",
                   age_seconds: int = 0, duration: int | None = None) -> str:  # fmt: skip
    task_id = new_id()
    await execute(
        conn,
        "INSERT INTO tasks (id, project_id, title, priority, state, actual_duration_minutes, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, NOW() - INTERVAL %s SECOND)",
        task_id, project_id, "t", priority, state, duration, age_seconds,
    )  # fmt: skip
    return task_id


async def add_agent(conn: Any, *, status: str, heartbeat_age: int | None, completed: int = 0) -> str:
    agent_id = new_id()
    await execute(
        conn,
        "INSERT INTO agents (id, pod_name, status, tasks_completed, last_heartbeat) "
        "VALUES (%s, %s, %s, %s, IF(%s IS NULL, NULL, NOW() - INTERVAL %s SECOND))",
        agent_id, f"pod-{agent_id}", status, completed, heartbeat_age, heartbeat_age or 0,
    )  # fmt: skip
    return agent_id


async def test_next_available_task_orders_by_priority_then_age(conn: Any) -> None:
    project = await add_project(conn)
    other = await add_project(conn)
    await add_task(conn, other, priority="urgent")
    old_medium = await add_task(conn, project, priority="medium", age_seconds=500)
    no_priority = await add_task(conn, project, priority=None, age_seconds=900)
    high_new = await add_task(conn, project, priority="high", age_seconds=10)
    high_old = await add_task(conn, project, priority="high", age_seconds=100)
    urgent = await add_task(conn, project, priority="urgent", age_seconds=1)
    await add_task(conn, project, priority="urgent", state="in_progress", age_seconds=1000)
    await conn.commit()

    claimed = []
    for _ in range(6):
        row = await queries.next_available_task(conn, project)
        if row is None:
            break
        claimed.append(row["id"])
        await execute(conn, "UPDATE tasks SET state = 'in_progress' WHERE id = %s", row["id"])
        await conn.commit()
    assert claimed == [urgent, high_old, high_new, old_medium, no_priority]
    assert await queries.next_available_task(conn, project) is None
    await conn.rollback()


async def test_next_available_task_skips_rows_locked_by_another_transaction(conn: Any, other_conn: Any) -> None:
    project = await add_project(conn)
    first = await add_task(conn, project, priority="urgent")
    second = await add_task(conn, project, priority="high")
    third = await add_task(conn, project, priority="low")
    await conn.commit()

    await conn.begin()
    mine = await queries.next_available_task(conn, project)
    assert mine is not None and mine["id"] == first
    await other_conn.begin()
    theirs = await queries.next_available_task(other_conn, project)
    assert theirs is not None and theirs["id"] == second
    await conn.rollback()  # releases `first`: the next claimer gets it again
    await other_conn.rollback()

    await other_conn.begin()
    again = await queries.next_available_task(other_conn, project)
    assert again is not None and again["id"] == first
    await other_conn.rollback()
    assert third


async def test_idle_agents_excludes_stale_and_busy(conn: Any) -> None:
    fresh_busy_worker = await add_agent(conn, status="idle", heartbeat_age=5, completed=7)
    fresh_light = await add_agent(conn, status="idle", heartbeat_age=20, completed=1)
    await add_agent(conn, status="idle", heartbeat_age=120)  # stale
    await add_agent(conn, status="idle", heartbeat_age=None)  # never seen
    await add_agent(conn, status="busy", heartbeat_age=1)
    await conn.commit()

    rows = await queries.idle_agents(conn, limit=10)
    assert [r["id"] for r in rows] == [fresh_light, fresh_busy_worker]
    assert [r["id"] for r in await queries.idle_agents(conn)] == [fresh_light]
    narrow = await queries.idle_agents(conn, heartbeat_within_seconds=10, limit=10)
    assert [r["id"] for r in narrow] == [fresh_busy_worker]
    assert await queries.idle_agents(conn, heartbeat_within_seconds=200, limit=10) != rows


async def test_project_dashboard_counts(conn: Any) -> None:
    project = await add_project(conn)
    other = await add_project(conn)
    for state in ["backlog", "backlog", "in_progress", "needs_input", "ready_to_test", "approved", "cancelled"]:
        await add_task(conn, project, state=state)
    await add_task(conn, project, state="production", duration=30)
    await add_task(conn, project, state="production", duration=61)
    await add_task(conn, other, state="backlog")
    await conn.commit()

    assert await queries.project_dashboard(conn, project) == {
        "total_tasks": 9,
        "backlog": 2,
        "in_progress": 1,
        "needs_input": 1,
        "ready_to_test": 1,
        "completed": 2,
        "avg_duration": 45.5,
    }
    empty = await queries.project_dashboard(conn, new_id())
    assert empty["total_tasks"] == 0 and empty["backlog"] == 0 and empty["avg_duration"] is None


async def test_production_deployment_history(conn: Any) -> None:
    project = await add_project(conn)
    tasks = [await add_task(conn, project) for _ in range(3)]
    group = new_id()
    group_ids = [*tasks[:2], new_id()]  # the third id names no existing task
    await execute(
        conn,
        "INSERT INTO task_groups (id, project_id, task_ids) VALUES (%s, %s, %s)",
        group, project, json.dumps(group_ids),
    )  # fmt: skip
    deployments = []
    for age, env, group_id in [(300, "production", group), (100, "production", None), (50, "staging", group)]:
        deployment = new_id()
        deployments.append(deployment)
        await execute(
            conn,
            "INSERT INTO deployments (id, project_id, task_group_id, environment, created_at) "
            "VALUES (%s, %s, %s, %s, NOW() - INTERVAL %s SECOND)",
            deployment, project, group_id, env, age,
        )  # fmt: skip
    await conn.commit()

    rows = await queries.production_deployment_history(conn, project)
    assert [r["id"] for r in rows] == [deployments[1], deployments[0]]
    assert rows[0]["task_ids"] is None and rows[0]["tasks_count"] == 0
    assert rows[1]["task_ids"] == group_ids and rows[1]["tasks_count"] == 2
    assert rows[1]["environment"] == "production" and "commit_hash" in rows[1]
    assert len(await queries.production_deployment_history(conn, project, limit=1)) == 1
    assert await queries.production_deployment_history(conn, new_id()) == []
