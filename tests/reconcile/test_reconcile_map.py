"""The pure half of reconcile: API objects → the payloads Gitea's deliveries carry, and what is news to the rows."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.commands.reconcile_map import (
    TaskRef,
    delivery_order,
    diff_issue,
    diff_pull,
    diff_reviews,
    issue_payload,
    pull_request_payload,
)
from streams import gitea_intents as gi
from streams import gitea_map as gm
from tests.gitea_samples import load_sample

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
BRANCH = "task/5e46a71c-770e-5aaf-a752-e99a46600174"
TASK = "5e46a71c-770e-5aaf-a752-e99a46600174"


def task(state: str, **changes: Any) -> TaskRef:
    fields: dict[str, Any] = {"id": TASK, "state": state, "branch_name": BRANCH, "pr_number": 23,
                              "gitea_issue_number": None, "updated_at": T0}  # fmt: skip
    fields.update(changes)
    return TaskRef(**fields)


def sample(name: str) -> dict[str, Any]:
    return copy.deepcopy(load_sample(name).payload)


def pull(**changes: Any) -> dict[str, Any]:
    made = sample("pull_request__closed_merged")["pull_request"]
    made.update(changes)
    return made


def repository() -> dict[str, Any]:
    return sample("pull_request__closed_merged")["repository"]


def review(review_id: int, state: str, submitted: datetime, **changes: Any) -> dict[str, Any]:
    made = {"id": review_id, "state": state, "body": "Looks good, thanks!", "submitted_at": submitted.isoformat(),
            "stale": False, "dismissed": False, "user": sample("pull_request_review_approved")["sender"]}  # fmt: skip
    made.update(changes)
    return made


@pytest.mark.parametrize(
    ("name", "event_type"),
    [("pull_request__closed_merged", "pull_request"), ("pull_request__closed_unmerged", "pull_request"),
     ("pull_request__opened", "pull_request"), ("issues__opened_aiworker", "issues"), ("issues__closed", "issues")],
)  # fmt: skip
def test_a_rebuilt_payload_means_what_the_recorded_delivery_means(name: str, event_type: str) -> None:
    delivered = sample(name)
    if event_type == "issues":
        rebuilt = issue_payload(delivered["action"], delivered["issue"], delivered["repository"], delivered["sender"])
    else:
        rebuilt = pull_request_payload(delivered["action"], delivered["pull_request"], delivered["repository"],
                                       sender=delivered["sender"])  # fmt: skip
    assert gm.map_delivery(event_type, rebuilt) == gm.map_delivery(event_type, delivered)
    assert not isinstance(gm.map_delivery(event_type, rebuilt)[0], gi.Ignored)


@pytest.mark.parametrize(("state", "name"), [("APPROVED", "approved"), ("REQUEST_CHANGES", "rejected")])
def test_a_review_verdict_travels_in_the_payload_as_a_delivery_carries_it(state: str, name: str) -> None:
    delivered = sample(f"pull_request_review_{name}")
    open_pull = delivered["pull_request"]
    found = diff_reviews(open_pull, [review(7, state, T0 + timedelta(minutes=5))], delivered["repository"], task("ready_to_test"))
    assert found is not None and found.kind == f"review_{name}"
    assert found.event_type == f"pull_request_review_{name}" and found.payload["review"]["type"] == found.event_type
    assert found.event_group == load_sample(f"pull_request_review_{name}").headers["X-Gitea-Event"]
    [intent] = gm.map_delivery(found.event_type, found.payload)
    [recorded] = gm.map_delivery(f"pull_request_review_{name}", delivered)
    assert isinstance(intent, gi.ReviewSubmitted) and isinstance(recorded, gi.ReviewSubmitted)
    assert (intent.approved, intent.pr_number, intent.task_hint, intent.reviewer) == (
        recorded.approved, recorded.pr_number, recorded.task_hint, recorded.reviewer)  # fmt: skip


def test_only_the_latest_live_verdict_counts() -> None:
    open_pull, repo = sample("pull_request_review_approved")["pull_request"], repository()
    later = T0 + timedelta(minutes=10)
    no_verdict = [review(1, "COMMENT", later), review(2, "PENDING", later), review(3, "REQUEST_REVIEW", later),
                  review(4, "APPROVED", later, stale=True), review(5, "APPROVED", later, dismissed=True)]  # fmt: skip
    assert diff_reviews(open_pull, no_verdict, repo, task("ready_to_test")) is None
    both = [review(6, "REQUEST_CHANGES", later), review(7, "APPROVED", later + timedelta(minutes=1))]
    found = diff_reviews(open_pull, both, repo, task("ready_to_test"))
    assert found is not None and found.kind == "review_approved" and found.object_id == 7
    # a rejection from before the task's last change is an earlier round's (it was sent back and came again)
    assert diff_reviews(open_pull, [review(8, "REQUEST_CHANGES", T0 - timedelta(minutes=1))], repo, task("ready_to_test")) is None
    for state in ("in_progress", "approved", "cancelled"):  # only a task awaiting review takes a verdict
        assert diff_reviews(open_pull, both, repo, task(state)) is None


def test_pull_requests_news_to_their_task() -> None:
    repo, opened = repository(), pull(state="open", merged=False, merged_at=None, closed_at=None)
    unknown = diff_pull(opened, repo, [task("in_progress", pr_number=None)])
    assert unknown is not None and unknown.kind == "pull_request_opened" and unknown.payload["action"] == "opened"
    assert diff_pull(opened, repo, [task("in_progress")]) is None  # the task knows it already
    closed = pull(merged=False, merged_at=None, merge_commit_sha=None)
    found = diff_pull(closed, repo, [task("ready_to_test")])
    assert found is not None and found.kind == "pull_request_closed" and found.stamp == closed["closed_at"]
    merged = diff_pull(pull(), repo, [task("approved")])
    assert merged is not None and merged.kind == "pull_request_merged" and merged.payload["pull_request"]["merged"] is True
    assert diff_pull(closed, repo, [task("cancelled")]) is None and diff_pull(closed, repo, [task("production")]) is None
    assert diff_pull(closed, repo, [task("ready_to_test", pr_number=99)]) is None  # the task is on another PR
    assert diff_pull(closed, repo, [task("ready_to_test", id="other", branch_name="task/other", pr_number=7)]) is None
    foreign = pull(merged=False, base={**pull()["base"], "repo_id": 999})
    assert diff_pull(foreign, repo, [task("ready_to_test")]) is None  # never another repository's object


def test_issues_news_to_the_rows() -> None:
    delivered = sample("issues__opened_aiworker")
    issue, repo = delivered["issue"], delivered["repository"]
    created = diff_issue(issue, repo, [])
    assert created is not None and created.kind == "issue_opened"
    assert created.task_id == gm.task_id_for_issue(repo["id"], issue["number"])
    assert diff_issue(issue, repo, [task("backlog", id=created.task_id)]) is None
    assert diff_issue(issue, repo, [task("backlog", id="t-x", gitea_issue_number=issue["number"])]) is None
    unlabelled = {**issue, "labels": [{"name": "bug"}]}
    assert diff_issue(unlabelled, repo, []) is None
    closed = sample("issues__closed")["issue"]
    live = task("in_progress", id=gm.task_id_for_issue(repo["id"], closed["number"]))
    found = diff_issue(closed, repo, [live])
    assert found is not None and found.kind == "issue_closed" and found.payload["action"] == "closed"
    for state in ("cancelled", "approved", "staging", "production"):  # accepted work stays (Gitea closes on merge)
        assert diff_issue(closed, repo, [task(state, id=live.id)]) is None
    assert diff_issue(closed, repo, []) is None
    assert diff_issue({**issue, "pull_request": {"merged": False}}, repo, []) is None


def test_ids_come_from_gitea_objects_and_their_times() -> None:
    repo = repository()
    closed = pull(merged=False, merged_at=None)
    first, again = diff_pull(closed, repo, [task("ready_to_test")]), diff_pull(copy.deepcopy(closed), repo, [task("in_progress")])
    assert first is not None and again is not None and first.event_id == again.event_id
    assert first.event_id == f"gitea:{first.delivery_id}" and first.delivery_id.startswith("reconcile-")
    reopened_closed = diff_pull({**closed, "closed_at": "2026-12-01T10:00:00Z"}, repo, [task("ready_to_test")])
    assert reopened_closed is not None and reopened_closed.event_id != first.event_id
    assert first.happened_at == datetime.fromisoformat(closed["closed_at"].replace("Z", "+00:00"))


def test_records_go_out_in_the_order_gitea_would_have_sent_them() -> None:
    repo = repository()
    moved = task("ready_to_test")  # its rows still name PR #23; a new PR #24 was opened, then #23 closed
    closed = pull(merged=False, merged_at=None, closed_at="2026-11-30T12:00:00Z", updated_at="2026-11-30T12:00:00Z")
    newer = pull(number=24, id=324, state="open", merged=False, closed_at=None, created_at="2026-11-30T11:00:00Z",
                 updated_at="2026-11-30T11:00:00Z")  # fmt: skip
    listed = [diff_pull(closed, repo, [moved]), diff_pull(newer, repo, [moved])]  # newest-updated first, as listed
    found = [r for r in listed if r is not None]
    assert [r.kind for r in delivery_order(found)] == ["pull_request_opened", "pull_request_closed"]


def test_only_the_projects_own_repository_is_reconciled() -> None:
    from app.commands.reconcile import ReconcileError, Reconciler
    from db.reconcile import ProjectRepo

    repo = repository()  # acme/webshop, id 42
    assert Reconciler.checked(ProjectRepo("p1", "acme", "webshop", 42, None), repo) == "acme/webshop"
    assert Reconciler.checked(ProjectRepo("p1", "ACME", "WebShop", None, None), repo) == "acme/webshop"  # as Gitea compares
    with pytest.raises(ReconcileError, match="names repository 7"):
        Reconciler.checked(ProjectRepo("p1", "acme", "webshop", 7, None), repo)  # the name went to another repository
    with pytest.raises(ReconcileError, match="renamed or moved"):
        Reconciler.checked(ProjectRepo("p1", "acme", "oldshop", None, None), repo)  # Gitea redirected to the new name
    with pytest.raises(ReconcileError, match="contradicts"):
        Reconciler.checked(ProjectRepo("p1", "acme", "webshop", 42, None), {**repo, "full_name": "other/thing"})
