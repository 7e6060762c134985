"""What Gitea's REST API shows against our rows → the deliveries Gitea would have sent: pure, no I/O.

Gitea builds its webhook payloads from the same API structs its REST API answers with (`pull_request` is a
PullRequest, `issue` an Issue, `repository` a Repository of its swagger), so a reconciled payload is the API
object under the key a delivery carries it, with the delivery's `action`, `number`, `sender` and, for reviews,
`review: {type, content}` (`type` the exact event type, which is where the fold reads the verdict from).

Whether to publish is decided on the intent `streams.gitea_map.map_delivery` derives from that very payload,
the fold's own reading, so reconcile and the fold cannot disagree about which task a record is for.
Each record's id is a UUIDv5 of its kind, the repository id, Gitea's object id and the time Gitea gives the
change (created_at, closed_at, merged_at, submitted_at; else updated_at): the same on every run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from app.gitea_repository import repository_of
from streams import gitea_intents as gi
from streams import gitea_map as gm

RECONCILE_NAMESPACE = uuid.UUID("6f1c2d3e-8a9b-4c5d-9e0f-a1b2c3d4e5f6")
"""Namespace of reconciled record ids; never change it (a changed id would be folded again)."""

Kind = Literal[
    "pull_request_opened", "pull_request_closed", "pull_request_merged", "review_approved", "review_rejected",
    "issue_opened", "issue_closed",
]  # fmt: skip
KINDS: tuple[Kind, ...] = (
    "pull_request_opened", "pull_request_closed", "pull_request_merged", "review_approved", "review_rejected",
    "issue_opened", "issue_closed",
)  # fmt: skip
# Exact event type and grouped name, as Gitea sends them in X-Gitea-Event-Type / X-Gitea-Event (GITEA.md).
EVENT_TYPES: Mapping[Kind, tuple[str, str]] = {
    "pull_request_opened": ("pull_request", "pull_request"),
    "pull_request_closed": ("pull_request", "pull_request"),
    "pull_request_merged": ("pull_request", "pull_request"),
    "review_approved": ("pull_request_review_approved", "pull_request_approved"),
    "review_rejected": ("pull_request_review_rejected", "pull_request_rejected"),
    "issue_opened": ("issues", "issues"),
    "issue_closed": ("issues", "issues"),
}
VERDICTS = {"APPROVED": "review_approved", "REQUEST_CHANGES": "review_rejected"}  # COMMENT, PENDING...: no verdict
_DONE = ("cancelled", "production")
_ACCEPTED = ("approved", "staging", "production")


@dataclass(frozen=True, slots=True)
class TaskRef:
    """The columns of one of the project's tasks that decide whether Gitea's state is news to it."""

    id: str
    state: str
    branch_name: str | None
    pr_number: int | None
    gitea_issue_number: int | None
    updated_at: datetime | None  # UTC


@dataclass(frozen=True, slots=True)
class Reconciled:
    """One record to publish: the delivery Gitea would have sent (or did send, and we lost)."""

    kind: Kind
    task_id: str
    object_id: int
    stamp: str  # Gitea's time of the change, as Gitea wrote it
    payload: Mapping[str, Any]

    @property
    def event_type(self) -> str:
        return EVENT_TYPES[self.kind][0]

    @property
    def event_group(self) -> str:
        return EVENT_TYPES[self.kind][1]

    @property
    def delivery_id(self) -> str:
        return f"reconcile-{uuid.uuid5(RECONCILE_NAMESPACE, f'{self.kind}:{self.repo_id}:{self.object_id}:{self.stamp}')}"

    @property
    def event_id(self) -> str:
        return f"gitea:{self.delivery_id}"

    @property
    def repo_id(self) -> int | None:
        """The payload's repository id, read as the web and the fold read it (its repository passed
        `Reconciler.checked`: it names one repository, with an id)."""
        repo = repository_of(self.payload)
        return repo.id if repo is not None else None

    @property
    def happened_at(self) -> datetime:
        return parse_time(self.stamp) or datetime.now(UTC)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time of Gitea's (`2026-11-30T10:00:00Z`, `...+01:00`) in UTC, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stamp(obj: Mapping[str, Any], *keys: str) -> str | None:
    for key in (*keys, "updated_at"):
        if parse_time(obj.get(key)) is not None:
            return str(obj[key])
    return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _user(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def pull_request_payload(
    action: str,
    pull: Mapping[str, Any],
    repository: Mapping[str, Any],
    *,
    sender: Mapping[str, Any] | None = None,
    review: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload of a `pull_request` family delivery, as Gitea writes it (PullRequestPayload)."""
    payload: dict[str, Any] = {
        "action": action, "number": pull.get("number"), "pull_request": dict(pull), "requested_reviewer": None,
        "repository": dict(repository), "sender": sender, "commit_id": "",
    }  # fmt: skip
    if review is not None:
        payload["review"] = dict(review)
    return payload


