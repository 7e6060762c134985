"""Which secrets a Gitea delivery must be signed with, and which project it belongs to.

- On a project's own hook (`POST /webhooks/gitea/{project_id}`) the secrets come from the project named in the
  URL: its `gitea_webhook_secret`, and during a rotation its previous one for GITEA_SECRET_ROTATION_SECONDS;
  `AIWORKER_GITEA_SECRET` only for a project that has no secret of its own. So the secret is known before the
  body is read, and a project's secret is valid on its own URL only.
- On the shared hook (`POST /webhooks/gitea`) only `AIWORKER_GITEA_SECRET` applies; the project is then looked
  up by the payload's repository, after the signature held.
Rows are cached per process for GITEA_SECRET_CACHE_SECONDS, so that a delivery usually costs no query; a
delivery that fails its signature against a cached row (or a cached "no such project") reads the row once
more (at most once a second per project) before it is refused, so a project created or a secret rotated a
moment ago is not refused for the cache's lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from asyncmy.errors import MySQLError

from app.gitea_repository import RepoRef
from app.settings import Settings
from db.pool import describe_error
from db.projects import ProjectHook, RepositoryProject, find_project_hook, find_repository_projects
from webhooks import WebhooksError

log = logging.getLogger(__name__)
MAX_ENTRIES = 10_000
REFRESH_SECONDS = 1.0
"""Least time between two re-reads of one project's row after signature failures."""
LOOKUP_SECONDS = 2.0
V = TypeVar("V")


class ProjectsUnavailableError(WebhooksError):
    """A project row cannot be read (database unreachable, nothing cached): 503."""


class AmbiguousRepositoryError(WebhooksError):
    """Several active projects name the delivery's repository, so the shared hook cannot tell whose it is: 409."""


@dataclass(frozen=True, slots=True)
class Applying:
    """The secrets a delivery may be signed with (current first) and where they come from, for messages."""

    secrets: tuple[str, ...]
    source: str


