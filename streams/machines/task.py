"""The task state machine (CONTRACT.md, "State machines": Task).

backlog → in_progress → needs_input ⇄ in_progress → ready_to_test → approved → staging → production;
ready_to_test → in_progress on a rejected review; anything but production → cancelled.

An agent speaks only for its own work: which agent may start, reclaim, ask or submit a task is
streams/machines/task_assignee.py's (a take-over of a task another live agent holds is refused, of one an offline or
failed agent holds is a reclaim: assignee and assigned_at change, state and started_at stay).

Where the contract is silent: a question asked while needs_input changes nothing (the question row
is new); an answer never refuses (it only resumes a needs_input task with nothing pending); a PR opened records
branch/PR columns in any state; a merged PR changes nothing; a closed PR or issue that is not the
task's changes nothing, and a closed issue does not cancel approved/staging/production work (Gitea
closes issues itself on merge). Deployments reach tasks as `TaskDeployed` (task_group.tasks_moved_by):
a preview moves in_progress → ready_to_test and only records preview columns in later states (and
needs_input); a deployment of a cancelled task, or of a stage the task passed already, changes nothing.

Context the caller passes (a TypeError when it is needed and missing; ignored otherwise):
- `pending_questions` with `task.question_answered`: the task's questions still pending once this answer is
  recorded (see `question.py`).
- `assignee_status` with `task.started` on a task another agent holds (`task_assignee.holder_to_ask`): that
  agent's status (task_assignee.py says why it is the caller's to give).
Every timestamp is the event's time (`naive_utc(event.time)`), so a replay writes identical rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.agent_events import TaskQuestionAsked, TaskReadyForReview, TaskStarted
from app.control_events import TaskApproved, TaskCancelled, TaskCreated, TaskQuestionAnswered
from streams.machines import Changed, Outcome, Refused, Transition, Unchanged, naive_utc
from streams.machines.domain import (
    GiteaIssueClosed,
    GiteaIssueOpened,
    GiteaPullRequestClosed,
    GiteaPullRequestOpened,
    GiteaReview,
    Input,
    TaskDeployed,
)
from streams.machines.task_assignee import take_over, wrong_agent

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


_TASK_EVENTS = (
    TaskStarted, TaskQuestionAsked, TaskQuestionAnswered, TaskReadyForReview, TaskApproved, TaskCancelled, GiteaReview,
    GiteaIssueClosed, GiteaPullRequestOpened, GiteaPullRequestClosed, TaskDeployed,
)  # fmt: skip


def _move(row: TaskRow, to: str, at: datetime, **changes: Any) -> Changed[TaskRow]:
    after = replace(row, state=to, updated_at=at, **changes)
    return Changed(after, (Transition("task", row.id, row.state, to),))


def _set(row: TaskRow, at: datetime, why_same: str, **changes: Any) -> Outcome[TaskRow]:
    """Column changes without a state change; Unchanged when every value is already there."""
    after = replace(row, **changes)
    if after == row:
        return Unchanged(why_same)
    return Changed(replace(after, updated_at=at))


def _needs(row: TaskRow, event: Input, need: str) -> Refused:
    return Refused(f"task {row.id} is {row.state}; {event.type} needs {need} task")


def create(event: TaskCreated | GiteaIssueOpened) -> TaskRow:
    at = naive_utc(event.time)
    if isinstance(event, GiteaIssueOpened):
        return TaskRow(
            id=event.task_id, project_id=event.project_id, title=event.title, description=event.description,
            priority=event.priority, gitea_issue_number=event.issue_number, created_at=at, updated_at=at,
        )  # fmt: skip
    return TaskRow(
        id=event.task_id or event.id, project_id=event.project_id, title=event.title, description=event.description,
        priority=event.priority, estimated_complexity=event.estimated_complexity, created_at=at, updated_at=at,
    )  # fmt: skip


def duration_minutes(started_at: datetime | None, completed_at: datetime) -> int | None:
    """Whole minutes (rounded down, never negative) from started_at to completed_at."""
    if started_at is None:
        return None
    return max(0, int((completed_at - started_at).total_seconds()) // 60)


def apply(
    row: TaskRow | None, event: Input, *, pending_questions: int | None = None, assignee_status: str | None = None
) -> Outcome[TaskRow]:
    """The task after `event`, or why nothing changes (see the module docstring for the context arguments)."""
    if isinstance(event, TaskCreated | GiteaIssueOpened):
        if row is not None:
            return Unchanged(f"task {row.id} exists already")
        created = create(event)
        return Changed(created, (Transition("task", created.id, None, created.state),))
    if isinstance(event, TaskQuestionAnswered) and pending_questions is None:
        raise TypeError("task.apply needs pending_questions for task.question_answered")
    if row is None:
        if not isinstance(event, _TASK_EVENTS):
            return Unchanged(f"{event.type} does not change tasks")
        return Refused(f"{event.type} names task {getattr(event, 'task_id', None)!r}, which does not exist")
    at = naive_utc(event.time)
    if isinstance(event, TaskStarted):
        return _started(row, event, at, assignee_status)
    if isinstance(event, TaskQuestionAsked):
        return _question_asked(row, event)
    if isinstance(event, TaskQuestionAnswered):
        return _question_answered(row, at, pending_questions or 0)
    if isinstance(event, TaskReadyForReview):
        return _ready_for_review(row, event, at)
    if isinstance(event, TaskApproved) or (isinstance(event, GiteaReview) and event.approved):
        return _approved(row, event, at)
    if isinstance(event, GiteaReview):
        return _rejected(row, event, at)
    if isinstance(event, TaskCancelled | GiteaIssueClosed | GiteaPullRequestClosed):
        return _cancelled(row, event, at)
    if isinstance(event, GiteaPullRequestOpened):
        changes = {"branch_name": event.branch_name or row.branch_name, "pr_url": event.pr_url or row.pr_url}
        return _set(row, at, f"task {row.id} already has PR #{event.pr_number}", pr_number=event.pr_number, **changes)
    if isinstance(event, TaskDeployed):
        return _deployed(row, event, at)
    return Unchanged(f"{event.type} does not change tasks")


def _started(row: TaskRow, event: TaskStarted, at: datetime, holder_status: str | None) -> Outcome[TaskRow]:
    if row.state == "backlog":
        assigned = {"assigned_agent_id": event.agent_id, "assigned_at": at, "started_at": row.started_at or at}
        return _move(row, "in_progress", at, **assigned)
    if row.state not in ("in_progress", "needs_input"):
        return _needs(row, event, "a backlog")
    reclaim = take_over(row, event, holder_status)
    if isinstance(reclaim, Unchanged | Refused):
        return reclaim
    # Taken over (a reclaim, or nobody held it): the new agent holds the task in the state it was in; started_at is kept.
    after = replace(row, assigned_agent_id=event.agent_id, assigned_at=at, updated_at=at)
    return Changed(after, (Transition("task", row.id, row.state, row.state, reclaim),))


def _question_asked(row: TaskRow, event: TaskQuestionAsked) -> Outcome[TaskRow]:
    if (wrong := wrong_agent(row, event)) is not None:
        return wrong
    if row.state == "needs_input":
        # One more question while the task waits already: the question row is new, the task stays.
        return Unchanged(f"task {row.id} is waiting for input already")
    if row.state != "in_progress":
        return _needs(row, event, "an in_progress")
    return _move(row, "needs_input", naive_utc(event.time))


def _question_answered(row: TaskRow, at: datetime, pending: int) -> Outcome[TaskRow]:
    # Answers are recorded on the question row whatever the task's state; the task only resumes
    # from needs_input once nothing is pending, so an answer never refuses the task.
    if row.state != "needs_input":
        return Unchanged(f"task {row.id} is {row.state}; an answer only resumes a needs_input task")
    if pending > 0:
        return Unchanged(f"task {row.id} still has {pending} pending question(s)")
    return _move(row, "in_progress", at)


def _ready_for_review(row: TaskRow, event: TaskReadyForReview, at: datetime) -> Outcome[TaskRow]:
    if (wrong := wrong_agent(row, event)) is not None:
        return wrong
    given = {
        "branch_name": event.branch_name, "pr_number": event.pr_number, "pr_url": event.pr_url,
        "preview_namespace": event.preview_namespace, "preview_url": event.preview_url,
    }  # fmt: skip
    changes = {name: value for name, value in given.items() if value is not None}
    if row.state == "in_progress":
        return _move(row, "ready_to_test", at, **changes)
    if row.state == "ready_to_test":
        return _set(row, at, f"task {row.id} is ready to test with these values already", **changes)
    if row.state == "needs_input":
        return Refused(f"task {row.id} is needs_input; answer its pending questions before {event.type}")
    return _needs(row, event, "an in_progress")


def _approved(row: TaskRow, event: TaskApproved | GiteaReview, at: datetime) -> Outcome[TaskRow]:
    if row.state == "approved":
        return Unchanged(f"task {row.id} is approved already")
    if row.state != "ready_to_test":
        return _needs(row, event, "a ready_to_test")
    return _move(row, "approved", at)


def _rejected(row: TaskRow, event: GiteaReview, at: datetime) -> Outcome[TaskRow]:
    if row.state == "in_progress":
        return Unchanged(f"task {row.id} is in progress already")
    if row.state != "ready_to_test":
        return Refused(f"task {row.id} is {row.state}; a rejected review sends back only a ready_to_test task")
    return _move(row, "in_progress", at)


def _cancelled(row: TaskRow, event: TaskCancelled | GiteaIssueClosed | GiteaPullRequestClosed, at: datetime) -> Outcome[TaskRow]:
    if isinstance(event, GiteaPullRequestClosed):
        if event.merged:
            return Unchanged(f"PR of task {row.id} merged; deployments move the task on")
        if event.pr_number is not None and row.pr_number is not None and event.pr_number != row.pr_number:
            return Unchanged(f"PR #{event.pr_number} closed, but task {row.id} is on PR #{row.pr_number}")
    if isinstance(event, GiteaIssueClosed):
        mine = row.gitea_issue_number
        if event.issue_number is not None and mine is not None and event.issue_number != mine:
            return Unchanged(f"issue #{event.issue_number} closed, but task {row.id} is issue #{mine}")
        if row.state in ("approved", "staging", "production"):
            # Gitea closes an issue itself when a PR saying "Closes #n" merges: accepted work stays.
            return Unchanged(f"task {row.id} is {row.state}; closing its issue does not cancel accepted work")
    if row.state == "cancelled":
        return Unchanged(f"task {row.id} is cancelled already")
    if row.state == "production":
        return Refused(f"task {row.id} is in production; {event.type} cannot cancel it")
    return _move(row, "cancelled", at)


def _deployed(row: TaskRow, event: TaskDeployed, at: datetime) -> Outcome[TaskRow]:
    if row.state == "cancelled":
        return Unchanged(f"task {row.id} is cancelled; its {event.environment} deployment moves nothing")
    if event.environment == "preview":
        if row.state == "backlog":
            return Refused(f"task {row.id} is backlog; a preview deployment needs a started task")
        preview = {"preview_url": event.url or row.preview_url, "preview_deployed_at": at}
        if row.state == "in_progress":
            return _move(row, "ready_to_test", at, **preview)
        # needs_input keeps waiting; ready_to_test and later only record the (new) preview.
        return _set(row, at, f"task {row.id} has this preview already", **preview)
    if event.environment == "staging":
        if row.state in ("staging", "production"):
            return Unchanged(f"task {row.id} is {row.state} already")
        if row.state != "approved":
            return Refused(f"task {row.id} is {row.state}; a staging deployment needs an approved task")
        return _move(row, "staging", at, deployed_staging_at=at)
    if row.state == "production":
        return Unchanged(f"task {row.id} is in production already")
    if row.state != "staging":
        return Refused(f"task {row.id} is {row.state}; a production deployment needs a staging task")
    done = {"completed_at": at, "actual_duration_minutes": duration_minutes(row.started_at, at)}
    return _move(row, "production", at, deployed_production_at=at, **done)
