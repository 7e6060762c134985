"""One Gitea delivery → what it means for aiworker: pure, no I/O (GITEA.md; CONTRACT.md, "Gitea → tasks").

`map_delivery(event_type, payload)` switches on the exact event type (X-Gitea-Event-Type) and falls back
to the grouped name (X-Gitea-Event) with the payload's `action` / `review.type`. It never raises on a
decoded JSON object: what it cannot or does not use becomes `Ignored(event_type, reason)`, so the fold
can count it by type. Resolving the project and the task (by repository id / owner+name; by branch,
PR number, `task/<id>` branch) is the fold's job; the intents carry what it needs (`RepoRef`, `TaskHint`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from app.event_base import TEXT_BYTES
from app.gitea_repository import RepoRef, RepositoryError, repository_of
from streams.gitea_intents import (
    BranchCreated,
    BranchDeleted,
    CancelTaskForIssue,
    CommitStatus,
    Contradicted,
    CreateTaskFromIssue,
    Ignored,
    Intent,
    Priority,
    PullRequestClosed,
    PullRequestOpened,
    Pushed,
    ReviewSubmitted,
    TaskHint,
    WorkflowRun,
)

TASK_NAMESPACE = uuid.UUID("b3c5f0e2-6a1d-4c8e-9f27-5d4a3e1b7c90")
"""Namespace of issue task ids: uuid5(TASK_NAMESPACE, f"{repo_id}:{issue_number}"). Never change it."""
AIWORKER_LABEL = "aiworker"
PRIORITIES: tuple[Priority, ...] = ("low", "medium", "high", "urgent")
TITLE_MAX = 255
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,35}")


IGNORED_TYPES: Mapping[str, str] = {
    "fork": "forks do not concern tasks",
    "wiki": "wiki edits do not concern tasks",
    "repository": "repository creation/deletion is managed through project.upserted",
    "release": "releases do not concern tasks",
    "package": "packages do not concern tasks",
    "issue_assign": "issue assignment does not concern tasks",
    "issue_milestone": "issue milestones do not concern tasks",
    "issue_comment": "comments do not concern tasks",
    "pull_request_comment": "comments and comment-only reviews do not concern tasks",
    "pull_request_assign": "pull request assignment does not concern tasks",
    "pull_request_label": "pull request labels do not concern tasks",
    "pull_request_milestone": "pull request milestones do not concern tasks",
    "pull_request_sync": "new commits on a pull request arrive as push events",
    "pull_request_review_request": "review requests do not concern tasks",
}


def task_id_for_issue(repo_id: int, issue_number: int) -> str:
    """The id of the task an issue creates: the same on every replay."""
    return str(uuid.uuid5(TASK_NAMESPACE, f"{repo_id}:{issue_number}"))


def task_id_from_branch(branch: str | None) -> str | None:
    """The task id in a branch named `task/<id>` (also `refs/heads/task/<id>`, `task/<uuid>-<slug>`), or None."""
    if not isinstance(branch, str):
        return None
    name = branch.removeprefix("refs/heads/")
    if not name.startswith("task/"):
        return None
    rest = name[len("task/") :].split("/", 1)[0]
    found = _UUID.match(rest)
    if found and (len(rest) == found.end() or rest[found.end()] in "-_."):
        return found.group()
    return rest if _TASK_ID.fullmatch(rest) else None


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _labels(issue: Mapping[str, Any]) -> tuple[str, ...]:
    labels = issue.get("labels")
    names = (_str(_obj(item).get("name")) or _str(item) for item in (labels if isinstance(labels, list) else []))
    return tuple(name.strip() for name in names if name)


def priority_from_labels(labels: tuple[str, ...]) -> Priority:
    """The highest `priority/<p>` label (case-insensitive), else medium."""
    found = [label.lower().removeprefix("priority/").strip() for label in labels if label.lower().startswith("priority/")]
    ranked = [p for p in reversed(PRIORITIES) if p in found]
    return ranked[0] if ranked else "medium"


def _issues(etype: str, payload: Mapping[str, Any], repo: RepoRef) -> list[Intent]:
    action, issue = _str(payload.get("action")), _obj(payload.get("issue"))
    number = _int(payload.get("number")) or _int(issue.get("number"))
    if number is None or repo.id is None:
        return [Ignored(etype, "payload has no issue number" if number is None else "repository has no id")]
    if issue.get("pull_request"):
        return [Ignored(etype, f"#{number} is a pull request, not an issue")]
    task_id = task_id_for_issue(repo.id, number)
    if action in ("closed", "deleted"):
        return [CancelTaskForIssue(repo, number, task_id, f"Gitea issue #{number} {action}")]
    if action not in ("opened", "reopened", "label_updated"):
        return [Ignored(etype, f"issue action {action!r} does not concern tasks")]
    labels = _labels(issue)
    if AIWORKER_LABEL not in (label.lower() for label in labels):
        return [Ignored(etype, f"issue #{number} has no {AIWORKER_LABEL!r} label")]
    title = (_str(issue.get("title")) or f"Gitea issue #{number}").strip()[:TITLE_MAX]
    body = _cut_utf8(_str(issue.get("body")), TEXT_BYTES)  # as the title: what the column holds, never a refusal
    issue_url = _str(issue.get("html_url"))
    return [CreateTaskFromIssue(repo, number, task_id, title, body, priority_from_labels(labels), issue_url, labels)]


def _cut_utf8(text: str | None, limit: int) -> str | None:
    """`text` cut to at most `limit` bytes of UTF-8, at a character boundary."""
    if text is None or len(text) <= limit // 4:
        return text
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _branch(ref: object) -> str | None:
    """A branch name from `head.ref` / `ref`: None for `refs/pull/<n>/head` (the branch is gone) and tags."""
    name = _str(ref)
    if name is None or name.startswith(("refs/pull/", "refs/tags/")):
        return None
    return name.removeprefix("refs/heads/")


def _hint(branch: str | None, pr_number: int | None = None) -> TaskHint:
    return TaskHint(branch, pr_number, task_id_from_branch(branch))


# The verdict an event-type header announces (exact and grouped names) and the payload's `review.type` values.
REVIEW_HEADERS: Mapping[str, str] = {
    "pull_request_review_approved": "approved", "pull_request_approved": "approved",
    "pull_request_review_rejected": "rejected", "pull_request_rejected": "rejected",
    "pull_request_review_comment": "comment",
}  # fmt: skip
REVIEW_TYPES: Mapping[str, str] = {
    "pull_request_review_approved": "approved",
    "pull_request_review_rejected": "rejected",
    "pull_request_review_comment": "comment",
}


def _review(etype: str, payload: Mapping[str, Any]) -> str | Contradicted | Ignored | None:
    """A review's verdict (approved, rejected, comment) from the signed payload's `review.type`; None when the
    delivery is no review. A header naming a verdict (exact or grouped) must agree with the payload's: two
    verdicts are a contradiction. The family name `pull_request` names none, so the payload's stands."""
    announced = REVIEW_HEADERS.get(etype)
    is_review = _str(payload.get("action")) == "reviewed"
    review_type = _str(_obj(payload.get("review")).get("type"))
    if not is_review:
        if announced is None:
            return None
        return Ignored(etype, f"payload action {payload.get('action')!r} is not a review")
    if review_type is None or review_type not in REVIEW_TYPES:
        return Ignored(etype, f"review.type {review_type!r} names no verdict; the verdict comes only from the payload")
    verdict = REVIEW_TYPES[review_type]
    if announced is not None and announced != verdict:
        return Contradicted(etype, f"the event type header says {etype!r} ({announced}), but the signed payload's "
                                   f"review.type is {review_type!r} ({verdict})")  # fmt: skip
    return verdict