def issue_payload(action: str, issue: Mapping[str, Any], repository: Mapping[str, Any],
                  sender: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The payload of an `issues` delivery, as Gitea writes it (IssuePayload)."""
    return {"action": action, "number": issue.get("number"), "issue": dict(issue), "repository": dict(repository),
            "sender": sender, "commit_id": ""}  # fmt: skip


def find_task(tasks: Sequence[TaskRef], hint: gi.TaskHint) -> TaskRef | None:
    """The task the fold would find (streams/handlers/gitea.py): branch name, else PR number, else `task/<id>`."""
    if hint.branch:
        for task in tasks:
            if task.branch_name == hint.branch:
                return task
    if hint.pr_number is not None:
        for task in tasks:
            if task.pr_number == hint.pr_number:
                return task
    return next((task for task in tasks if task.id == hint.task_id), None) if hint.task_id else None


def _one(payload: Mapping[str, Any], event_type: str) -> gi.Intent:
    intents = gm.map_delivery(event_type, payload)
    return intents[0] if intents else gi.Ignored(event_type, "no intent")


def _ours(repository: Mapping[str, Any], repo_id: object) -> bool:
    """Whether an object Gitea listed belongs to the project's repository (never reconcile a foreign one)."""
    return repo_id is None or repo_id == repository.get("id")


def diff_pull(pull: Mapping[str, Any], repository: Mapping[str, Any], tasks: Sequence[TaskRef]) -> Reconciled | None:
    """The record a pull request's state calls for: opened unknown to its task, closed, or merged; else None."""
    number, pull_id = _int(pull.get("number")), _int(pull.get("id"))
    base = _obj(pull.get("base"))
    if number is None or pull_id is None or not _ours(repository, base.get("repo_id")):
        return None
    if pull.get("state") == "open":
        kind: Kind = "pull_request_opened"
        action, stamp = "opened", _stamp(pull, "created_at")
    elif pull.get("merged") is True:
        kind, action, stamp = "pull_request_merged", "closed", _stamp(pull, "merged_at", "closed_at")
    else:
        kind, action, stamp = "pull_request_closed", "closed", _stamp(pull, "closed_at")
    sender = _user(pull.get("merged_by")) if kind == "pull_request_merged" else None
    payload = pull_request_payload(action, pull, repository, sender=sender or _user(pull.get("user")))
    intent = _one(payload, "pull_request")
    if stamp is None or not isinstance(intent, gi.PullRequestOpened | gi.PullRequestClosed):
        return None
    task = find_task(tasks, intent.task_hint)
    if task is None or task.state in _DONE:
        return None
    if isinstance(intent, gi.PullRequestOpened):
        news = task.pr_number != number or (intent.head_branch is not None and task.branch_name != intent.head_branch)
    else:
        news = task.pr_number in (None, number)
    return Reconciled(kind, task.id, pull_id, stamp, payload) if news else None


def diff_reviews(pull: Mapping[str, Any], reviews: Iterable[Mapping[str, Any]], repository: Mapping[str, Any],
                 task: TaskRef) -> Reconciled | None:  # fmt: skip
    """The verdict a ready_to_test task has not seen: the latest approving or rejecting review that is not dismissed
    and not stale (given on the PR's current head); a rejection only when given after the task's last change."""
    if task.state != "ready_to_test":
        return None
    verdicts = [
        r for r in reviews
        if r.get("state") in VERDICTS and not r.get("dismissed") and not r.get("stale")
        and parse_time(r.get("submitted_at")) is not None and _int(r.get("id")) is not None
    ]  # fmt: skip
    if not verdicts:
        return None
    latest = max(verdicts, key=lambda r: (parse_time(r["submitted_at"]), r["id"]))
    submitted = parse_time(latest["submitted_at"])
    kind: Kind = "review_approved" if VERDICTS[str(latest["state"])] == "review_approved" else "review_rejected"
    if kind == "review_rejected" and task.updated_at is not None and submitted is not None and submitted <= task.updated_at:
        return None  # a rejection of an earlier round: the task was sent back and came again since
    event_type = EVENT_TYPES[kind][0]
    review = {"type": event_type, "content": latest.get("body") or ""}
    payload = pull_request_payload("reviewed", pull, repository, sender=_user(latest.get("user")), review=review)
    intent = _one(payload, event_type)
    if not isinstance(intent, gi.ReviewSubmitted) or find_task([task], intent.task_hint) is None:
        return None
    return Reconciled(kind, task.id, int(latest["id"]), str(latest["submitted_at"]), payload)


def diff_issue(issue: Mapping[str, Any], repository: Mapping[str, Any], tasks: Sequence[TaskRef]) -> Reconciled | None:
    """The record an `aiworker` issue's state calls for: open without a task, or closed with a live one; else None."""
    issue_id, number = _int(issue.get("id")), _int(issue.get("number"))
    meta = _obj(issue.get("repository"))
    if issue_id is None or number is None or issue.get("pull_request") or not _ours(repository, meta.get("id")):
        return None
    closed = issue.get("state") == "closed"
    stamp = _stamp(issue, "closed_at") if closed else _stamp(issue, "created_at")
    payload = issue_payload("closed" if closed else "opened", issue, repository, _user(issue.get("user")))
    intent = _one(payload, "issues")
    if stamp is None:
        return None
    if isinstance(intent, gi.CreateTaskFromIssue):
        known = any(t.id == intent.task_id or t.gitea_issue_number == number for t in tasks)
        return None if known else Reconciled("issue_opened", intent.task_id, issue_id, stamp, payload)
    if isinstance(intent, gi.CancelTaskForIssue):
        task = next((t for t in tasks if t.id == intent.task_id), None)
        task = task or next((t for t in tasks if t.gitea_issue_number == number), None)
        if task is None or task.state in (*_DONE, *_ACCEPTED):
            return None
        return Reconciled("issue_closed", task.id, issue_id, stamp, payload)
    return None


def delivery_order(records: Iterable[Reconciled]) -> list[Reconciled]:
    """The records in the order Gitea would have sent them: by the time of each change (stable for ties).

    Pull requests are listed newest-updated first; published in that order, a PR closed after its task moved to a
    new PR would reach the fold before that new PR's opening and cancel the task, which the deliveries would not.
    """
    return sorted(records, key=lambda r: r.happened_at)
