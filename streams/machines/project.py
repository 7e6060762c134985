"""Projects are upserted whole by `project.upserted`; they have no state machine of their own.

The webhook secret columns are not part of the row the fold writes: secrets are not events (they would sit on
topics), they are set with PUT /projects/{id}/webhook-secret straight into the row (db/projects.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.control_events import ProjectUpserted
from app.event_base import Event
from streams.machines import Changed, Outcome, Unchanged, naive_utc


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """A row of `projects`."""

    id: str
    name: str
    k8s_namespace: str
    description: str | None = None
    gitea_repo_id: int | None = None
    gitea_repo_url: str | None = None
    gitea_owner: str | None = None
    gitea_repo_name: str | None = None
    default_branch: str = "main"
    docker_image: str | None = None
    env_vars: dict[str, str] | None = None
    replicas: int = 1
    cpu_limit: str = "500m"
    memory_limit: str = "512Mi"
    mcp_tools: list[str] | None = None
    mcp_permissions: dict[str, Any] | None = None
    status: str = "active"
    created_at: datetime | None = None
    updated_at: datetime | None = None


def apply(row: ProjectRow | None, event: Event) -> Outcome[ProjectRow]:
    if not isinstance(event, ProjectUpserted):
        return Unchanged(f"{event.type} does not change projects")
    at = naive_utc(event.time)
    fields = event.model_dump(include=set(ProjectRow.__dataclass_fields__) - {"id", "created_at", "updated_at"})
    if row is None:
        return Changed(ProjectRow(id=event.project_id, created_at=at, updated_at=at, **fields))
    after = replace(row, **fields)
    if after == row:
        return Unchanged(f"project {row.id} already has these values")
    return Changed(replace(after, updated_at=at))
