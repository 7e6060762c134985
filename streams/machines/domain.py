"""Internal domain events: facts the machines fold that are not contract input events.

The Gitea mapping turns webhook deliveries into the `Gitea*` events; the deployment fan-out
(`task_group.tasks_moved_by`) turns a completed deployment into `TaskDeployed` events; the stale-agent
sweeper emits `AgentStale`. Each carries `id`, `type` and `time` like `app.event_base.Event`, so the fold
and `streams.cloudevents` treat them alike. Derive `id` from the cause (webhook delivery id, the
deployment event id, ...) so that a replay produces the same ids and so the same downstream events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from app.event_base import Event

Environment = Literal["preview", "staging", "production"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GiteaIssueOpened:
    """An issue labelled `aiworker` was opened: a backlog task (task_id = UUIDv5 of repo id and number)."""

    id: str
    time: datetime
    task_id: str
    project_id: str
    title: str
    issue_number: int
    description: str | None = None
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    type: Literal["gitea.issue_opened"] = field(default="gitea.issue_opened", init=False)

    def routing_key(self) -> str:
        return self.task_id


@dataclass(frozen=True, slots=True, kw_only=True)
class GiteaIssueClosed:
    """The task's Gitea issue was closed: the task is cancelled (unless it reached production)."""

    id: str
    time: datetime
    task_id: str
    issue_number: int | None = None
    type: Literal["gitea.issue_closed"] = field(default="gitea.issue_closed", init=False)

    def routing_key(self) -> str:
        return self.task_id


@dataclass(frozen=True, slots=True, kw_only=True)
class GiteaPullRequestOpened:
    """A PR was opened on the task's branch: branch_name, pr_number and pr_url, no state change."""

    id: str
    time: datetime
    task_id: str
    pr_number: int
    branch_name: str | None = None
    pr_url: str | None = None
    type: Literal["gitea.pull_request_opened"] = field(default="gitea.pull_request_opened", init=False)

    def routing_key(self) -> str:
        return self.task_id


@dataclass(frozen=True, slots=True, kw_only=True)
class GiteaPullRequestClosed:
    """The task's PR was closed; unmerged it cancels the task, merged it changes nothing."""

    id: str
    time: datetime
    task_id: str
    merged: bool
    pr_number: int | None = None
    type: Literal["gitea.pull_request_closed"] = field(default="gitea.pull_request_closed", init=False)

    def routing_key(self) -> str:
        return self.task_id


@dataclass(frozen=True, slots=True, kw_only=True)
class GiteaReview:
    """A Gitea review of the task's PR: approved → task approved, rejected → back to in_progress."""

    id: str
    time: datetime
    task_id: str
    approved: bool
    pr_number: int | None = None
    reviewer: str | None = None
    type: Literal["gitea.pull_request_reviewed"] = field(default="gitea.pull_request_reviewed", init=False)

    def routing_key(self) -> str:
        return self.task_id


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDeployed:
    """A deployment holding the task completed: its preview, or its group's staging or production."""

    id: str
    time: datetime
    task_id: str
    environment: Environment
    deployment_id: str
    url: str | None = None
    type: Literal["task.deployed"] = field(default="task.deployed", init=False)

    def routing_key(self) -> str:
        return self.task_id


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStale:
    """The sweeper saw no heartbeat since `last_heartbeat`; the agent goes offline unless one came since."""

    id: str
    time: datetime
    agent_id: str
    last_heartbeat: datetime | None
    type: Literal["agent.stale"] = field(default="agent.stale", init=False)

    def routing_key(self) -> str:
        return self.agent_id


DomainEvent = (
    GiteaIssueOpened | GiteaIssueClosed | GiteaPullRequestOpened | GiteaPullRequestClosed | GiteaReview
    | TaskDeployed | AgentStale
)  # fmt: skip
Input = Event | DomainEvent
"""What a machine's `apply` accepts: a contract event or an internal domain event."""
