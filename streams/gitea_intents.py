"""What a Gitea delivery means for aiworker: the intents `map_delivery` (streams/gitea_map.py) makes of it, and the
fold (streams/handlers/gitea.py) and reconcile act on. Plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.gitea_repository import RepoRef

Priority = Literal["low", "medium", "high", "urgent"]


@dataclass(frozen=True, slots=True)
class TaskHint:
    """How to find the task, in the contract's order: branch name, else PR number, else `task/<id>`."""

    branch: str | None
    pr_number: int | None
    task_id: str | None


@dataclass(frozen=True, slots=True)
class CreateTaskFromIssue:
    repo: RepoRef
    issue_number: int
    task_id: str
    title: str
    description: str | None
    priority: Priority
    issue_url: str | None
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CancelTaskForIssue:
    """The issue was closed or deleted; `task_id` is the id its task has if it was created from it."""

    repo: RepoRef
    issue_number: int
    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PullRequestOpened:
    repo: RepoRef
    pr_number: int
    pr_url: str | None
    head_branch: str | None
    base_branch: str | None
    head_sha: str | None
    title: str | None
    task_hint: TaskHint


@dataclass(frozen=True, slots=True)
class PullRequestClosed:
    repo: RepoRef
    pr_number: int
    pr_url: str | None
    head_branch: str | None
    merged: bool
    merge_commit_sha: str | None
    task_hint: TaskHint


@dataclass(frozen=True, slots=True)
class ReviewSubmitted:
    repo: RepoRef
    pr_number: int
    head_branch: str | None
    approved: bool
    reviewer: str | None
    content: str | None
    task_hint: TaskHint


@dataclass(frozen=True, slots=True)
class BranchCreated:
    repo: RepoRef
    branch: str
    sha: str | None
    task_hint: TaskHint


@dataclass(frozen=True, slots=True)
class BranchDeleted:
    repo: RepoRef
    branch: str
    task_hint: TaskHint


@dataclass(frozen=True, slots=True)
class Pushed:
    """A push to a branch; `created` when `before` is all zeros, `deleted` when `after` is."""

    repo: RepoRef
    ref: str
    branch: str
    before: str | None
    after: str | None
    commits: tuple[str, ...]
    total_commits: int
    created: bool
    deleted: bool
    task_hint: TaskHint


@dataclass(frozen=True, slots=True)
class CommitStatus:
    repo: RepoRef
    sha: str
    state: str
    context: str | None
    target_url: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    """A Gitea Actions run (`kind="run"`) or one of its jobs (`kind="job"`)."""

    repo: RepoRef
    kind: Literal["run", "job"]
    id: int | None
    name: str | None
    action: str | None
    status: str | None
    conclusion: str | None
    head_sha: str | None
    head_branch: str | None
    html_url: str | None
    task_hint: TaskHint


@dataclass(frozen=True, slots=True)
class Ignored:
    event_type: str
    reason: str


@dataclass(frozen=True, slots=True)
class Contradicted:
    """The event-type header says one thing and the signed payload another: the fold refuses the delivery.

    What a delivery means comes from the signed bytes; a header is not signed, so a header that disagrees
    with the payload is a forgery or a broken sender, never a hint to follow."""

    event_type: str
    reason: str


Intent = (
    CreateTaskFromIssue | CancelTaskForIssue | PullRequestOpened | PullRequestClosed | ReviewSubmitted
    | BranchCreated | BranchDeleted | Pushed | CommitStatus | WorkflowRun | Ignored | Contradicted
)  # fmt: skip
