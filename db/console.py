"""SQL of the operator console (webhooks/console/): read-only, every list bounded and paginated by keyset.

Indexes each query walks (EXPLAIN-checked on a 10,000-task project by `python -m bench console`):
- board columns: idx_tasks_project_state (project_id, state, created_at) + the primary key, backwards, from a
  (created_at, id) cursor; with an agent filter idx_assigned_agent (the agent's tasks, sorted); per-state counts:
  idx_project_state (project_id, state), index only;
- task page: the primary key; questions idx_task_status; log lines idx_task_created; its timeline is the
  fold's trace (db/trace.py, read by app/trace.py as `aiworker-events trace` reads it);
- deliveries: fold_outcomes (008_trace.sql) by idx_fold_outcomes_delivery for a delivery id, else one of the
  indexes of migration 010, (repository, id) or (origin, id), backwards from an id cursor; a filter on the type
  or outcome alone reads a bounded window of ids (SCAN_IDS) of the origin index;
- agents: the primary key from an id cursor; recent lines of an agent idx_agent_created (backwards), of the fleet the
  primary key backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asyncmy.cursors import DictCursor

SCAN_IDS = 20_000
"""Row ids of fold_outcomes (deliveries and other work items alike) one windowed deliveries page reads at most."""
TASK_STATES = ("backlog", "in_progress", "needs_input", "ready_to_test", "approved", "staging", "production", "cancelled")
Row = dict[str, Any]

# When a task entered its state, from the columns the fold sets; updated_at where none says.
_IN_STATE_SINCE = """COALESCE(CASE state
  WHEN 'backlog' THEN created_at
  WHEN 'in_progress' THEN COALESCE(started_at, assigned_at)
  WHEN 'ready_to_test' THEN COALESCE(preview_deployed_at, completed_at)
  WHEN 'staging' THEN deployed_staging_at
  WHEN 'production' THEN deployed_production_at
  END, updated_at, created_at)"""
_CARD = (
    "id, title, priority, state, assigned_agent_id, pr_number, pr_url, preview_url, created_at, updated_at, "
    f"{_IN_STATE_SINCE} AS in_state_since"
)


@dataclass(frozen=True, slots=True)
class BoardFilter:
    """Which tasks of a project the board shows: a text in the title (or the exact id), an agent, a priority."""

    text: str = ""
    agent: str = ""
    priority: str = ""

    def sql(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if self.text:
            clauses.append("(title LIKE %s OR id = %s)")
            params += [f"%{_like_escape(self.text)}%", self.text]
        if self.agent:
            clauses.append("assigned_agent_id = %s")
            params.append(self.agent)
        if self.priority:
            clauses.append("priority = %s")
            params.append(self.priority)
        return "".join(f" AND {c}" for c in clauses), params


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page of a list starts: after the row with this (time, id), in the list's order."""

    at: datetime
    id: str


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def _all(conn: Any, sql: str, params: list[Any]) -> list[Row]:
    async with conn.cursor(DictCursor) as cur:
        await cur.execute(sql, params)
        return list(await cur.fetchall())


async def overview(conn: Any, limit: int = 200) -> list[Row]:
    """Per project: tasks per state and the average duration (the seed's dashboard query, for every project)."""
    counts = ", ".join(f"SUM(t.state = '{state}') AS `{state}`" for state in TASK_STATES)
    return await _all(
        conn,
        f"SELECT p.id, p.name, p.status, COUNT(t.id) AS total_tasks, {counts},"
        " AVG(t.actual_duration_minutes) AS avg_duration_minutes"
        " FROM projects p LEFT JOIN tasks t ON t.project_id = p.id GROUP BY p.id, p.name, p.status"
        " ORDER BY p.name, p.id LIMIT %s",
        [limit],
    )


async def project(conn: Any, project_id: str) -> Row | None:
    rows = await _all(
        conn, "SELECT id, name, status, gitea_owner, gitea_repo_name, gitea_repo_url FROM projects WHERE id = %s", [project_id]
    )
    return rows[0] if rows else None


