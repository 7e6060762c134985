"""The projects queries of the web process: a repository's webhook secrets (current, previous, rotation time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_COLUMNS = "id, gitea_webhook_secret, gitea_webhook_secret_previous, gitea_webhook_secret_rotated_at"
# An active project wins over a paused or archived one that names the same repository.
_ORDER = "ORDER BY status = 'active' DESC, updated_at DESC LIMIT 1"


@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    """The webhook secrets of the project a repository belongs to; `rotated_at` is UTC."""

    project_id: str
    current: str | None
    previous: str | None
    rotated_at: datetime | None


def _row(row: Any) -> WebhookSecrets:
    project_id, current, previous, rotated_at = row
    if isinstance(rotated_at, datetime) and rotated_at.tzinfo is None:
        rotated_at = rotated_at.replace(tzinfo=UTC)  # the pool's connections use time_zone '+00:00'
    return WebhookSecrets(str(project_id), current or None, previous or None, rotated_at)


async def find_webhook_secrets(pool: Any, *, repo_id: int | None, owner: str, name: str) -> WebhookSecrets | None:
    """The project of a Gitea repository, found by repository id, else by owner/name; None when there is none."""
    async with pool.acquire() as conn:
        try:
            async with conn.cursor() as cur:
                if repo_id is not None:
                    await cur.execute(f"SELECT {_COLUMNS} FROM projects WHERE gitea_repo_id = %s {_ORDER}", [repo_id])
                    row = await cur.fetchone()
                    if row is not None:
                        return _row(row)
                if owner and name:
                    await cur.execute(
                        f"SELECT {_COLUMNS} FROM projects WHERE gitea_owner = %s AND gitea_repo_name = %s {_ORDER}",
                        [owner, name],
                    )
                    row = await cur.fetchone()
                    if row is not None:
                        return _row(row)
                return None
        finally:
            await conn.rollback()  # read-only; ends the snapshot so the next lookup sees new rows
