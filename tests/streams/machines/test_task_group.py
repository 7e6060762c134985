"""The task group machine, and the tasks a completed deployment carries along."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.control_events import DeploymentEvent, TaskGroupCreated
from streams.machines import Changed, Refused, Transition, Unchanged, naive_utc
from streams.machines import deployment as deployment_machine
from streams.machines import task as task_machine
from streams.machines.domain import Input, TaskDeployed
from streams.machines.task_group import STATES, TASK_TARGET, TaskGroupRow, apply, tasks_moved_by

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)


def n(moment: datetime) -> datetime:
    return naive_utc(moment)


def deploy(kind: str, environment: str, time: datetime = LATER, **fields: Any) -> DeploymentEvent:
    base: dict[str, Any] = {"deployment_id": "d1", "project_id": "p1", "environment": environment, "task_group_id": "g1"}
    return DeploymentEvent(type=f"deployment.{kind}", id=f"e-{kind}", time=time, **{**base, **fields})


def group_in(status: str) -> TaskGroupRow:
    return TaskGroupRow(id="g1", project_id="p1", task_ids=["t1", "t2"], status=status, created_at=n(T0),
                        updated_at=n(T0))  # fmt: skip


CREATED = TaskGroupCreated(type="task_group.created", id="g1", time=LATER, project_id="p1", task_ids=["t1", "t2"])
EVENTS: dict[str, Input] = {
    "created": CREATED,
    "staging_ok": deploy("succeeded", "staging"),
    "production_ok": deploy("succeeded", "production"),
    "production_back": deploy("rolled_back", "production"),
    "staging_back": deploy("rolled_back", "staging"),
    "preview_ok": deploy("succeeded", "preview", task_group_id=None, task_id="t1"),
    "staging_started": deploy("started", "staging"),
    "production_failed": deploy("failed", "production"),
    "other_group": deploy("succeeded", "staging", task_group_id="g2"),
}
# One entry per status in STATES order (pending staging production rolled_back), then for a group
# that does not exist: a status = Changed with a transition to it; U = Unchanged; R = Refused.
EXPECTED = {
    "created":           "U U U U pending",
    "staging_ok":        "staging U U staging R",
    "production_ok":     "R production U production R",
    "production_back":   "R R rolled_back U R",
    "staging_back":      "U U U U R",
    "preview_ok":        "U U U U R",
    "staging_started":   "U U U U R",
    "production_failed": "U U U U R",
    "other_group":       "U U U U R",
}  # fmt: skip


def test_the_table_covers_every_event() -> None:
    assert set(EXPECTED) == set(EVENTS)


@pytest.mark.parametrize("status", [*STATES, None])
@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_every_status_and_event(status: str | None, kind: str) -> None:
    row = group_in(status) if status else None
    expected = EXPECTED[kind].split()[STATES.index(status) if status else len(STATES)]
    outcome = apply(row, EVENTS[kind])
    if expected == "U":
        assert isinstance(outcome, Unchanged) and outcome.reason
    elif expected == "R":
        assert isinstance(outcome, Refused) and "task group" in outcome.reason
        if status:
            assert status in outcome.reason
    else:
        assert isinstance(outcome, Changed), outcome
        assert outcome.row.status == expected and outcome.row.updated_at == n(LATER)
        assert outcome.transitions == (Transition("task_group", "g1", status, expected),)
        assert isinstance(apply(outcome.row, EVENTS[kind]), Unchanged), "the same event twice changes nothing"


def test_timestamps_and_rollback_availability() -> None:
    created = apply(None, replace_time(CREATED, T0))
    assert isinstance(created, Changed) and created.row.created_at == n(T0) and created.row.task_ids == ["t1", "t2"]
    staged = apply(created.row, deploy("succeeded", "staging", time=T0 + timedelta(hours=1)))
    assert isinstance(staged, Changed) and staged.row.staging_deployed_at == n(T0 + timedelta(hours=1))
    shipped = apply(staged.row, deploy("succeeded", "production", time=T0 + timedelta(hours=2)))
    assert isinstance(shipped, Changed)
    assert (shipped.row.production_deployed_at, shipped.row.production_rollback_available) == (
        n(T0 + timedelta(hours=2)), True,
    )  # fmt: skip
    back = apply(shipped.row, deploy("rolled_back", "production", time=T0 + timedelta(hours=3)))
    assert isinstance(back, Changed) and back.row.production_rollback_available is False
    assert back.row.production_deployed_at == n(T0 + timedelta(hours=2))


def replace_time(event: TaskGroupCreated, time: datetime) -> TaskGroupCreated:
    return event.model_copy(update={"time": time})


def completed(environment: str, group_id: str | None = "g1") -> DeploymentEvent:
    return deploy("succeeded", environment, task_group_id=group_id, url="https://u")


def test_a_staging_deployment_moves_every_task_of_its_group_once() -> None:
    event = completed("staging")
    row = deployment_machine.create(event)
    group = replace(group_in("pending"), task_ids=["t1", "t2", "t1"])
    moved = tasks_moved_by(row, event, group)
    assert moved == tuple(
        TaskDeployed(id="e-succeeded", time=LATER, task_id=t, environment="staging", deployment_id="d1", url="https://u")
        for t in ("t1", "t2")
    )
    assert TASK_TARGET["staging"] == "staging"


def test_a_preview_moves_its_task() -> None:
    event = deploy("succeeded", "preview", task_group_id=None, task_id="t7", url="https://p")
    row = deployment_machine.create(event)
    (moved,) = tasks_moved_by(row, event, None)
    assert (moved.task_id, moved.environment, moved.url) == ("t7", "preview", "https://p")
    unnamed = deploy("succeeded", "preview", task_group_id=None)
    assert tasks_moved_by(deployment_machine.create(unnamed), unnamed, None) == ()


@pytest.mark.parametrize("kind", ["requested", "started", "failed"])
def test_only_a_success_moves_tasks(kind: str) -> None:
    event = deploy(kind, "production")
    assert tasks_moved_by(deployment_machine.create(event), event, group_in("staging")) == ()


def test_no_tasks_move_without_the_deployments_group() -> None:
    event = completed("production")
    row = deployment_machine.create(event)
    assert tasks_moved_by(row, event, None) == ()
    assert tasks_moved_by(row, event, replace(group_in("staging"), id="g2")) == ()
    assert tasks_moved_by(replace(row, status="rolled_back"), event, group_in("staging")) == ()


def test_a_group_carries_its_tasks_to_production() -> None:
    tasks = {t: task_machine.TaskRow(id=t, project_id="p1", title=t, state="approved", started_at=n(T0)) for t in ("t1", "t2")}
    group = group_in("pending")
    for environment, hours in (("staging", 1), ("production", 2)):
        event = deploy("succeeded", environment, time=T0 + timedelta(hours=hours), deployment_id=f"d-{environment}")
        outcome = deployment_machine.apply(None, event)
        assert isinstance(outcome, Changed)
        moved_group = apply(group, event)
        assert isinstance(moved_group, Changed)
        group = moved_group.row
        for task_event in tasks_moved_by(outcome.row, event, group):
            moved = task_machine.apply(tasks[task_event.task_id], task_event)
            assert isinstance(moved, Changed) and moved.row.state == TASK_TARGET[environment]
            tasks[task_event.task_id] = moved.row
    assert {t.state for t in tasks.values()} == {"production"} and group.status == "production"
    assert {t.actual_duration_minutes for t in tasks.values()} == {120}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(EVENTS)), max_size=15))
def test_any_sequence_stays_in_the_enum_and_repeats_change_nothing(kinds: list[str]) -> None:
    row: TaskGroupRow | None = None
    for kind in kinds:
        outcome = apply(row, EVENTS[kind])
        if isinstance(outcome, Changed):
            assert outcome.row.status in STATES
            row = outcome.row
            assert not isinstance(apply(row, EVENTS[kind]), Changed)
        if row is not None:
            assert row.status in STATES
