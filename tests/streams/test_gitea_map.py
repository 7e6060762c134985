"""streams.gitea_map: every Gitea delivery maps to the intents the fold expects, and nothing crashes it."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.gitea_repository import RepoRef
from streams.gitea_intents import (
    BranchCreated,
    BranchDeleted,
    CancelTaskForIssue,
    CommitStatus,
    Contradicted,
    CreateTaskFromIssue,
    Ignored,
    Intent,
    PullRequestClosed,
    PullRequestOpened,
    Pushed,
    ReviewSubmitted,
    TaskHint,
    WorkflowRun,
)
from streams.gitea_map import (
    TASK_NAMESPACE,
    map_delivery,
    priority_from_labels,
    task_id_for_issue,
    task_id_from_branch,
)
from tests.gitea_samples import Sample, load_sample, load_samples

T = TypeVar("T")
SAMPLES = load_samples()
REPO = RepoRef(42, "acme", "webshop", "acme/webshop")
TASK_ID = str(uuid.uuid5(TASK_NAMESPACE, "42:17"))
BRANCH = f"task/{TASK_ID}"
PR_HINT = TaskHint(BRANCH, 23, TASK_ID)

EXPECTED: dict[str, type[Intent]] = {
    "create__branch": BranchCreated,
    "delete__branch": BranchDeleted,
    "issue_label__aiworker_added": CreateTaskFromIssue,
    "issues__closed": CancelTaskForIssue,
    "issues__opened_aiworker": CreateTaskFromIssue,
    "pull_request__closed_merged": PullRequestClosed,
    "pull_request__closed_unmerged": PullRequestClosed,
    "pull_request__opened": PullRequestOpened,
    "pull_request_review_approved": ReviewSubmitted,
    "pull_request_review_rejected": ReviewSubmitted,
    "push__main": Pushed,
    "push__new_branch": Pushed,
    "status__success": CommitStatus,
    "workflow_job__completed": WorkflowRun,
    "workflow_run__completed": WorkflowRun,
}


def _as(kind: type[T], intent: Intent) -> T:
    assert isinstance(intent, kind), intent
    return intent


def _one(sample: Sample | str, event_type: str | None = None, payload: Any = None) -> Intent:
    if isinstance(sample, str):
        sample = load_sample(sample)
    intents = map_delivery(event_type or sample.event_type, sample.payload if payload is None else payload)
    assert len(intents) == 1
    return intents[0]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_every_sample_maps_to_its_intent(sample: Sample) -> None:
    intent = _one(sample)
    assert type(intent) is EXPECTED.get(sample.name, Ignored)
    if isinstance(intent, Ignored):
        assert intent.event_type == sample.event_type and intent.reason
    else:
        assert intent.repo == REPO
    # the grouped X-Gitea-Event alone gives the same answer, except where the group hides the type
    grouped = _one(sample, sample.headers["X-Gitea-Event"])
    if sample.headers["X-Gitea-Event"] == sample.event_type or not isinstance(grouped, Ignored):
        assert type(grouped) is type(intent)


def test_issue_opened_with_aiworker_label_creates_a_task() -> None:
    intent = _as(CreateTaskFromIssue, _one("issues__opened_aiworker"))
    assert intent == CreateTaskFromIssue(
        REPO, 17, TASK_ID, "Checkout total wrong with coupon + free shipping", intent.description, "high",
        "https://git.acme.dev/acme/webshop/issues/17", ("aiworker", "priority/high"),
    )  # fmt: skip
    assert intent.description and "Größe" in intent.description
    assert task_id_for_issue(42, 17) == TASK_ID == intent.task_id


def test_issue_labelled_aiworker_later_creates_the_same_task_id() -> None:
    intent = _one("issue_label__aiworker_added")
    assert isinstance(intent, CreateTaskFromIssue)
    assert intent.task_id == task_id_for_issue(42, 19) and intent.priority == "medium"


def test_issue_closed_or_deleted_cancels() -> None:
    assert _one("issues__closed") == CancelTaskForIssue(REPO, 17, TASK_ID, "Gitea issue #17 closed")
    payload = {**load_sample("issues__closed").payload, "action": "deleted"}
    assert isinstance(_one("issues__closed", payload=payload), CancelTaskForIssue)


@pytest.mark.parametrize("action", ["edited", "label_cleared", "assigned", "milestoned", "weird", None])
def test_other_issue_actions_are_ignored(action: str | None) -> None:
    payload = {**load_sample("issues__opened_aiworker").payload, "action": action}
    assert isinstance(_one("issues__opened_aiworker", payload=payload), Ignored)


def test_issue_events_of_pull_requests_are_ignored() -> None:
    sample = load_sample("issues__opened_aiworker")
    payload = copy.deepcopy(sample.payload)
    payload["issue"]["pull_request"] = {"merged": False}
    assert "pull request" in _as(Ignored, _one(sample, payload=payload)).reason


def test_labels_are_matched_case_insensitively_and_tolerate_strings() -> None:
    sample = load_sample("issues__opened_unlabelled")
    payload = copy.deepcopy(sample.payload)
    payload["issue"]["labels"] = ["AIWorker", {"name": "Priority/Urgent"}, 5, {"name": None}]
    intent = _one(sample, payload=payload)
    assert isinstance(intent, CreateTaskFromIssue) and intent.priority == "urgent"


def test_priority_from_labels() -> None:
    assert priority_from_labels(()) == "medium"
    assert priority_from_labels(("priority/low",)) == "low"
    assert priority_from_labels(("priority/low", "priority/high")) == "high"
    assert priority_from_labels(("priority/critical",)) == "medium"


def test_title_is_truncated_and_defaulted() -> None:
    sample = load_sample("issues__opened_aiworker")
    payload = copy.deepcopy(sample.payload)
    payload["issue"]["title"] = "x" * 400
    payload["issue"]["body"] = ""
    intent = _one(sample, payload=payload)
    assert isinstance(intent, CreateTaskFromIssue) and len(intent.title) == 255 and intent.description is None
    payload["issue"]["title"] = "   "
    assert _as(CreateTaskFromIssue, _one(sample, payload=payload)).title == "Gitea issue #17"


def test_pull_request_opened() -> None:
    assert _one("pull_request__opened") == PullRequestOpened(
        REPO, 23, "https://git.acme.dev/acme/webshop/pulls/23", BRANCH, "main",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4", "Fix coupon total with free shipping", PR_HINT,
    )  # fmt: skip
    payload = {**load_sample("pull_request__opened").payload, "action": "reopened"}
    assert isinstance(_one("pull_request__opened", payload=payload), PullRequestOpened)


def test_pull_request_closed_merged_and_unmerged() -> None:
    merged, unmerged = _one("pull_request__closed_merged"), _one("pull_request__closed_unmerged")
    assert isinstance(merged, PullRequestClosed) and merged.merged
    assert merged.merge_commit_sha == "1d2c3b4a59687f6e5d4c3b2a1908f7e6d5c4b3a2"
    assert isinstance(unmerged, PullRequestClosed) and not unmerged.merged and unmerged.merge_commit_sha is None
    assert unmerged.task_hint == PR_HINT


def test_pull_request_whose_branch_is_gone_is_found_by_number() -> None:
    sample = load_sample("pull_request__closed_unmerged")
    payload = copy.deepcopy(sample.payload)
    payload["pull_request"]["head"]["ref"] = "refs/pull/23/head"
    intent = _one(sample, payload=payload)
    assert isinstance(intent, PullRequestClosed)
    assert intent.head_branch is None and intent.task_hint == TaskHint(None, 23, None)


def test_reviews() -> None:
    approved, rejected = _one("pull_request_review_approved"), _one("pull_request_review_rejected")
    assert approved == ReviewSubmitted(REPO, 23, BRANCH, True, "bob", "Looks good, thanks!", PR_HINT)
    assert isinstance(rejected, ReviewSubmitted) and not rejected.approved
    # grouped names, and the generic type with review.type
    assert _one("pull_request_review_approved", "pull_request_approved") == approved
    assert _one("pull_request_review_rejected", "pull_request") == rejected
    assert isinstance(_one("pull_request_review_comment", "pull_request"), Ignored)
    payload = {**load_sample("pull_request_review_approved").payload, "action": "opened"}
    assert isinstance(_one("pull_request_review_approved", payload=payload), Ignored)


@pytest.mark.parametrize(
    ("sample", "header"),
    [
        ("pull_request_review_rejected", "pull_request_review_approved"),  # issue 11: the verdict from a header
        ("pull_request_review_rejected", "pull_request_approved"),
        ("pull_request_review_approved", "pull_request_review_rejected"),
        ("pull_request_review_comment", "pull_request_review_approved"),
        ("pull_request_review_approved", "pull_request_review_comment"),
    ],
)
def test_a_header_naming_another_verdict_than_the_signed_payload_is_a_contradiction(sample: str, header: str) -> None:
    intent = _one(sample, header)
    assert isinstance(intent, Contradicted), intent
    assert "review.type" in intent.reason and header in intent.reason


def test_the_verdict_is_only_ever_the_payloads() -> None:
    payload = load_sample("pull_request_review_approved").payload
    del payload["review"]["type"]
    assert isinstance(_one("pull_request_review_approved", payload=payload), Ignored)  # a header alone approves nothing
    payload["review"]["type"] = "pull_request_review_approved"
    assert isinstance(_one("pull_request_review_rejected", "pull_request", payload=payload), ReviewSubmitted)


def test_repository_fields_naming_two_repositories_are_a_contradiction() -> None:
    payload = load_sample("pull_request_review_approved").payload
    payload["repository"] = {"id": 1, "owner": {"login": "evil"}, "full_name": "victim/shop"}
    assert isinstance(_one("pull_request_review_approved", payload=payload), Contradicted)


def test_branches_and_pushes() -> None:
    created = _one("create__branch")
    assert isinstance(created, BranchCreated) and created.branch == BRANCH
    assert created.task_hint == TaskHint(BRANCH, None, TASK_ID)
    pushed = _one("push__new_branch")
    assert isinstance(pushed, Pushed) and pushed.created and not pushed.deleted
    assert pushed.before == "0" * 40 and pushed.total_commits == 2 and len(pushed.commits) == 2
    main = _one("push__main")
    assert isinstance(main, Pushed) and not main.created and main.task_hint.task_id is None
    tag_push = {**load_sample("push__main").payload, "ref": "refs/tags/v1"}
    assert isinstance(_one("push__main", payload=tag_push), Ignored)


def test_status_and_workflows() -> None:
    status = _one("status__success")
    assert isinstance(status, CommitStatus) and status.state == "success" and status.context
    run, job = _one("workflow_run__completed"), _one("workflow_job__completed")
    assert isinstance(run, WorkflowRun) and run.kind == "run" and run.conclusion == "success"
    assert run.name == "ci" and run.task_hint.task_id == TASK_ID
    assert isinstance(job, WorkflowRun) and job.kind == "job" and job.conclusion == "failure"


@pytest.mark.parametrize(
    ("branch", "task_id"),
    [
        (f"task/{TASK_ID}", TASK_ID),
        (f"refs/heads/task/{TASK_ID}", TASK_ID),
        (f"task/{TASK_ID}-fix-coupon", TASK_ID),
        ("task/T-1234", "T-1234"),
        ("task/", None),
        ("task/" + "x" * 37, None),
        ("feature/login", None),
        ("main", None),
        (None, None),
        ("task/a b", None),
    ],
)
def test_task_id_from_branch(branch: str | None, task_id: str | None) -> None:
    assert task_id_from_branch(branch) == task_id


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_without_repository_is_ignored(sample: Sample) -> None:
    payload = {k: v for k, v in sample.payload.items() if k != "repository"}
    intent = _one(sample, payload=payload)
    assert isinstance(intent, Ignored)


def test_repository_found_by_id_or_name() -> None:
    sample = load_sample("pull_request__opened")
    payload = {**sample.payload, "repository": {"id": 42}}
    assert _as(PullRequestOpened, _one(sample, payload=payload)).repo == RepoRef(42, None, None, None)
    payload = {**sample.payload, "repository": {"full_name": "acme/webshop"}}
    by_name = _as(PullRequestOpened, _one(sample, payload=payload))
    assert by_name.repo == RepoRef(None, "acme", "webshop", "acme/webshop")
    issue = load_sample("issues__opened_aiworker")
    no_id = _one(issue, payload={**issue.payload, "repository": {"full_name": "a/b"}})
    assert "no id" in _as(Ignored, no_id).reason


def test_unknown_and_empty_event_types() -> None:
    assert map_delivery("", {}) == [Ignored("", "unknown event type ''")]
    assert map_delivery("Something_New", {"repository": {"id": 1}}) == [
        Ignored("something_new", "unknown event type 'something_new'")
    ]
    assert isinstance(map_delivery("push", [1, 2])[0], Ignored)  # type: ignore[arg-type]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
EVENT_TYPES = st.sampled_from(sorted({s.event_type for s in SAMPLES} | {"pull_request_approved", "", "x"}))


@settings(max_examples=300)
@given(event_type=EVENT_TYPES, payload=st.dictionaries(st.text(max_size=12), JSON, max_size=6))
def test_random_payloads_never_crash(event_type: str, payload: dict[str, Any]) -> None:
    for intent in map_delivery(event_type, payload):
        assert isinstance(intent, Intent)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found += _paths(child, (*prefix, key))
    return found


@settings(max_examples=500)
@given(data=st.data(), sample=st.sampled_from(SAMPLES), replacement=JSON, delete=st.booleans())
def test_mutated_samples_never_crash(data: st.DataObject, sample: Sample, replacement: Any, delete: bool) -> None:
    payload = json.loads(sample.payload_bytes)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(payload)
        if not paths:
            break
        *parents, last = data.draw(st.sampled_from(paths))
        target = payload
        for key in parents:
            target = target[key]
        if delete and isinstance(target, dict):
            del target[last]
        else:
            target[last] = copy.deepcopy(replacement)
    for intent in map_delivery(sample.event_type, payload):
        assert isinstance(intent, Intent)


def test_an_issue_body_is_cut_to_what_the_description_column_holds() -> None:
    from app.event_base import TEXT_BYTES

    payload = json.loads(load_sample("issues__opened_aiworker").payload_bytes)
    payload["issue"]["body"] = "ü" * 1_000_000
    [intent] = map_delivery("issues", payload)
    assert isinstance(intent, CreateTaskFromIssue) and intent.description is not None
    assert len(intent.description.encode()) == TEXT_BYTES - 1 and intent.description == "ü" * (TEXT_BYTES // 2)
