"""The task machine: every (state, event) pair, timestamps, and properties over event sequences."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from app.agent_events import AgentHeartbeat, TaskQuestionAsked, TaskReadyForReview, TaskStarted
from app.control_events import TaskApproved, TaskCancelled, TaskCreated, TaskQuestionAnswered
from streams.machines import Changed, Outcome, Reclaim, Refused, Transition, Unchanged, naive_utc
from streams.machines.agent import STATES as AGENT_STATES
from streams.machines.domain import (
    GiteaIssueClosed,
    GiteaIssueOpened,
    GiteaPullRequestClosed,
    GiteaPullRequestOpened,
    GiteaReview,
    Input,
    TaskDeployed,
)
from streams.machines.task import STATES, TaskRow, apply
from streams.machines.task_assignee import holder_to_ask, not_assignee

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)
PR = {"branch_name": "task/t1", "pr_number": 7, "pr_url": "https://gitea/p/pulls/7"}
PREVIEW_URL = "https://t1.preview.example"


def n(moment: datetime) -> datetime:
    return naive_utc(moment)


def at(event: Input, moment: datetime) -> Input:
    """`event` at another time."""
    if isinstance(event, BaseModel):
        return event.model_copy(update={"time": moment})
    return replace(event, time=moment)


def task_in(state: str) -> TaskRow:
    """A plausible task row in `state`, as the machine would have left it."""
    row = TaskRow(id="t1", project_id="p1", title="Do it", state=state, created_at=n(T0), updated_at=n(T0))
    if state == "backlog":
        return row
    row = replace(row, assigned_agent_id="a1", assigned_at=n(T0), started_at=n(T0))
    if state in ("in_progress", "needs_input", "cancelled"):
        return row
    row = replace(row, **PR, preview_namespace="preview-t1", preview_url=PREVIEW_URL)
    if state in ("staging", "production"):
        row = replace(row, deployed_staging_at=n(T0))
    if state == "production":
        row = replace(row, deployed_production_at=n(T0), completed_at=n(T0), actual_duration_minutes=0)
    return row


E = {"id": "e1", "time": LATER}
EVENTS: dict[str, Callable[[], Input]] = {
    "created": lambda: TaskCreated(type="task.created", task_id="t1", project_id="p1", title="Do it", **E),
    "issue_opened": lambda: GiteaIssueOpened(task_id="t1", project_id="p1", title="Do it", issue_number=3, **E),
    "started": lambda: TaskStarted(type="task.started", agent_id="a1", task_id="t1", **E),
    "started_other": lambda: TaskStarted(type="task.started", agent_id="a2", task_id="t1", **E),
    "reclaim": lambda: TaskStarted(type="task.started", agent_id="a2", task_id="t1", **E),
    "question": lambda: TaskQuestionAsked(
        type="task.question_asked", agent_id="a1", task_id="t1", question_id="q1", question="Which DB?", **E
    ),
    "question_other": lambda: TaskQuestionAsked(
        type="task.question_asked", agent_id="a2", task_id="t1", question_id="q2", question="Which DB?", **E
    ),
    "answered_last": lambda: TaskQuestionAnswered(
        type="task.question_answered", question_id="q1", task_id="t1", response="MySQL", **E
    ),
    "answered_more": lambda: TaskQuestionAnswered(
        type="task.question_answered", question_id="q1", task_id="t1", response="MySQL", **E
    ),
    "ready": lambda: TaskReadyForReview(
        type="task.ready_for_review",
        agent_id="a1",
        task_id="t1",
        **PR,
        preview_namespace="preview-t1",
        preview_url=PREVIEW_URL,
        **E,
    ),
    "ready_other": lambda: TaskReadyForReview(type="task.ready_for_review", agent_id="a2", task_id="t1", **PR, **E),
    "approved": lambda: TaskApproved(type="task.approved", task_id="t1", **E),
    "review_ok": lambda: GiteaReview(task_id="t1", approved=True, pr_number=7, **E),
    "review_no": lambda: GiteaReview(task_id="t1", approved=False, pr_number=7, **E),
    "cancelled": lambda: TaskCancelled(type="task.cancelled", task_id="t1", reason="not needed", **E),
    "pr_closed": lambda: GiteaPullRequestClosed(task_id="t1", merged=False, pr_number=7, **E),
    "pr_merged": lambda: GiteaPullRequestClosed(task_id="t1", merged=True, pr_number=7, **E),
    "issue_closed": lambda: GiteaIssueClosed(task_id="t1", issue_number=3, **E),
    "pr_opened": lambda: GiteaPullRequestOpened(task_id="t1", **PR, **E),
    "preview": lambda: TaskDeployed(task_id="t1", environment="preview", deployment_id="d1", url=PREVIEW_URL, **E),
    "staging": lambda: TaskDeployed(task_id="t1", environment="staging", deployment_id="d2", **E),
    "production": lambda: TaskDeployed(task_id="t1", environment="production", deployment_id="d3", **E),
    "heartbeat": lambda: AgentHeartbeat(type="agent.heartbeat", agent_id="a1", status="idle", **E),
}
PENDING = {"answered_last": 0, "answered_more": 1}
HOLDER = {"started": "busy", "started_other": "busy", "reclaim": "offline"}
"""The status of the agent holding the task when another agent starts it: busy (refused), offline (a reclaim)."""

# Expected outcome per event kind, one entry per state in STATES order:
# a state name = Changed with a transition to it; "=" = Changed without transition (columns only);
# "~" = a reclaim (a transition to the same state, reclaimed from a1); "U" = Unchanged; "R" = Refused.
CANCEL = "cancelled cancelled cancelled cancelled cancelled cancelled R U"
EXPECTED = {
    #               backlog      in_progress    needs_input  ready_to_test approved staging  production cancelled
    "created":      "U U U U U U U U",
    "issue_opened": "U U U U U U U U",
    "started":       "in_progress U U R R R R R",
    "started_other": "in_progress R R R R R R R",
    "reclaim":       "in_progress ~ ~ R R R R R",
    "question":      "R needs_input U R R R R R",
    "question_other": "R R R R R R R R",
    "answered_last": "U U in_progress U U U U U",
    "answered_more": "U U U U U U U U",
    "ready":         "R ready_to_test R U R R R R",
    "ready_other":   "R R R R R R R R",
    "approved":      "R R R approved U R R R",
    "review_ok":     "R R R approved U R R R",
    "review_no":     "R U R in_progress R R R R",
    "cancelled": CANCEL,
    "pr_closed": CANCEL,
    "issue_closed":  "cancelled cancelled cancelled cancelled U U U U",
    "pr_merged":     "U U U U U U U U",
    "pr_opened":     "= = = U U U U =",
    "preview":       "R ready_to_test = = = = = U",
    "staging":       "R R R R staging U U U",
    "production":    "R R R R R production U U",
    "heartbeat":     "U U U U U U U U",
}  # fmt: skip


def run(row: TaskRow | None, kind: str, event: Input | None = None) -> Outcome[TaskRow]:
    return apply(row, event or EVENTS[kind](), pending_questions=PENDING.get(kind), assignee_status=HOLDER.get(kind))


def test_the_table_covers_every_state_and_event() -> None:
    assert set(EXPECTED) == set(EVENTS)
    assert all(len(line.split()) == len(STATES) for line in EXPECTED.values())


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_every_state_and_event(state: str, kind: str) -> None:
    row = task_in(state)
    expected = EXPECTED[kind].split()[STATES.index(state)]
    outcome = run(row, kind)
    if expected == "U":
        assert isinstance(outcome, Unchanged), outcome
        assert outcome.reason
    elif expected == "R":
        assert isinstance(outcome, Refused), outcome
        assert "t1" in outcome.reason and (state in outcome.reason or "agent" in outcome.reason)
    else:
        assert isinstance(outcome, Changed), outcome
        assert outcome.row.updated_at == n(LATER)
        if expected == "=":
            assert outcome.row.state == state and outcome.transitions == ()
        elif expected == "~":
            assert outcome.row.state == state and outcome.row.assigned_agent_id == "a2"
            assert outcome.transitions == (Transition("task", "t1", state, state, Reclaim("a1", "offline")),)
        else:
            assert outcome.row.state == expected
            assert outcome.transitions == (Transition("task", "t1", state, expected),)
        assert isinstance(run(outcome.row, kind), Unchanged), "the same event twice changes nothing"


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_a_missing_task(kind: str) -> None:
    outcome = run(None, kind)
    if kind in ("created", "issue_opened"):
        assert isinstance(outcome, Changed)
        assert outcome.row.state == "backlog" and outcome.row.created_at == outcome.row.updated_at == n(LATER)
        assert outcome.transitions == (Transition("task", "t1", None, "backlog"),)
        assert isinstance(run(outcome.row, kind), Unchanged)
    elif kind == "heartbeat":
        assert isinstance(outcome, Unchanged)
    else:
        assert isinstance(outcome, Refused) and "'t1'" in outcome.reason and "does not exist" in outcome.reason


def test_created_fields() -> None:
    event = TaskCreated(
        type="task.created", id="t9", time=T0, project_id="p1", title="T", description="d", priority="urgent",
        estimated_complexity="complex",
    )  # fmt: skip
    outcome = apply(None, event)
    assert isinstance(outcome, Changed)
    assert (outcome.row.id, outcome.row.priority, outcome.row.estimated_complexity) == ("t9", "urgent", "complex")
    issue = run(None, "issue_opened")
    assert isinstance(issue, Changed) and issue.row.gitea_issue_number == 3


def test_start_sets_assignment() -> None:
    first = run(task_in("backlog"), "started")
    assert isinstance(first, Changed)
    assert (first.row.assigned_agent_id, first.row.assigned_at, first.row.started_at) == ("a1", n(LATER), n(LATER))


@pytest.mark.parametrize("state", ["in_progress", "needs_input"])
@pytest.mark.parametrize("status", AGENT_STATES)
def test_another_agent_takes_a_started_task_only_from_an_agent_offline_or_in_error(state: str, status: str) -> None:
    row = task_in(state)
    later = LATER + timedelta(minutes=30)
    event = TaskStarted(type="task.started", id="e2", time=later, agent_id="a2", task_id="t1")
    assert holder_to_ask(row, event) == "a1"
    outcome = apply(row, event, assignee_status=status)
    if status not in ("offline", "error"):
        assert isinstance(outcome, Refused)
        assert outcome.reason == (
            f"task t1 is {state} with agent a1, which is {status}; agent a2 may take it over only once agent a1 is "
            "offline or error"
        )
        return
    assert isinstance(outcome, Changed)
    assert (outcome.row.state, outcome.row.assigned_agent_id, outcome.row.assigned_at) == (state, "a2", n(later))
    assert outcome.row.started_at == n(T0)  # the task's work began with its first agent
    assert outcome.transitions == (Transition("task", "t1", state, state, Reclaim("a1", status)),)
    assert isinstance(apply(outcome.row, event, assignee_status="busy"), Unchanged), "the same reclaim twice"
    assert holder_to_ask(outcome.row, event) is None


def test_the_holders_status_is_required_only_to_take_over() -> None:
    event = EVENTS["started_other"]()
    with pytest.raises(TypeError):
        apply(task_in("in_progress"), event)
    for row in (task_in("backlog"), task_in("approved"), replace(task_in("in_progress"), assigned_agent_id="a2")):
        assert holder_to_ask(row, event) is None
        apply(row, event)  # no TypeError: nobody else holds the task (or the state refuses first)
    assert holder_to_ask(task_in("in_progress"), EVENTS["question_other"]()) is None


def test_a_started_task_without_an_agent_row() -> None:
    # assigned_agent_id is NULL once its agent row is deleted (ON DELETE SET NULL): nobody holds the task.
    orphan = replace(task_in("in_progress"), assigned_agent_id=None)
    taken = apply(orphan, EVENTS["started_other"]())
    assert isinstance(taken, Changed) and taken.row.assigned_agent_id == "a2"
    assert taken.transitions == (Transition("task", "t1", "in_progress", "in_progress"),)
    for kind in ("question", "ready"):
        refused = run(orphan, kind)
        assert isinstance(refused, Refused), kind
        assert "task t1 is in_progress with no assigned agent" in refused.reason and "agent a1" in refused.reason


def test_event_times_in_other_offsets_are_stored_as_utc() -> None:
    event = TaskStarted(
        type="task.started", id="e", time=datetime(2025, 3, 1, 12, 0, 30, tzinfo=timezone(timedelta(hours=2))),
        agent_id="a1", task_id="t1",
    )  # fmt: skip
    outcome = apply(task_in("backlog"), event)
    assert isinstance(outcome, Changed) and outcome.row.started_at == datetime(2025, 3, 1, 10, 0, 30)


@pytest.mark.parametrize("state", ["in_progress", "needs_input", "ready_to_test"])
@pytest.mark.parametrize("kind", ["question_other", "ready_other"])
def test_another_agent_cannot_ask_or_finish(state: str, kind: str) -> None:
    outcome = run(task_in(state), kind)
    assert isinstance(outcome, Refused)
    what = EVENTS[kind]().type
    assert outcome.reason == (
        f"agent a2 is not the assignee of task t1 (agent a1 is); {what} about a task comes only from its assignee"
    )


def test_not_assignee() -> None:
    assert not_assignee("t1", "a1", "a1", "log") is None
    assert not_assignee("t1", None, "a2", "log") is None  # nobody holds it (yet)
    assert not_assignee("t1", "a1", "a2", "a log line") == (
        "agent a2 is not the assignee of task t1 (agent a1 is); a log line about a task comes only from its assignee"
    )


def test_answer_needs_the_pending_count() -> None:
    with pytest.raises(TypeError):
        apply(task_in("needs_input"), EVENTS["answered_last"]())
    outcome = run(task_in("needs_input"), "answered_more")
    assert isinstance(outcome, Unchanged) and "1 pending" in outcome.reason


def test_ready_for_review_keeps_what_the_event_does_not_name() -> None:
    row = replace(task_in("in_progress"), branch_name="task/t1", pr_number=5)
    event = TaskReadyForReview(type="task.ready_for_review", agent_id="a1", task_id="t1", pr_url="u", **E)
    outcome = apply(row, event)
    assert isinstance(outcome, Changed)
    assert (outcome.row.branch_name, outcome.row.pr_number, outcome.row.pr_url) == ("task/t1", 5, "u")


def test_preview_sets_url_and_time() -> None:
    outcome = run(task_in("in_progress"), "preview")
    assert isinstance(outcome, Changed)
    assert (outcome.row.preview_url, outcome.row.preview_deployed_at) == (PREVIEW_URL, n(LATER))


def test_staging_then_production_timestamps_and_duration() -> None:
    row = replace(task_in("approved"), started_at=n(T0))
    staged = apply(row, TaskDeployed(id="s", time=T0 + timedelta(hours=2), task_id="t1", environment="staging",
                                     deployment_id="d2"))  # fmt: skip
    assert isinstance(staged, Changed) and staged.row.deployed_staging_at == n(T0 + timedelta(hours=2))
    done_at = T0 + timedelta(hours=3, minutes=5, seconds=59)
    shipped = apply(staged.row, TaskDeployed(id="p", time=done_at, task_id="t1", environment="production",
                                             deployment_id="d3"))  # fmt: skip
    assert isinstance(shipped, Changed)
    assert shipped.row.completed_at == shipped.row.deployed_production_at == n(done_at)
    assert shipped.row.actual_duration_minutes == 185
    assert shipped.row.deployed_staging_at == n(T0 + timedelta(hours=2))


def test_production_without_start_has_no_duration() -> None:
    outcome = run(replace(task_in("staging"), started_at=None), "production")
    assert isinstance(outcome, Changed) and outcome.row.actual_duration_minutes is None


def test_other_prs_and_issues_do_not_cancel() -> None:
    row = replace(task_in("ready_to_test"), gitea_issue_number=3)
    other_pr = apply(row, GiteaPullRequestClosed(task_id="t1", merged=False, pr_number=8, **E))
    assert isinstance(other_pr, Unchanged) and "#8" in other_pr.reason
    other_issue = apply(row, GiteaIssueClosed(task_id="t1", issue_number=4, **E))
    assert isinstance(other_issue, Unchanged) and "#4" in other_issue.reason


def test_refusal_reasons_are_actionable() -> None:
    outcome = run(task_in("approved"), "started")
    assert isinstance(outcome, Refused)
    assert outcome.reason == "task t1 is approved; task.started needs a backlog task"


LIFE = ["created", "started", "question", "answered_last", "ready", "preview", "review_no", "ready", "review_ok",
        "staging", "production"]  # fmt: skip


def test_a_whole_life_replays_to_the_same_row() -> None:
    def fold() -> TaskRow | None:
        row: TaskRow | None = None
        for step, kind in enumerate(LIFE):
            event = at(EVENTS[kind](), T0 + timedelta(minutes=step))
            outcome = run(row, kind, event)
            if isinstance(outcome, Changed):
                row = outcome.row
        return row

    first, second = fold(), fold()
    assert first == second and first is not None
    assert first.state == "production" and first.actual_duration_minutes == 9


KINDS = sorted(EVENTS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(KINDS), max_size=25))
def test_any_sequence_stays_in_the_enum_and_repeats_change_nothing(kinds: list[str]) -> None:
    row: TaskRow | None = None
    for step, kind in enumerate(kinds):
        event = at(EVENTS[kind](), T0 + timedelta(minutes=step))
        outcome = run(row, kind, event)
        if isinstance(outcome, Changed):
            assert outcome.row.state in STATES
            for transition in outcome.transitions:
                assert transition.from_state == (row.state if row else None)
                assert transition.to_state == outcome.row.state
            row = outcome.row
            assert not isinstance(run(row, kind, event), Changed)
        if row is not None:
            assert row.state in STATES
