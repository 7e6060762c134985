"""The task state machine (CONTRACT.md, "State machines": Task)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from app.events import Event, TaskCreated, TaskStarted
from streams.machines import Changed, Outcome, Refused, Transition, Unchanged, naive_utc

STATES = (
    "backlog", "in_progress", "needs_input", "ready_to_test", "approved", "staging", "production", "cancelled",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A row of `tasks` (every column the fold writes)."""

    id: str
    project_id: str
    title: str
    description: str | None = None
    priority: str = "medium"
    state: str = "backlog"
    assigned_agent_id: str | None = None
    assigned_at: datetime | None = None
    branch_name: str | None = None
    pr_number: int | None = None
    pr_url: str | None = None
    preview_namespace: str | None = None
    preview_url: str | None = None
    preview_deployed_at: datetime | None = None
    estimated_complexity: str = "medium"
    actual_duration_minutes: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    deployed_staging_at: datetime | None = None
    deployed_production_at: datetime | None = None
    gitea_issue_number: int | None = None


def _move(row: TaskRow, to: str, at: datetime, **changes: object) -> Changed[TaskRow]:
    after = replace(row, state=to, updated_at=at, **changes)  # type: ignore[arg-type]
    return Changed(after, (Transition("task", row.id, row.state, to),))


def create(event: TaskCreated) -> TaskRow:
    at = naive_utc(event.time)
    return TaskRow(
        id=event.task_id or event.id,
        project_id=event.project_id,
        title=event.title,
        description=event.description,
        priority=event.priority,
        estimated_complexity=event.estimated_complexity,
        created_at=at,
        updated_at=at,
    )


def apply(row: TaskRow | None, event: Event) -> Outcome[TaskRow]:
    """The task after `event`, or why nothing changes."""
    at = naive_utc(event.time)
    if isinstance(event, TaskCreated):
        if row is not None:
            return Unchanged(f"task {row.id} exists already")
        created = create(event)
        return Changed(created, (Transition("task", created.id, None, created.state),))
    if row is None:
        return Refused(f"{event.type} names task {getattr(event, 'task_id', None)!r}, which does not exist")
    if isinstance(event, TaskStarted):
        if row.state == "in_progress" and row.assigned_agent_id == event.agent_id:
            return Unchanged(f"task {row.id} is already in progress with agent {event.agent_id}")
        if row.state != "backlog":
            return Refused(f"task {row.id} is {row.state}; task.started needs a backlog task")
        return _move(
            row, "in_progress", at, assigned_agent_id=event.agent_id, assigned_at=at, started_at=row.started_at or at
        )
    return Unchanged(f"{event.type} does not change tasks")
