"""`python -m bench console`: the console's pages on a large fleet (issue 16): a project of 10,000 tasks.

Starts its own broker (EmbeddedBroker) and database (migrated, removed afterwards), seeds one project with
BOARD_TASKS tasks across every state (and agents, questions and log lines for the task page), serves the web
application in this process with a console token, and times each page over HTTP on localhost (so the figures
are an upper bound of the server's time: they include the client), side by side with GET /healthz as the
baseline of the HTTP stack. Prints the EXPLAIN of the board's column query (the index it walks).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from app.commands.broker import EmbeddedBroker
from app.settings import load_settings
from app.topics import ensure_topics
from db import console as sql
from db.migrate import drop_database, migrate
from db.pool import create_pool
from webhooks.server import init

SERVER = os.environ.get("AIWORKER_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306").rstrip("/")
BOARD_TASKS, AGENTS, DELIVERIES, ROUNDS, LIMIT_MS = 10_000, 200, 100_000, 30, 300.0
GITEA_TYPES = ("push", "pull_request", "issues", "issue_comment", "pull_request_review_approved", "create", "status")
TOKEN = "bench-console-token"


async def seed(pool: Any, project_id: str) -> str:
    """The project, its agents and tasks (random states, ages, agents); returns the id of a task with history."""
    rng = random.Random(16)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("INSERT INTO projects (id, name, k8s_namespace) VALUES (%s, 'Big shop', %s)", [project_id, project_id])
        await cur.executemany(
            "INSERT INTO agents (id, pod_name, status) VALUES (%s, %s, 'busy')", [(f"a{i}", f"pod-{i}") for i in range(AGENTS)]
        )
        rows = []
        for i in range(BOARD_TASKS):
            state = rng.choice(sql.TASK_STATES)
            created = t0 + timedelta(minutes=rng.randrange(500_000))
            agent = None if state == "backlog" else f"a{rng.randrange(AGENTS)}"
            rows.append((f"t{i:05d}", project_id, f"Task {i} <b>{rng.random():.6f}</b>", state, agent, created, created))
        for start in range(0, len(rows), 1000):
            await cur.executemany(
                "INSERT INTO tasks (id, project_id, title, state, assigned_agent_id, created_at, started_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                rows[start : start + 1000],
            )
        await cur.executemany(
            "INSERT INTO task_questions (id, task_id, question) VALUES (%s, 't00001', %s)",
            [(f"q{i}", f"why {i}?") for i in range(20)],
        )
        await cur.executemany(
            "INSERT INTO agent_logs (agent_id, task_id, level, message) VALUES ('a1', 't00001', 'info', %s)",
            [(f"line {i}",) for i in range(2000)],
        )
        await conn.commit()
    return "t00001"


async def seed_deliveries(pool: Any) -> str:
    """DELIVERIES fold outcomes of Gitea deliveries (100 repositories, a few types, 1% refused) interleaved with as
    many of other work items (agent events: no origin); returns one delivery id."""
    rng = random.Random(13)
    rows = []
    for i in range(DELIVERIES * 2):
        if i % 2:
            rows.append((f"e{i}", "agent.heartbeat", None, None, None, "aiw.agent.events", 0, i, "applied", None))
            continue
        outcome = "refused" if rng.random() < 0.01 else rng.choice(("applied", "ignored", "unchanged"))
        reason = "the payload's repository is not the project's" if outcome == "refused" else None
        rows.append((f"gitea:{i}", rng.choice(GITEA_TYPES), f"d-{i:06d}", "delivery", f"org{rng.randrange(100)}/repo",
                     "aiw.fold.tasks", 1, i, outcome, reason))  # fmt: skip
    async with pool.acquire() as conn, conn.cursor() as cur:
        for start in range(0, len(rows), 5000):
            await cur.executemany(
                "INSERT INTO fold_outcomes (event_id, event_type, delivery_id, origin, repository, source_topic,"
                " source_partition, source_offset, outcome, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows[start : start + 5000],
            )
        await conn.commit()
    return "d-050000"


async def timed(client: TestClient, path: str, json: bool) -> list[float]:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json" if json else "text/html"}
    took = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        response = await client.get(path, headers=headers)
        await response.read()
        took.append((time.perf_counter() - start) * 1000)
        assert response.status == 200, (path, response.status)
    return took


async def run() -> int:
    url = f"{SERVER}/aiw_bench_console_{uuid.uuid4().hex[:8]}"
    await migrate(url)
    worst = 0.0
    try:
        with EmbeddedBroker(log_path=None) as broker, tempfile.TemporaryDirectory() as spool:
            settings = load_settings(
                kafka_bootstrap=broker.bootstrap, database_url=url, topic_prefix=f"bc{uuid.uuid4().hex[:6]}.",
                console_token=TOKEN, spool_dir=spool,
            )  # fmt: skip
            await ensure_topics(settings, broker.bootstrap)
            pool = await create_pool(url, minsize=1, maxsize=2)
            project_id = "p-big"
            task_id = await seed(pool, project_id)
            delivery = await seed_deliveries(pool)
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(
                    "EXPLAIN SELECT id FROM tasks FORCE INDEX (idx_tasks_project_state) WHERE project_id = %s AND state = %s"
                    " ORDER BY created_at DESC, id DESC LIMIT 26",
                    [project_id, "backlog"],
                )
                plan = await cur.fetchall()
                await conn.rollback()
            pool.close()
            await pool.wait_closed()
            print(f"board column plan: {plan}")
            async with TestClient(TestServer(init(settings, broker.bootstrap))) as client:
                base = f"/console/projects/{project_id}"
                twin = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
                first = await (await client.get(base, headers=twin)).json()
                cursor = next(c["next"] for c in first["columns"] if c["state"] == "backlog")
                pages = {
                    "GET /healthz (baseline)": ("/healthz", True),
                    f"board, {BOARD_TASKS} tasks, HTML": (base, False),
                    "board, JSON": (base, True),
                    "board, title filter 'Task 99'": (f"{base}?q=Task+99", True),
                    "board, title filter matching every task": (f"{base}?q=Task", True),
                    "board, agent filter": (f"{base}?agent=a7", True),
                    "board, backlog column, next page": (f"{base}?state=backlog&after={cursor}", True),
                    "task page (20 questions, 2000 log lines)": (f"/console/tasks/{task_id}", False),
                    "agents": ("/console/agents", False),
                    f"deliveries, {DELIVERIES} (+ as many other outcomes)": ("/console/deliveries", False),
                    "deliveries, by delivery id": (f"/console/deliveries?delivery_id={delivery}", True),
                    "deliveries, by repository": ("/console/deliveries?repository=org7/repo", True),
                    "deliveries, by event type": ("/console/deliveries?event_type=status", True),
                    "deliveries, refused (1%)": ("/console/deliveries?outcome=refused", True),
                    "deliveries, an outcome none has (one id window)": ("/console/deliveries?outcome=expired", True),
                    "deliveries, a page deep in the middle": ("/console/deliveries?before=100000", True),
                }
                print(f"{'page':48} {'median ms':>10} {'p95 ms':>8} {'x baseline':>11}")
                baseline = 0.0
                for name, (path, as_json) in pages.items():
                    took = sorted(await timed(client, path, as_json))
                    median, p95 = statistics.median(took), took[int(len(took) * 0.95) - 1]
                    baseline = baseline or median
                    if "baseline" not in name:
                        worst = max(worst, p95)
                    print(f"{name:48} {median:10.1f} {p95:8.1f} {median / baseline:11.1f}")
    finally:
        await drop_database(url)
    verdict = "within" if worst < LIMIT_MS else "OVER"
    print(f"slowest page p95 {worst:.1f} ms: {verdict} the {LIMIT_MS:.0f} ms of issue 16")
    return 0 if worst < LIMIT_MS else 1


def main() -> int:
    return asyncio.run(run())
