"""The projects queries of the web process: a project's hook (webhook secrets and repository), and the project of
a repository (for the shared hook)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_HOOK_COLUMNS = (
    "id, status, gitea_webhook_secret, gitea_webhook_secret_previous, gitea_webhook_secret_rotated_at, "
    "gitea_repo_id, gitea_owner, gitea_repo_name"
)


@dataclass(frozen=True, slots=True)
class ProjectHook:
    """What the web needs of a project to take its deliveries: its secrets (`rotated_at` is UTC) and the
    repository it names (any of the three may be None: a project that names no repository takes any)."""

    project_id: str
    status: str
    current: str | None
    previous: str | None
    rotated_at: datetime | None
    repo_id: int | None
    owner: str | None
    repo_name: str | None


@dataclass(frozen=True, slots=True)
class RepositoryProject:
    """A project naming a repository, for the shared hook's lookup."""

    project_id: str
    status: str


def _hook(row: Any) -> ProjectHook:
    project_id, status, current, previous, rotated_at, repo_id, owner, repo_name = row
    if isinstance(rotated_at, datetime) and rotated_at.tzinfo is None:
        rotated_at = rotated_at.replace(tzinfo=UTC)  # the pool's connections use time_zone '+00:00'
    return ProjectHook(
        str(project_id), str(status or "active"), current or None, previous or None, rotated_at,
        int(repo_id) if repo_id is not None else None, owner or None, repo_name or None,
    )  # fmt: skip


async def find_project_hook(pool: Any, project_id: str) -> ProjectHook | None:
    """The hook of project `project_id`, or None when there is no such project."""
    async with pool.acquire() as conn:
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"SELECT {_HOOK_COLUMNS} FROM projects WHERE id = %s", [project_id])
                row = await cur.fetchone()
                return None if row is None else _hook(row)
        finally:
            await conn.rollback()  # read-only; ends the snapshot so the next lookup sees new rows


async def find_repository_projects(pool: Any, *, repo_id: int | None, owner: str, name: str) -> list[RepositoryProject]:
    """The projects that name a Gitea repository: by repository id, else by owner/name among the projects whose
    row names no other repository id (a repository deleted and created again under the same name is another
    one). Active projects first. Names compare case-insensitively (the columns' collation), as Gitea's do."""
    async with pool.acquire() as conn:
        try:
            async with conn.cursor() as cur:
                order = "ORDER BY status = 'active' DESC, id"
                if repo_id is not None:
                    await cur.execute(f"SELECT id, status FROM projects WHERE gitea_repo_id = %s {order}", [repo_id])
                    rows = await cur.fetchall()
                    if rows:
                        return [RepositoryProject(str(r[0]), str(r[1] or "active")) for r in rows]
                if not (owner and name):
                    return []
                await cur.execute(
                    "SELECT id, status FROM projects WHERE gitea_owner = %s AND gitea_repo_name = %s "
                    f"AND (gitea_repo_id IS NULL OR %s IS NULL) {order}",
                    [owner, name, repo_id],
                )
                return [RepositoryProject(str(r[0]), str(r[1] or "active")) for r in await cur.fetchall()]
        finally:
            await conn.rollback()


async def set_webhook_secret(pool: Any, project_id: str, secret: str, *, keep_previous: bool) -> bool:
    """Set a project's webhook secret (the only writer of the secret columns: secrets are not events). With
    `keep_previous`, the secret it replaces stays valid for the rotation window (its rotation time is now).
    False when there is no such project."""
    async with pool.acquire() as conn:
        try:
            async with conn.cursor() as cur:
                previous = "gitea_webhook_secret" if keep_previous else "NULL"
                # Assignments run left to right on the row as it is so far (MySQL and MariaDB alike): the previous
                # secret and the rotation time read the old secret, which is replaced last. Setting the same secret
                # again changes nothing; updated_at stays the fold's (it is the time of the last project event).
                changed = await cur.execute(
                    "UPDATE projects SET updated_at = updated_at, "
                    "gitea_webhook_secret_previous = "
                    f"IF(gitea_webhook_secret <=> %s, gitea_webhook_secret_previous, {previous}), "
                    "gitea_webhook_secret_rotated_at = IF(gitea_webhook_secret <=> %s, gitea_webhook_secret_rotated_at, "
                    "CURRENT_TIMESTAMP(3)), gitea_webhook_secret = %s WHERE id = %s",
                    [secret, secret, secret, project_id],
                )
                if not changed:
                    await cur.execute("SELECT 1 FROM projects WHERE id = %s", [project_id])
                    found = await cur.fetchone() is not None
                else:
                    found = True
            await conn.commit()
            return found
        except BaseException:
            await conn.rollback()
            raise
