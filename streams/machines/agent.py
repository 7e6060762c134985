"""The agent state machine (CONTRACT.md, "State machines": Agent)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from app.events import AgentRegistered, Event, TaskStarted
from streams.machines import Changed, Outcome, Refused, Transition, Unchanged, naive_utc

STATES = ("initializing", "idle", "busy", "error", "offline")


@dataclass(frozen=True, slots=True)
class AgentRow:
    """A row of `agents`."""

    id: str
    pod_name: str
    k8s_namespace: str = "agents"
    node_name: str | None = None
    status: str = "initializing"
    current_task_id: str | None = None
    capabilities: list[str] | None = None
    max_concurrent_tasks: int = 1
    last_heartbeat: datetime | None = None
    error_message: str | None = None
    restarts_count: int = 0
    tasks_completed: int = 0
    total_runtime_minutes: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


def apply(row: AgentRow | None, event: Event) -> Outcome[AgentRow]:
    """The agent after `event`, or why nothing changes."""
    at = naive_utc(event.time)
    if isinstance(event, AgentRegistered):
        fields = {
            "pod_name": event.pod_name,
            "k8s_namespace": event.k8s_namespace,
            "node_name": event.node_name,
            "capabilities": list(event.capabilities),
            "max_concurrent_tasks": event.max_concurrent_tasks,
        }
        if row is None:
            created = AgentRow(id=event.agent_id, created_at=at, updated_at=at, last_heartbeat=at, **fields)  # type: ignore[arg-type]
            return Changed(created, (Transition("agent", created.id, None, created.status),))
        after = replace(row, status="initializing", current_task_id=None, updated_at=at, last_heartbeat=at,
                        restarts_count=row.restarts_count + 1, **fields)  # type: ignore[arg-type]  # fmt: skip
        moved = () if row.status == "initializing" else (Transition("agent", row.id, row.status, "initializing"),)
        return Changed(after, moved)
    if row is None:
        return Refused(f"{event.type} names agent {getattr(event, 'agent_id', None)!r}, which has not registered")
    if isinstance(event, TaskStarted):
        if row.status == "busy" and row.current_task_id == event.task_id:
            return Unchanged(f"agent {row.id} is already busy with task {event.task_id}")
        after = replace(row, status="busy", current_task_id=event.task_id, updated_at=at)
        moved = () if row.status == "busy" else (Transition("agent", row.id, row.status, "busy"),)
        return Changed(after, moved)
    return Unchanged(f"{event.type} does not change agents")
