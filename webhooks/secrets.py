"""Which webhook secrets apply to a repository: its project's (current, and previous during a rotation), else
AIWORKER_GITEA_SECRET. Project rows are cached briefly per process so that a delivery costs no query."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncmy.errors import MySQLError

from app.settings import Settings
from db.projects import WebhookSecrets, find_webhook_secrets
from webhooks import WebhooksError

MAX_ENTRIES = 10_000


class SecretsUnavailableError(WebhooksError):
    """The project's secret cannot be looked up (database unreachable, nothing cached): 503."""


@dataclass(frozen=True, slots=True)
class Repo:
    """The repository a delivery names (`repository` of the payload)."""

    repo_id: int | None
    owner: str
    name: str
    full_name: str


@dataclass(frozen=True, slots=True)
class Applying:
    """The secrets a delivery may be signed with (current first) and where they come from, for messages."""

    secrets: tuple[str, ...]
    source: str


class SecretResolver:
    def __init__(self, settings: Settings, pool: Callable[[], Any], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self._cache: dict[tuple[int | None, str], tuple[float, WebhookSecrets | None]] = {}
        self._inflight: dict[tuple[int | None, str], asyncio.Future[WebhookSecrets | None]] = {}

    async def resolve(self, repo: Repo) -> Applying:
        known = self.resolve_cached(repo)
        if known is not None:
            return known
        return self._applying(await self._project(repo))

    def resolve_cached(self, repo: Repo) -> Applying | None:
        """What `resolve` answers when it needs no query (the usual case, without a coroutine to run), else None."""
        if repo.repo_id is None and not repo.full_name:
            return self._applying(None)
        cached = self._cache.get((repo.repo_id, repo.full_name.lower()))
        if cached is not None and self.clock() - cached[0] < self.settings.gitea_secret_cache_seconds:
            return self._applying(cached[1])
        return None

    def _applying(self, project: WebhookSecrets | None) -> Applying:
        if project is not None and project.current:
            secrets = [project.current]
            window = timedelta(seconds=self.settings.gitea_secret_rotation_seconds)
            rotated = project.rotated_at
            if project.previous and rotated is not None and datetime.now(UTC) < rotated + window:
                secrets.append(project.previous)
            return Applying(tuple(secrets), f"project {project.project_id}")
        if self.settings.gitea_secret:
            return Applying((self.settings.gitea_secret.get_secret_value(),), "AIWORKER_GITEA_SECRET")
        return Applying((), "none")

    def forget(self) -> None:
        """Drop every cached project row (after a secret changed, in tests)."""
        self._cache.clear()

    async def _project(self, repo: Repo) -> WebhookSecrets | None:
        key = (repo.repo_id, repo.full_name.lower())
        cached = self._cache.get(key)
        now = self.clock()
        if cached is not None and now - cached[0] < self.settings.gitea_secret_cache_seconds:
            return cached[1]
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[WebhookSecrets | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            found = await self._query(repo, cached)
        except SecretsUnavailableError as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            del self._inflight[key]
        future.set_result(found)
        if len(self._cache) >= MAX_ENTRIES:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (now, found)
        return found

    async def _query(self, repo: Repo, stale: tuple[float, WebhookSecrets | None] | None) -> WebhookSecrets | None:
        owner, _, name = repo.full_name.partition("/")
        try:
            async with asyncio.timeout(2.0):
                return await find_webhook_secrets(
                    self.pool(), repo_id=repo.repo_id, owner=repo.owner or owner, name=repo.name or name
                )
        except (MySQLError, OSError, TimeoutError) as exc:
            if stale is not None:
                return stale[1]  # the database is down: the last known row is better than refusing a delivery
            raise SecretsUnavailableError(
                f"cannot look up the webhook secret of {repo.full_name or repo.repo_id}: the database does not answer "
                f"({exc!r}); the delivery was not accepted, redeliver it from Gitea once the database is back"
            ) from exc
