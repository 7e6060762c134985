"""The queries of `reconcile`: projects with a Gitea repository, their tasks, and the per-project run state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncmy.cursors import DictCursor


@dataclass(frozen=True, slots=True)
class ProjectRepo:
    """An active project and the Gitea repository our own row names for it."""

    id: str
    owner: str
    name: str
    repo_id: int | None
    last_reconciled_at: datetime | None  # UTC


def _utc(value: Any) -> datetime | None:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


async def _rows(pool: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        try:
            async with conn.cursor(DictCursor) as cur:
                await cur.execute(sql, params)
                return list(await cur.fetchall())
        finally:
            await conn.rollback()  # read-only; the next read sees new rows


async def active_projects(pool: Any) -> list[ProjectRepo]:
    """Every active project whose row names a Gitea repository (owner and name), in id order."""
    rows = await _rows(
        pool,
        "SELECT p.id, p.gitea_owner, p.gitea_repo_name, p.gitea_repo_id, r.last_reconciled_at FROM projects p "
        "LEFT JOIN reconcile_state r ON r.project_id = p.id WHERE p.status = 'active' AND p.gitea_owner <> '' "
        "AND p.gitea_repo_name <> '' ORDER BY p.id",
        [],
    )
    return [
        ProjectRepo(str(r["id"]), str(r["gitea_owner"]), str(r["gitea_repo_name"]),
                    None if r["gitea_repo_id"] is None else int(r["gitea_repo_id"]), _utc(r["last_reconciled_at"]))
        for r in rows
    ]  # fmt: skip


async def project_tasks(pool: Any, project_id: str) -> list[dict[str, Any]]:
    """The columns of a project's tasks that tell whether Gitea's state is news (updated_at in UTC)."""
    rows = await _rows(
        pool,
        "SELECT id, state, branch_name, pr_number, gitea_issue_number, updated_at FROM tasks WHERE project_id = %s",
        [project_id],
    )
    return [{**r, "updated_at": _utc(r["updated_at"])} for r in rows]


async def record_run(pool: Any, project_id: str, *, ran_at: datetime, reconciled_at: datetime | None, error: str | None,
                     published: int) -> None:  # fmt: skip
    """Store how a run of one project went; `reconciled_at` (the run's start) only after a successful run."""
    naive = ran_at.astimezone(UTC).replace(tzinfo=None)
    since = None if reconciled_at is None else reconciled_at.astimezone(UTC).replace(tzinfo=None)
    async with pool.acquire() as conn:
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO reconcile_state (project_id, last_reconciled_at, last_run_at, last_error, records_published) "
                "VALUES (%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
                "last_reconciled_at = COALESCE(VALUES(last_reconciled_at), last_reconciled_at), "
                "last_run_at = VALUES(last_run_at), last_error = VALUES(last_error), "
                "records_published = records_published + VALUES(records_published)",
                [project_id, since, naive, None if error is None else error[:1024], published],
            )
        await conn.commit()