async def state_counts(conn: Any, project_id: str, where: BoardFilter) -> dict[str, int]:
    extra, params = where.sql()
    rows = await _all(
        conn, f"SELECT state, COUNT(*) AS n FROM tasks WHERE project_id = %s{extra} GROUP BY state", [project_id, *params]
    )
    counts = dict.fromkeys(TASK_STATES, 0)
    counts.update({str(r["state"]): int(r["n"]) for r in rows if r["state"] is not None})
    return counts


async def board_searched(conn: Any, project_id: str, where: BoardFilter, limit: int) -> dict[str, list[Row]]:
    """Every column's first `limit` tasks of a title search at once: the search reads each of the project's rows
    once (no index serves LIKE '%…%'), instead of once per column and once more for the counts; each row carries
    its column's count (`n`)."""
    extra, params = where.sql()
    rows = await _all(
        conn,
        f"SELECT {_CARD}, ranked.rn, ranked.n FROM tasks JOIN (SELECT id AS ranked_id, ROW_NUMBER() OVER (PARTITION BY state"
        " ORDER BY created_at DESC, id DESC) AS rn, COUNT(*) OVER (PARTITION BY state) AS n FROM tasks"
        f" WHERE project_id = %s{extra}) ranked ON ranked.ranked_id = tasks.id WHERE ranked.rn <= %s ORDER BY state, ranked.rn",
        [project_id, *params, limit],
    )
    columns: dict[str, list[Row]] = {state: [] for state in TASK_STATES}
    for row in rows:
        columns.setdefault(str(row["state"]), []).append(row)
    return columns


async def board_column(
    conn: Any, project_id: str, state: str, where: BoardFilter, limit: int, after: Cursor | None = None
) -> list[Row]:
    """One column of the board: the project's tasks in `state`, newest first, `limit` after the cursor."""
    extra, params = where.sql()
    page, page_params = "", []
    if after is not None:
        page = " AND (created_at < %s OR (created_at = %s AND id < %s))"
        page_params = [after.at, after.at, after.id]
    index = "idx_assigned_agent" if where.agent else "idx_tasks_project_state"  # an agent's tasks are few: read those
    return await _all(
        conn,
        f"SELECT {_CARD} FROM tasks FORCE INDEX ({index}) WHERE project_id = %s AND state = %s{extra}{page}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        [project_id, state, *params, *page_params, limit],
    )


async def task(conn: Any, task_id: str) -> Row | None:
    rows = await _all(conn, f"SELECT *, {_IN_STATE_SINCE} AS in_state_since FROM tasks WHERE id = %s", [task_id])
    return rows[0] if rows else None


async def questions(conn: Any, task_id: str, limit: int = 100) -> list[Row]:
    return await _all(
        conn,
        "SELECT id, question, context, asked_at, response, responded_at, responded_by, status FROM task_questions"
        " WHERE task_id = %s ORDER BY asked_at, id LIMIT %s",
        [task_id, limit],
    )


async def deployments(conn: Any, task_row: Row, limit: int = 50) -> list[Row]:
    """Deployments of the task: its previews (by namespace) and those of the task groups that hold it."""
    return await _all(
        conn,
        "SELECT id, environment, status, deployment_type, branch, commit_hash, url, error_message, started_at, completed_at,"
        " created_at FROM deployments WHERE project_id = %s AND ("
        " (environment = 'preview' AND k8s_namespace = %s) OR task_group_id IN"
        " (SELECT id FROM task_groups WHERE project_id = %s AND JSON_CONTAINS(task_ids, JSON_QUOTE(%s))))"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        [task_row["project_id"], task_row.get("preview_namespace") or "", task_row["project_id"], task_row["id"], limit],
    )


async def task_logs(conn: Any, task_id: str, limit: int = 100) -> list[Row]:
    return await _all(
        conn,
        "SELECT id, agent_id, level, message, created_at FROM agent_logs WHERE task_id = %s"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        [task_id, limit],
    )


