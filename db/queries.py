"""The seed's "Queries Comunes" (shared/seeds/001) as typed, parameterized async functions.

Every function takes an open asyncmy connection (`conn`) and leaves transaction control to the
caller. Rows come back as dicts (column name -> value); timestamps are naive datetimes in UTC
(the pool sets the session time zone to +00:00).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from asyncmy.cursors import DictCursor

Row = dict[str, Any]

# ENUM columns sort by the position of their value: ('low', 'medium', 'high', 'urgent'), so
# `priority DESC` puts 'urgent' first and NULL (no priority) last. FIELD(priority, 'urgent', ...)
# would read more plainly but sorts NULL first and cannot use idx_tasks_claim
# (project_id, state, priority DESC, created_at), which lets SKIP LOCKED stop at the first
# unlocked row instead of sorting, and so locking, every backlog task of the project.
NEXT_AVAILABLE_TASK = """
SELECT * FROM tasks
WHERE project_id = %s AND state = 'backlog'
ORDER BY priority DESC, created_at ASC, id ASC
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

IDLE_AGENTS = """
SELECT * FROM agents
WHERE status = 'idle' AND last_heartbeat > DATE_SUB(NOW(), INTERVAL %s SECOND)
ORDER BY tasks_completed ASC, last_heartbeat DESC, id ASC
LIMIT %s
"""

PROJECT_DASHBOARD = """
SELECT
  COUNT(*) AS total_tasks,
  COALESCE(SUM(CASE WHEN state = 'backlog' THEN 1 ELSE 0 END), 0) AS backlog,
  COALESCE(SUM(CASE WHEN state = 'in_progress' THEN 1 ELSE 0 END), 0) AS in_progress,
  COALESCE(SUM(CASE WHEN state = 'needs_input' THEN 1 ELSE 0 END), 0) AS needs_input,
  COALESCE(SUM(CASE WHEN state = 'ready_to_test' THEN 1 ELSE 0 END), 0) AS ready_to_test,
  COALESCE(SUM(CASE WHEN state = 'production' THEN 1 ELSE 0 END), 0) AS completed,
  AVG(actual_duration_minutes) AS avg_duration
FROM tasks
WHERE project_id = %s
"""

# The seed joins tasks ON JSON_CONTAINS(...) and GROUPs BY d.id while selecting d.* and
# tg.task_ids, which ONLY_FULL_GROUP_BY (MySQL 8's default) may refuse; a correlated count does
# the same without GROUP BY. The count is limited to the deployment's project so that it uses
# idx_project_state instead of scanning every task; JSON_QUOTE(t.id) is the seed's
# CONCAT('"', t.id, '"') done properly.
PRODUCTION_DEPLOYMENT_HISTORY = """
SELECT d.*, tg.task_ids,
  (SELECT COUNT(*) FROM tasks t
   WHERE t.project_id = d.project_id AND JSON_CONTAINS(tg.task_ids, JSON_QUOTE(t.id))) AS tasks_count
FROM deployments d
LEFT JOIN task_groups tg ON tg.id = d.task_group_id
WHERE d.project_id = %s AND d.environment = 'production'
ORDER BY d.created_at DESC, d.id DESC
LIMIT %s
"""


async def _fetchall(conn: Any, sql: str, args: tuple[Any, ...]) -> list[Row]:
    async with conn.cursor(DictCursor) as cur:
        await cur.execute(sql, args)
        rows = await cur.fetchall()
    return [dict(row) for row in rows]


async def next_available_task(conn: Any, project_id: str) -> Row | None:
    """Claim the next backlog task of a project: highest priority first ('urgent' > 'high' >
    'medium' > 'low' > none), then oldest; or None when there is none left to claim.

    Must run inside a transaction (the pool's connections have autocommit off): the row stays
    locked FOR UPDATE until the caller commits or rolls back, and rows locked by other
    transactions are skipped (SKIP LOCKED, MySQL 8 / MariaDB >= 10.6), so concurrent workers
    each get a different task. Update the row (state, assigned_agent_id) before committing.
    """
    rows = await _fetchall(conn, NEXT_AVAILABLE_TASK, (project_id,))
    return rows[0] if rows else None


async def idle_agents(conn: Any, *, heartbeat_within_seconds: int = 60, limit: int = 1) -> list[Row]:
    """Idle agents whose last heartbeat is less than `heartbeat_within_seconds` old, least busy
    (fewest tasks_completed) first."""
    return await _fetchall(conn, IDLE_AGENTS, (int(heartbeat_within_seconds), int(limit)))


def _to_int(value: Any) -> int:
    return int(value) if value is not None else 0


async def project_dashboard(conn: Any, project_id: str) -> Row:
    """Task counts of a project: total_tasks, backlog, in_progress, needs_input, ready_to_test,
    completed (in production), and avg_duration (mean actual_duration_minutes, float, None when
    no task has one)."""
    rows = await _fetchall(conn, PROJECT_DASHBOARD, (project_id,))
    row = rows[0]
    result: Row = {key: _to_int(row[key]) for key in row if key != "avg_duration"}
    avg = row["avg_duration"]
    result["avg_duration"] = float(avg) if isinstance(avg, Decimal | int | float) else None
    return result


def _json_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8")
    parsed = json.loads(value) if isinstance(value, str) else value
    return list(parsed) if isinstance(parsed, list) else None


async def production_deployment_history(conn: Any, project_id: str, limit: int = 20) -> list[Row]:
    """A project's production deployments, newest first, each with its task group's task_ids
    (a list, None without a group) and tasks_count (how many of those tasks exist)."""
    rows = await _fetchall(conn, PRODUCTION_DEPLOYMENT_HISTORY, (project_id, int(limit)))
    for row in rows:
        row["task_ids"] = _json_list(row["task_ids"])
        row["tasks_count"] = _to_int(row["tasks_count"])
    return rows