class _Cache(Generic[V]):
    """Values by key for `seconds`, one lookup in flight per key; the stale value when the database is down."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.clock = clock
        self._values: dict[str, tuple[float, V]] = {}
        self._inflight: dict[str, asyncio.Future[V]] = {}

    def fresh(self, key: str) -> tuple[float, V] | None:
        cached = self._values.get(key)
        return cached if cached is not None and self.clock() - cached[0] < self.seconds else None

    async def get(self, key: str, load: Callable[[], Awaitable[V]], *, refresh: bool = False) -> V:
        cached = None if refresh else self.fresh(key)
        if cached is not None:
            return cached[1]
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await load()
        except ProjectsUnavailableError as exc:
            stale = self._values.get(key)
            if stale is not None:
                future.set_result(stale[1])  # the database is down: the last known row beats refusing a delivery
                return stale[1]
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            del self._inflight[key]
        future.set_result(value)
        if len(self._values) >= MAX_ENTRIES and key not in self._values:
            self._values.pop(next(iter(self._values)))
        self._values[key] = (self.clock(), value)
        return value

    def clear(self) -> None:
        self._values.clear()

    def drop(self, key: str) -> None:
        self._values.pop(key, None)


class ProjectDirectory:
    """The projects as the web sees them: hooks by project id, projects by repository (cached)."""

    def __init__(self, settings: Settings, pool: Callable[[], Any], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self._hooks: _Cache[ProjectHook | None] = _Cache(settings.gitea_secret_cache_seconds, clock)
        self._repos: _Cache[list[RepositoryProject]] = _Cache(settings.gitea_secret_cache_seconds, clock)
        self._refreshed: dict[str, float] = {}

    def shared_secrets(self) -> Applying:
        """The shared hook's secrets: AIWORKER_GITEA_SECRET only."""
        secret = self.settings.gitea_secret.get_secret_value()
        return Applying((secret,), "AIWORKER_GITEA_SECRET") if secret else Applying((), "none")

    def secrets_of(self, hook: ProjectHook | None) -> Applying:
        """A project hook's secrets (current, previous within the rotation window), else AIWORKER_GITEA_SECRET for
        a project without a secret of its own; none for a project that does not exist."""
        if hook is None:
            return Applying((), "none")
        if hook.current:
            secrets = [hook.current]
            window = timedelta(seconds=self.settings.gitea_secret_rotation_seconds)
            if hook.previous and hook.rotated_at is not None and datetime.now(UTC) < hook.rotated_at + window:
                secrets.append(hook.previous)
            return Applying(tuple(secrets), f"project {hook.project_id}")
        shared = self.shared_secrets()
        return Applying(shared.secrets, f"AIWORKER_GITEA_SECRET (project {hook.project_id} has no secret of its own)")

    def cached_hook(self, project_id: str) -> tuple[ProjectHook | None] | None:
        """The cached hook (in a 1-tuple: `(None,)` is a cached "no such project"), or None when not cached."""
        cached = self._hooks.fresh(project_id)
        return None if cached is None else (cached[1],)

    async def hook(self, project_id: str) -> ProjectHook | None:
        return await self._hooks.get(project_id, lambda: self._lookup(find_project_hook(self.pool(), project_id)))

    async def reread_hook(self, project_id: str) -> ProjectHook | bool | None:
        """The project's row read once more after a signature failure, or False when it was re-read less than
        REFRESH_SECONDS ago (then the cached row stands)."""
        now = self.clock()
        last = self._refreshed.get(project_id)
        if last is not None and now - last < REFRESH_SECONDS:
            return False
        if len(self._refreshed) >= MAX_ENTRIES:
            self._refreshed = {k: t for k, t in self._refreshed.items() if now - t < REFRESH_SECONDS}
        self._refreshed[project_id] = now
        return await self._hooks.get(project_id, lambda: self._lookup(find_project_hook(self.pool(), project_id)), refresh=True)

    async def project_of(self, repo: RepoRef) -> str | None:
        """The project of a repository (shared hook), None when no project names it; AmbiguousRepositoryError
        when several active projects (or, with none active, several inactive ones) name it."""
        key = f"{repo.id}\n{repo.key}"
        owner, name = repo.owner or "", repo.name or ""
        found = await self._repos.get(
            key, lambda: self._lookup(find_repository_projects(self.pool(), repo_id=repo.id, owner=owner, name=name))
        )
        active = [p for p in found if p.status == "active"] or found
        if len(active) > 1:
            raise AmbiguousRepositoryError(
                f"projects {', '.join(p.project_id for p in active)} all name repository {repo.describe()}, so the "
                "shared hook cannot tell whose delivery this is: give each project its own repository, or set this "
                "hook on the project's own URL (/webhooks/gitea/<project id>)"
            )
        return active[0].project_id if active else None

    async def projects_naming(self, repo_id: int) -> list[str]:
        """The projects whose row names repository id `repo_id` (cached beside `project_of`'s lookups)."""
        found = await self._repos.get(
            f"{repo_id}\n", lambda: self._lookup(find_repository_projects(self.pool(), repo_id=repo_id, owner="", name=""))
        )
        return [p.project_id for p in found]

    def forget(self, project_id: str | None = None) -> None:
        """Drop the cached row of one project (after its secret changed), or every cached row."""
        if project_id is not None:
            self._hooks.drop(project_id)
            return
        self._hooks.clear()
        self._repos.clear()

    async def _lookup(self, query: Awaitable[V]) -> V:
        try:
            async with asyncio.timeout(LOOKUP_SECONDS):
                return await query
        except (MySQLError, OSError, TimeoutError) as exc:
            log.warning("projects lookup failed (%s): the database does not answer", describe_error(exc))
            raise ProjectsUnavailableError(
                "the project's webhook settings cannot be read because the database does not answer; the delivery "
                "was not accepted: redeliver it from Gitea once the database is back"
            ) from None
