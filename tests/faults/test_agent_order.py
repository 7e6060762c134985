"""Without any fault, every agent's tasks_completed is exact (it missed a count now and then).

The router keyed task.started / task.ready_for_review by task and agent.heartbeat by agent onto fold.tasks, so
one agent's events were folded out of their order (task k+1 started before task k's ready_for_review). The
agent halves of those events are now folded straight from agent.events, in the agent's order (streams/route.py)."""

from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.faults.chaos import fault_run
from tests.faults.workload import build
from tests.harness import fetch_all

pytestmark = pytest.mark.faults


async def test_agent_rows_follow_the_agents_order(settings: Settings, pool: Any, tmp_path: Path) -> None:
    load = build(3000)

    async def chaos(workers: Any, web: Any) -> None:
        return None

    await fault_run("no fault", settings, pool, load, tmp_path, chaos=chaos, seconds=10)
    rows = await fetch_all(pool, "SELECT id, tasks_completed FROM agents WHERE id LIKE %s", [f"{load.tag}-%"])
    assert {r["id"]: r["tasks_completed"] for r in rows} == load.expected_completed