def _pull_request(etype: str, payload: Mapping[str, Any], repo: RepoRef) -> list[Intent]:
    action, pull = _str(payload.get("action")), _obj(payload.get("pull_request"))
    number = _int(payload.get("number")) or _int(pull.get("number"))
    if not pull or number is None:
        return [Ignored(etype, "payload has no pull_request number")]
    head, base = _obj(pull.get("head")), _obj(pull.get("base"))
    branch, url = _branch(head.get("ref")), _str(pull.get("html_url"))
    hint = _hint(branch, number)
    verdict = _review(etype, payload)
    if isinstance(verdict, Contradicted | Ignored):
        return [verdict]
    if verdict is not None:
        if verdict == "comment":
            return [Ignored(etype, "comment-only reviews do not concern tasks")]
        review, sender = _obj(payload.get("review")), _obj(payload.get("sender"))
        reviewer = _str(sender.get("login")) or _str(sender.get("username"))
        return [ReviewSubmitted(repo, number, branch, verdict == "approved", reviewer, _str(review.get("content")), hint)]
    if action in ("opened", "reopened"):
        head_sha, title = _str(head.get("sha")), _str(pull.get("title"))
        return [PullRequestOpened(repo, number, url, branch, _branch(base.get("ref")), head_sha, title, hint)]
    if action in ("closed", "deleted"):
        merged = pull.get("merged") is True
        sha = _str(pull.get("merge_commit_sha")) if merged else None
        return [PullRequestClosed(repo, number, url, branch, merged, sha, hint)]
    return [Ignored(etype, f"pull request action {action!r} does not concern tasks")]