async def agents(conn: Any, limit: int, after: str | None = None) -> list[Row]:
    """Agents by id from a cursor, each with the title of its current task."""
    page, params = ("WHERE a.id > %s ", [after]) if after else ("", [])
    return await _all(
        conn,
        "SELECT a.id, a.pod_name, a.status, a.current_task_id, t.title AS current_task_title, t.project_id AS"
        " current_project_id, a.last_heartbeat, a.restarts_count, a.tasks_completed, a.error_message,"
        f" TIMESTAMPDIFF(SECOND, a.last_heartbeat, CURRENT_TIMESTAMP) AS heartbeat_age FROM agents a"
        f" LEFT JOIN tasks t ON t.id = a.current_task_id {page}ORDER BY a.id LIMIT %s",
        [*params, limit],
    )


async def recent_logs(conn: Any, agent_id: str | None, limit: int = 50) -> list[Row]:
    """The newest log lines of one agent, or of the fleet."""
    if agent_id:
        return await _all(
            conn,
            "SELECT id, agent_id, task_id, level, message, created_at FROM agent_logs WHERE agent_id = %s"
            " ORDER BY created_at DESC, id DESC LIMIT %s",
            [agent_id, limit],
        )
    return await _all(
        conn, "SELECT id, agent_id, task_id, level, message, created_at FROM agent_logs ORDER BY id DESC LIMIT %s", [limit]
    )


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which Gitea deliveries the deliveries page lists: all of an origin, or those of one id, repository, type,
    outcome (several at once: delivery id, else repository, picks the index, the others filter its rows)."""

    origin: str = "delivery"
    delivery_id: str = ""
    repository: str = ""
    event_type: str = ""
    outcome: str = ""

    def sql(self) -> tuple[str, str, list[Any]]:
        """(index hint, conditions, parameters)."""
        clauses, params = ["origin = %s"], [self.origin]
        for column, value in (("delivery_id", self.delivery_id), ("repository", self.repository),
                              ("event_type", self.event_type), ("outcome", self.outcome)):  # fmt: skip
            if value:
                clauses.append(f"{column} = %s")
                params.append(value)
        index = (
            "idx_fold_outcomes_delivery" if self.delivery_id else "idx_fold_outcomes_repository" if self.repository
            else "idx_fold_outcomes_origin"
        )  # fmt: skip
        return index, " AND ".join(clauses), params

    def windowed(self) -> bool:
        """Whether the page reads a window of ids (a type or outcome filter without an indexed one)."""
        return not (self.delivery_id or self.repository) and bool(self.event_type or self.outcome)


async def deliveries(conn: Any, where: DeliveryFilter, limit: int, before: int | None = None) -> tuple[list[Row], int | None]:
    """The newest `limit` fold outcomes of Gitea deliveries matching `where`, older than the row id `before`.

    A filter on the type or the outcome alone has no index of its own (each index is a write per folded record):
    it reads the origin index over a window of SCAN_IDS row ids below `before`, whatever it finds there, and
    returns the window's floor, from which the next page goes on (None: the list was not windowed)."""
    index, clauses, params = where.sql()
    bounds, bound_params = [], []
    if before is not None:
        bounds.append(" AND id < %s")
        bound_params.append(before)
    floor = None
    if where.windowed():
        top = before if before is not None else await _next_id(conn)
        floor = max(0, top - SCAN_IDS)
        bounds.append(" AND id >= %s")
        bound_params.append(floor)
    rows = await _all(
        conn,
        "SELECT id, delivery_id, event_type, repository, origin, outcome, reason, received_at, folded_at, event_id, dlq_id,"
        f" task_id, source_topic, source_partition, source_offset FROM fold_outcomes FORCE INDEX ({index})"
        f" WHERE {clauses}{''.join(bounds)} ORDER BY id DESC LIMIT %s",
        [*params, *bound_params, limit],
    )
    return rows, floor


async def _next_id(conn: Any) -> int:
    rows = await _all(conn, "SELECT COALESCE(MAX(id), 0) + 1 AS next FROM fold_outcomes", [])
    return int(rows[0]["next"])
