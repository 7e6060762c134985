"""The agent state machine (CONTRACT.md, "State machines": Agent).

initializing → idle ⇄ busy by heartbeats (from any status, offline and error included); task.started
→ busy; task.ready_for_review of its current task → idle (tasks_completed + 1); agent.error → error;
agent.stopped, or no heartbeat received for `OFFLINE_AFTER_SECONDS` → offline; agent.registered of a known
agent → initializing again with restarts_count + 1. Every event of an unregistered agent is refused.
Timestamps are event times (the agent's clock), except `last_seen_at`: when the newest heartbeat was received, by
the ingest clock (set by the fold, streams/fold_transaction.py). Staleness compares `last_seen_at` with the sweeper's "now",
the ingest clock too (streams/sweeper.py), never the agent's clock with the worker's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from app.agent_events import AgentError, AgentHeartbeat, AgentRegistered, AgentStopped, TaskReadyForReview, TaskStarted
from app.event_base import AgentEvent
from streams.machines import Changed, Outcome, Refused, Transition, Unchanged, naive_utc
from streams.machines.domain import AgentStale, Input

STATES = ("initializing", "idle", "busy", "error", "offline")
RECLAIMABLE = ("offline", "error")
"""The statuses of an agent whose in-progress task another agent may take over (task.started: a reclaim)."""
OFFLINE_AFTER_SECONDS = 60
STALE_NAMESPACE = uuid.UUID("3d0c2f7e-8b1a-4c55-9e0f-7a6b5c4d3e21")


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
    last_seen_at: datetime | None = None
    """When its newest heartbeat or registration was received (ingest clock: the record's broker timestamp)."""
    last_seen_partition: int | None = None
    """The agent.events partition that heartbeat arrived on (the sweeper reads that partition's clock)."""


def _change(row: AgentRow, at: datetime, why_same: str, **changes: Any) -> Outcome[AgentRow]:
    """The row with `changes`; a Transition when the status moves; Unchanged when nothing differs."""
    after = replace(row, **changes)
    if after == row:
        return Unchanged(why_same)
    moved = () if after.status == row.status else (Transition("agent", row.id, row.status, after.status),)
    return Changed(replace(after, updated_at=at), moved)


def apply(row: AgentRow | None, event: Input, granularity: float = 0.0) -> Outcome[AgentRow]:
    """The agent after `event`, or why nothing changes. `granularity` (seconds): a heartbeat that keeps the status and
    the task and moves `last_heartbeat` forward by less than it changes nothing (`within_granularity`)."""
    at = naive_utc(event.time)
    if isinstance(event, AgentRegistered):
        return _registered(row, event, at)
    if row is None:
        if isinstance(event, AgentEvent | AgentStale):
            return Refused(f"{event.type} names agent {event.agent_id!r}, which has not registered; register first")
        return Unchanged(f"{event.type} does not change agents")
    if isinstance(event, AgentHeartbeat):
        if row.last_heartbeat is not None and at < row.last_heartbeat:
            return Unchanged(f"heartbeat of agent {row.id} is older than its last one ({row.last_heartbeat})")
        task_id = (event.current_task_id or row.current_task_id) if event.status == "busy" else None
        if within_granularity(row, event.status, task_id, at, granularity):
            return Unchanged(f"heartbeat of agent {row.id} within {granularity:g} s of its stored one ({row.last_heartbeat})")
        why = f"agent {row.id} had this heartbeat already"
        return _change(row, at, why, status=event.status, current_task_id=task_id, last_heartbeat=at)
    if isinstance(event, TaskStarted):
        why = f"agent {row.id} is busy with task {event.task_id} already"
        return _change(row, at, why, status="busy", current_task_id=event.task_id)
    if isinstance(event, TaskReadyForReview):
        if row.current_task_id != event.task_id:
            return Unchanged(f"agent {row.id} is not working on task {event.task_id}")
        done = row.tasks_completed + 1
        return _change(
            row, at, f"agent {row.id} has these values already", status="idle", current_task_id=None, tasks_completed=done
        )
    if isinstance(event, AgentError):
        return _change(row, at, f"agent {row.id} reported this error already", status="error", error_message=event.message)
    if isinstance(event, AgentStopped):
        return _change(row, at, f"agent {row.id} is offline already", status="offline", current_task_id=None)
    if isinstance(event, AgentStale):
        if row.status == "offline":
            return Unchanged(f"agent {row.id} is offline already")
        if row.last_heartbeat is not None and (event.last_heartbeat is None or row.last_heartbeat > event.last_heartbeat):
            return Unchanged(f"agent {row.id} sent a heartbeat at {row.last_heartbeat}, after the sweeper looked")
        return _change(row, at, f"agent {row.id} has these values already", status="offline")
    return Unchanged(f"{event.type} does not change agents")


def within_granularity(row: AgentRow, status: str, task_id: str | None, at: datetime, granularity: float) -> bool:
    """Whether a heartbeat at `at` with this status and task need not rewrite `row`: nothing but the time would change,
    and the time by less than `granularity` seconds (so the stored `last_heartbeat` is at most that much behind)."""
    last = row.last_heartbeat
    if granularity <= 0 or last is None or status != row.status or task_id != row.current_task_id:
        return False
    return timedelta(0) <= at - last < timedelta(seconds=granularity)


def _registered(row: AgentRow | None, event: AgentRegistered, at: datetime) -> Outcome[AgentRow]:
    fields: dict[str, Any] = {
        "pod_name": event.pod_name,
        "k8s_namespace": event.k8s_namespace,
        "node_name": event.node_name,
        "capabilities": list(event.capabilities),
        "max_concurrent_tasks": event.max_concurrent_tasks,
    }
    if row is None:
        created = AgentRow(id=event.agent_id, created_at=at, updated_at=at, last_heartbeat=at, **fields)
        return Changed(created, (Transition("agent", created.id, None, created.status),))
    if row.status == "initializing" and row.last_heartbeat == at and replace(row, **fields) == row:
        return Unchanged(f"agent {row.id} registered at {at} already")
    restarts = row.restarts_count + 1
    again = {"status": "initializing", "current_task_id": None, "last_heartbeat": at, "restarts_count": restarts}
    return _change(row, at, f"agent {row.id} has these values already", **again, **fields)


def is_stale(row: AgentRow, now: datetime, timeout_seconds: int = OFFLINE_AFTER_SECONDS) -> bool:
    """True when the agent is not offline and its last heartbeat was received `timeout_seconds` or more before `now`
    (both by the ingest clock; a row without a received time falls back to its heartbeat's own time)."""
    if row.status == "offline":
        return False
    last = row.last_seen_at or row.last_heartbeat or row.updated_at or row.created_at
    return last is None or naive_utc(now) - last >= timedelta(seconds=timeout_seconds)


def stale_event(row: AgentRow, now: datetime) -> AgentStale:
    """The sweeper's event for `row`; its id derives from the heartbeat it saw, so it cannot fire twice."""
    seen = row.last_heartbeat.isoformat() if row.last_heartbeat else "never"
    event_id = str(uuid.uuid5(STALE_NAMESPACE, f"{row.id}|{seen}"))
    return AgentStale(id=event_id, time=now, agent_id=row.id, last_heartbeat=row.last_heartbeat)


def mark_offline(row: AgentRow, now: datetime, timeout_seconds: int = OFFLINE_AFTER_SECONDS) -> Outcome[AgentRow]:
    """The sweeper's step: offline when no heartbeat for `timeout_seconds`; Unchanged when not stale or offline."""
    if row.status == "offline":
        return Unchanged(f"agent {row.id} is offline already")
    if not is_stale(row, now, timeout_seconds):
        return Unchanged(f"agent {row.id} sent a heartbeat at {row.last_heartbeat}, less than {timeout_seconds} s ago")
    return apply(row, stale_event(row, now))