def _ref_event(etype: str, payload: Mapping[str, Any], repo: RepoRef) -> list[Intent]:
    ref_type, branch = _str(payload.get("ref_type")), _branch(payload.get("ref"))
    if ref_type != "branch" or branch is None:
        return [Ignored(etype, f"{etype} of a {ref_type or 'ref of unknown type'} does not concern tasks")]
    if etype == "create":
        return [BranchCreated(repo, branch, _str(payload.get("sha")), _hint(branch))]
    return [BranchDeleted(repo, branch, _hint(branch))]


def _zeros(sha: str | None) -> bool:
    return sha is not None and set(sha) == {"0"}


def _push(etype: str, payload: Mapping[str, Any], repo: RepoRef) -> list[Intent]:
    ref = _str(payload.get("ref"))
    branch = _branch(ref)
    if ref is None or branch is None:
        return [Ignored(etype, "push to a tag or without a ref does not concern tasks")]
    commits = payload.get("commits")
    ids = tuple(i for c in (commits if isinstance(commits, list) else []) if (i := _str(_obj(c).get("id"))))
    total = _int(payload.get("total_commits"))
    before, after = _str(payload.get("before")), _str(payload.get("after"))
    return [
        Pushed(repo, ref, branch, before, after, ids, len(ids) if total is None else total, _zeros(before),
               _zeros(after), _hint(branch))
    ]  # fmt: skip


def _status(etype: str, payload: Mapping[str, Any], repo: RepoRef) -> list[Intent]:
    sha, state = _str(payload.get("sha")), _str(payload.get("state"))
    if sha is None or state is None:
        return [Ignored(etype, "status without sha or state")]
    text = [_str(payload.get(key)) for key in ("context", "target_url", "description")]
    return [CommitStatus(repo, sha, state, text[0], text[1], text[2])]


def _workflow(etype: str, payload: Mapping[str, Any], repo: RepoRef) -> list[Intent]:
    kind: Literal["run", "job"] = "run" if etype == "workflow_run" else "job"
    item = payload.get(f"workflow_{kind}")
    if not isinstance(item, Mapping):
        return [Ignored(etype, f"payload has no workflow_{kind}")]
    workflow_name = _str(_obj(payload.get("workflow")).get("name"))
    name = _str(item.get("name")) or workflow_name or _str(item.get("display_title"))
    text = [_str(item.get(key)) for key in ("status", "conclusion", "head_sha", "head_branch", "html_url")]
    branch = _branch(text[3])
    return [
        WorkflowRun(repo, kind, _int(item.get("id")), name, _str(payload.get("action")), text[0], text[1], text[2],
                    branch, text[4], _hint(branch))
    ]  # fmt: skip


_Handler = Callable[[str, Mapping[str, Any], RepoRef], list[Intent]]
HANDLERS: Mapping[str, _Handler] = {
    "issues": _issues,
    "issue_label": _issues,
    "pull_request": _pull_request,
    "pull_request_review_approved": _pull_request,
    "pull_request_review_rejected": _pull_request,
    "pull_request_review_comment": _pull_request,
    "pull_request_approved": _pull_request,  # the grouped names, when X-Gitea-Event-Type is absent
    "pull_request_rejected": _pull_request,
    "create": _ref_event,
    "delete": _ref_event,
    "push": _push,
    "status": _status,
    "workflow_run": _workflow,
    "workflow_job": _workflow,
}


def map_delivery(event_type: str, payload: Mapping[str, Any]) -> list[Intent]:
    """The intents of one delivery (exact or grouped event type, decoded payload); never raises."""
    etype = event_type.strip().lower() if isinstance(event_type, str) else ""
    if not isinstance(payload, Mapping):
        return [Ignored(etype, "payload is not a JSON object")]
    handler = HANDLERS.get(etype)
    if handler is None:
        return [Ignored(etype, IGNORED_TYPES.get(etype, f"unknown event type {etype!r}"))]
    try:
        repo = repository_of(payload)
    except RepositoryError as exc:
        return [Contradicted(etype, str(exc))]
    if repo is None:
        return [Ignored(etype, "payload has no repository")]
    return handler(etype, payload, repo)
