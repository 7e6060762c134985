"""The deployment state machine (CONTRACT.md, "State machines": Deployment).

pending → in_progress → completed | failed; completed → rolled_back. The deploy pipeline may skip
steps: `deployment.started`, `succeeded` or `failed` of a deployment never requested creates it
from the event, and pending may go straight to completed or failed. Timing: started_at is the
first start, completed_at the success or failure, duration_seconds the whole seconds between them
(NULL without a start); a rollback keeps them. A retry is a new deployment id: a failed or
rolled-back deployment never starts again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.control_events import DeploymentEvent
from streams.machines import Changed, Outcome, Refused, Transition, Unchanged, naive_utc
from streams.machines.domain import Input

STATES = ("pending", "in_progress", "completed", "failed", "rolled_back")
TARGET = {
    "deployment.requested": "pending",
    "deployment.started": "in_progress",
    "deployment.succeeded": "completed",
    "deployment.failed": "failed",
    "deployment.rolled_back": "rolled_back",
}
# The states each target may be reached from (a repeat, target == state, is Unchanged before this).
ALLOWED_FROM = {
    "pending": (),
    "in_progress": ("pending",),
    "completed": ("pending", "in_progress"),
    "failed": ("pending", "in_progress"),
    "rolled_back": ("completed",),
}
# Events that may create the row when the deployment is unknown.
CREATES = ("deployment.requested", "deployment.started", "deployment.succeeded", "deployment.failed")
DESCRIPTIVE = (
    "task_group_id", "branch", "commit_hash", "k8s_namespace", "k8s_deployment_name", "image_tag", "url",
    "error_message", "logs", "triggered_by",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    """A row of `deployments` (the table has no updated_at)."""

    id: str
    project_id: str
    environment: str
    task_group_id: str | None = None
    deployment_type: str = "manual"
    branch: str | None = None
    commit_hash: str | None = None
    k8s_namespace: str | None = None
    k8s_deployment_name: str | None = None
    image_tag: str | None = None
    status: str = "pending"
    url: str | None = None
    error_message: str | None = None
    logs: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: int | None = None
    triggered_by: str | None = None
    created_at: datetime | None = None


def duration_seconds(started_at: datetime | None, completed_at: datetime) -> int | None:
    """Whole seconds (never negative) from started_at to completed_at; None without a start."""
    if started_at is None:
        return None
    return max(0, int((completed_at - started_at).total_seconds()))


def _timing(row: DeploymentRow, to: str, at: datetime) -> dict[str, Any]:
    if to == "in_progress":
        return {"started_at": row.started_at or at}
    if to in ("completed", "failed"):
        return {"completed_at": at, "duration_seconds": duration_seconds(row.started_at, at)}
    return {}


def _given(event: DeploymentEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in DESCRIPTIVE if getattr(event, name) is not None}


def create(event: DeploymentEvent) -> DeploymentRow:
    """The row of a deployment first seen in `event`, in the event's target state."""
    at = naive_utc(event.time)
    bare = DeploymentRow(
        id=event.deployment_id, project_id=event.project_id, environment=event.environment,
        deployment_type=event.deployment_type, created_at=at, **_given(event),
    )  # fmt: skip
    to = TARGET[event.type]
    return replace(bare, status=to, **_timing(bare, to, at))


def apply(row: DeploymentRow | None, event: Input) -> Outcome[DeploymentRow]:
    """The deployment after `event`, or why nothing changes."""
    if not isinstance(event, DeploymentEvent):
        return Unchanged(f"{event.type} does not change deployments")
    to = TARGET[event.type]
    if row is None:
        if event.type not in CREATES:
            return Refused(f"{event.type} names deployment {event.deployment_id!r}, which does not exist")
        created = create(event)
        return Changed(created, (Transition("deployment", created.id, None, created.status),))
    if (event.environment, event.project_id) != (row.environment, row.project_id):
        return Refused(
            f"deployment {row.id} is {row.environment} of project {row.project_id}; "
            f"{event.type} says {event.environment} of project {event.project_id}"
        )
    if row.status == to:
        return Unchanged(f"deployment {row.id} is {to} already")
    if row.status not in ALLOWED_FROM[to]:
        if not ALLOWED_FROM[to]:
            return Refused(f"deployment {row.id} is {row.status} already; {event.type} only creates deployments")
        need = " or ".join(ALLOWED_FROM[to])
        return Refused(f"deployment {row.id} is {row.status}; {event.type} needs a {need} deployment")
    at = naive_utc(event.time)
    after = replace(row, status=to, **_given(event), **_timing(row, to, at))
    return Changed(after, (Transition("deployment", row.id, row.status, to),))
