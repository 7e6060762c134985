"""The deployment machine: every (status, event) pair, timing, and properties over event sequences."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.agent_events import TaskStarted
from app.control_events import DeploymentEvent
from streams.machines import Changed, Refused, Transition, Unchanged, naive_utc
from streams.machines.deployment import STATES, DeploymentRow, apply, create

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=95)
KINDS = ("requested", "started", "succeeded", "failed", "rolled_back")


def n(moment: datetime) -> datetime:
    return naive_utc(moment)


def event(kind: str, time: datetime = LATER, **fields: Any) -> DeploymentEvent:
    base: dict[str, Any] = {"deployment_id": "d1", "project_id": "p1", "environment": "staging"}
    return DeploymentEvent(type=f"deployment.{kind}", id=f"e-{kind}", time=time, **{**base, **fields})


def deployment_in(status: str) -> DeploymentRow:
    row = DeploymentRow(id="d1", project_id="p1", environment="staging", task_group_id="g1", status=status,
                        created_at=n(T0))  # fmt: skip
    if status != "pending":
        row = replace(row, started_at=n(T0))
    if status in ("completed", "failed", "rolled_back"):
        row = replace(row, completed_at=n(T0 + timedelta(seconds=10)), duration_seconds=10)
    return row


# One entry per status in STATES order (pending in_progress completed failed rolled_back), then the
# outcome for a deployment never seen: a status = Changed with a transition to it; U; R.
EXPECTED = {
    "requested":   "U R R R R pending",
    "started":     "in_progress U R R R in_progress",
    "succeeded":   "completed completed U R R completed",
    "failed":      "failed failed R U R failed",
    "rolled_back": "R R rolled_back R U R",
}  # fmt: skip


@pytest.mark.parametrize("status", [*STATES, None])
@pytest.mark.parametrize("kind", KINDS)
def test_every_status_and_event(status: str | None, kind: str) -> None:
    row = deployment_in(status) if status else None
    expected = EXPECTED[kind].split()[STATES.index(status) if status else len(STATES)]
    outcome = apply(row, event(kind))
    if expected == "U":
        assert isinstance(outcome, Unchanged) and "d1" in outcome.reason
    elif expected == "R":
        assert isinstance(outcome, Refused) and "d1" in outcome.reason
        if status:
            assert status in outcome.reason
    else:
        assert isinstance(outcome, Changed), outcome
        assert outcome.row.status == expected
        assert outcome.transitions == (Transition("deployment", "d1", status, expected),)
        assert isinstance(apply(outcome.row, event(kind)), Unchanged), "the same event twice changes nothing"


def test_other_events_do_not_change_deployments() -> None:
    started = TaskStarted(type="task.started", id="x", time=T0, agent_id="a", task_id="t")
    assert isinstance(apply(deployment_in("pending"), started), Unchanged)
    assert isinstance(apply(None, started), Unchanged)


def test_an_event_for_another_environment_or_project_is_refused() -> None:
    for fields in ({"environment": "production"}, {"project_id": "p2"}):
        outcome = apply(deployment_in("in_progress"), event("succeeded", **fields))
        assert isinstance(outcome, Refused) and "staging of project p1" in outcome.reason


def test_requested_keeps_every_column() -> None:
    requested = event(
        "requested", time=T0, task_group_id="g1", deployment_type="automatic", branch="staging", commit_hash="abc",
        k8s_namespace="ns", k8s_deployment_name="app", image_tag="v1", triggered_by="u1",
    )  # fmt: skip
    row = create(requested)
    assert row == DeploymentRow(
        id="d1", project_id="p1", environment="staging", task_group_id="g1", deployment_type="automatic",
        branch="staging", commit_hash="abc", k8s_namespace="ns", k8s_deployment_name="app", image_tag="v1",
        status="pending", triggered_by="u1", created_at=n(T0),
    )  # fmt: skip


def test_timing_of_a_success() -> None:
    pending = create(event("requested", time=T0, branch="main"))
    started = apply(pending, event("started", time=T0 + timedelta(seconds=5)))
    assert isinstance(started, Changed) and started.row.started_at == n(T0 + timedelta(seconds=5))
    again = apply(started.row, event("started", time=T0 + timedelta(seconds=50)))
    assert isinstance(again, Unchanged)
    done = apply(started.row, event("succeeded", time=T0 + timedelta(seconds=100, microseconds=900), url="https://x"))
    assert isinstance(done, Changed)
    row = done.row
    assert (row.completed_at, row.duration_seconds, row.url, row.branch) == (
        n(LATER + timedelta(seconds=5)),
        95,
        "https://x",
        "main",
    )
    rolled = apply(row, event("rolled_back", time=T0 + timedelta(hours=1)))
    assert isinstance(rolled, Changed)
    assert (rolled.row.started_at, rolled.row.completed_at, rolled.row.duration_seconds) == (
        row.started_at, row.completed_at, 95,
    )  # fmt: skip


def test_a_failure_keeps_its_error_and_logs() -> None:
    running = create(event("started", time=T0))
    failed = apply(running, event("failed", error_message="ImagePullBackOff", logs="...pull failed"))
    assert isinstance(failed, Changed)
    row = failed.row
    assert (row.error_message, row.logs, row.completed_at, row.duration_seconds) == (
        "ImagePullBackOff", "...pull failed", n(LATER), 95,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["succeeded", "failed"])
def test_created_without_a_start_has_no_duration(kind: str) -> None:
    row = create(event(kind))
    assert (row.status, row.started_at, row.completed_at, row.duration_seconds, row.created_at) == (
        "completed" if kind == "succeeded" else "failed", None, n(LATER), None, n(LATER),
    )  # fmt: skip
    skipped = apply(deployment_in("pending"), event(kind))
    assert isinstance(skipped, Changed) and skipped.row.duration_seconds is None


def test_created_by_started() -> None:
    row = create(event("started"))
    assert (row.status, row.started_at, row.completed_at) == ("in_progress", n(LATER), None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(KINDS), max_size=15))
def test_any_sequence_stays_in_the_enum_and_repeats_change_nothing(kinds: list[str]) -> None:
    row: DeploymentRow | None = None
    for step, kind in enumerate(kinds):
        this = event(kind, time=T0 + timedelta(seconds=step))
        outcome = apply(row, this)
        if isinstance(outcome, Changed):
            assert outcome.row.status in STATES
            (transition,) = outcome.transitions
            assert (transition.from_state, transition.to_state) == (row.status if row else None, outcome.row.status)
            row = outcome.row
            assert not isinstance(apply(row, this), Changed)
        if row is not None and row.duration_seconds is not None:
            assert row.duration_seconds >= 0 and row.started_at is not None
