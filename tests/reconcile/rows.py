"""Rows of the reconcile tests, written straight into the test's own database (setup, not what is tested)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime.now(UTC).replace(microsecond=0)


async def insert_task(pool: Any, project_id: str, state: str, *, branch: str | None = None, pr: int | None = None,
                      task_id: str | None = None, issue: int | None = None) -> str:  # fmt: skip
    task_id = task_id or str(uuid.uuid4())
    updated = (NOW - timedelta(hours=1)).replace(tzinfo=None)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO tasks (id, project_id, title, state, branch_name, pr_number, gitea_issue_number, created_at, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [task_id, project_id, f"task {state}", state, branch, pr, issue, updated, updated],
        )
        await conn.commit()
    return task_id
