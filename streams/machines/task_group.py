"""The task group state machine (CONTRACT.md, "State machines": Task group), and the task fan-out.

pending → staging (its staging deployment succeeded) → production (its production deployment
succeeded) → rolled_back (that production deployment rolled back). A rolled-back group may be
deployed again (→ staging or → production). A deployment of an earlier stage than the group's
(staging after production) changes nothing; skipping staging (pending → production) is refused.

`apply` receives the deployment events of deployments whose task_group_id is this group (the
caller keys them by the deployment row's task_group_id, the event may omit it) and only once the
deployment machine accepted the event. `tasks_moved_by` says which tasks a completed deployment
carries along: apply each returned `TaskDeployed` to its task with `task.apply`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from app.control_events import DeploymentEvent, TaskGroupCreated
from streams.machines import Changed, Outcome, Refused, Transition, Unchanged, naive_utc
from streams.machines.deployment import DeploymentRow
from streams.machines.domain import Input, TaskDeployed

STATES = ("pending", "staging", "production", "rolled_back")
# (event type, environment) → (target, states it may come from, states where it changes nothing).
MOVES: dict[tuple[str, str], tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    ("deployment.succeeded", "staging"): ("staging", ("pending", "rolled_back"), ("staging", "production")),
    ("deployment.succeeded", "production"): ("production", ("staging", "rolled_back"), ("production",)),
    ("deployment.rolled_back", "production"): ("rolled_back", ("production",), ("rolled_back",)),
}
TASK_TARGET = {"preview": "ready_to_test", "staging": "staging", "production": "production"}
"""The task state a completed deployment of each environment moves its tasks to."""


@dataclass(frozen=True, slots=True)
class TaskGroupRow:
    """A row of `task_groups`."""

    id: str
    project_id: str
    task_ids: list[str] = field(default_factory=list)
    staging_branch: str | None = None
    staging_pr_number: int | None = None
    staging_pr_url: str | None = None
    staging_deployed_at: datetime | None = None
    production_deployed_at: datetime | None = None
    production_rollback_available: bool = True
    status: str = "pending"
    created_by: str | None = None
    notes: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


def create(event: TaskGroupCreated) -> TaskGroupRow:
    at = naive_utc(event.time)
    return TaskGroupRow(
        id=event.task_group_id or event.id, project_id=event.project_id, task_ids=list(event.task_ids),
        staging_branch=event.staging_branch, created_by=event.created_by, notes=event.notes,
        created_at=at, updated_at=at,
    )  # fmt: skip


def apply(row: TaskGroupRow | None, event: Input) -> Outcome[TaskGroupRow]:
    """The group after `event`, or why nothing changes."""
    if isinstance(event, TaskGroupCreated):
        if row is not None:
            return Unchanged(f"task group {row.id} exists already")
        created = create(event)
        return Changed(created, (Transition("task_group", created.id, None, created.status),))
    if not isinstance(event, DeploymentEvent):
        return Unchanged(f"{event.type} does not change task groups")
    if row is None:
        return Refused(f"{event.type} names task group {event.task_group_id!r}, which does not exist")
    if event.task_group_id is not None and event.task_group_id != row.id:
        return Unchanged(f"{event.type} is for task group {event.task_group_id}, not {row.id}")
    move = MOVES.get((event.type, event.environment))
    if move is None:
        return Unchanged(f"{event.type} of a {event.environment} deployment does not change task groups")
    to, sources, settled = move
    if row.status in settled:
        return Unchanged(f"task group {row.id} is {row.status} already")
    if row.status not in sources:
        need = " or ".join(sources)
        return Refused(f"task group {row.id} is {row.status}; {event.type} ({event.environment}) needs a {need} group")
    at = naive_utc(event.time)
    if to == "staging":
        after = replace(row, status=to, staging_deployed_at=at, updated_at=at)
    elif to == "production":
        after = replace(row, status=to, production_deployed_at=at, production_rollback_available=True, updated_at=at)
    else:
        after = replace(row, status=to, production_rollback_available=False, updated_at=at)
    return Changed(after, (Transition("task_group", row.id, row.status, to),))


def tasks_moved_by(deployment: DeploymentRow, event: DeploymentEvent, group: TaskGroupRow | None) -> tuple[TaskDeployed, ...]:
    """The task events that follow from `event`, given the deployment row after it and the row's group.

    Only a `deployment.succeeded` that left the deployment completed moves tasks: a preview moves the
    event's task_id (deployments have no task column; no task_id, no move), staging and production
    every task of `group` (which must be the deployment's task group). Each `TaskDeployed` has the
    cause's id and time, so the transitions it makes keep ids derived from the deployment event.
    """
    if event.type != "deployment.succeeded" or deployment.status != "completed":
        return ()
    if deployment.environment == "preview":
        task_ids = [event.task_id] if event.task_id is not None else []
    elif group is None or group.id != deployment.task_group_id:
        return ()
    else:
        task_ids = list(dict.fromkeys(group.task_ids))
    return tuple(
        TaskDeployed(
            id=event.id,
            time=event.time,
            task_id=task_id,
            environment=event.environment,
            deployment_id=deployment.id,
            url=deployment.url,
        )
        for task_id in task_ids
    )
