"""The agent machine: every (status, event) pair, the sweeper, and properties over event sequences."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.agent_events import AgentError, AgentHeartbeat, AgentRegistered, AgentStopped, Log, TaskReadyForReview, TaskStarted
from app.control_events import TaskCreated
from streams.machines import Changed, Outcome, Refused, Transition, Unchanged, naive_utc
from streams.machines.agent import STATES, AgentRow, apply, is_stale, mark_offline, stale_event
from streams.machines.domain import AgentStale, Input

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=30)


def n(moment: datetime) -> datetime:
    return naive_utc(moment)


def agent_in(status: str) -> AgentRow:
    row = AgentRow(id="a1", pod_name="pod-1", status=status, last_heartbeat=n(T0), created_at=n(T0), updated_at=n(T0))
    if status == "busy":
        row = replace(row, current_task_id="t1")
    if status == "error":
        row = replace(row, error_message="boom")
    return row


A = {"id": "e1", "time": LATER, "agent_id": "a1"}
EVENTS: dict[str, Callable[[], Input]] = {
    "registered": lambda: AgentRegistered(type="agent.registered", pod_name="pod-1", **A),
    "hb_idle": lambda: AgentHeartbeat(type="agent.heartbeat", status="idle", **A),
    "hb_busy": lambda: AgentHeartbeat(type="agent.heartbeat", status="busy", current_task_id="t1", **A),
    "started": lambda: TaskStarted(type="task.started", task_id="t1", **A),
    "started_t2": lambda: TaskStarted(type="task.started", task_id="t2", **A),
    "ready": lambda: TaskReadyForReview(type="task.ready_for_review", task_id="t1", **A),
    "ready_t2": lambda: TaskReadyForReview(type="task.ready_for_review", task_id="t2", **A),
    "error": lambda: AgentError(type="agent.error", message="boom", **A),
    "stopped": lambda: AgentStopped(type="agent.stopped", **A),
    "stale": lambda: AgentStale(id="s1", time=LATER, agent_id="a1", last_heartbeat=n(T0)),
    "log": lambda: Log(type="log", message="hello", **A),
    "task_created": lambda: TaskCreated(type="task.created", id="e1", time=LATER, project_id="p", title="t"),
}

# One entry per status in STATES order (initializing idle busy error offline): a status = Changed
# with a transition to it; "=" = Changed without transition; "U" = Unchanged; "R" = Refused.
EXPECTED = {
    "registered":   "= initializing initializing initializing initializing",
    "hb_idle":      "idle = idle idle idle",
    "hb_busy":      "busy busy = busy busy",
    "started":      "busy busy U busy busy",
    "started_t2":   "busy busy = busy busy",
    "ready":        "U U idle U U",
    "ready_t2":     "U U U U U",
    "error":        "error error error U error",
    "stopped":      "offline offline offline offline U",
    "stale":        "offline offline offline offline U",
    "log":          "U U U U U",
    "task_created": "U U U U U",
}  # fmt: skip


def test_the_table_covers_every_status_and_event() -> None:
    assert set(EXPECTED) == set(EVENTS)
    assert all(len(line.split()) == len(STATES) for line in EXPECTED.values())


@pytest.mark.parametrize("status", STATES)
@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_every_status_and_event(status: str, kind: str) -> None:
    row = agent_in(status)
    expected = EXPECTED[kind].split()[STATES.index(status)]
    outcome = apply(row, EVENTS[kind]())
    if expected == "U":
        assert isinstance(outcome, Unchanged) and outcome.reason
    elif expected == "R":
        assert isinstance(outcome, Refused) and "a1" in outcome.reason
    else:
        assert isinstance(outcome, Changed), outcome
        assert outcome.row.updated_at == n(LATER)
        if expected == "=":
            assert outcome.row.status == status and outcome.transitions == ()
        else:
            assert outcome.row.status == expected
            assert outcome.transitions == (Transition("agent", "a1", status, expected),)
        assert isinstance(apply(outcome.row, EVENTS[kind]()), Unchanged), "the same event twice changes nothing"


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_an_unregistered_agent(kind: str) -> None:
    outcome = apply(None, EVENTS[kind]())
    if kind == "registered":
        assert isinstance(outcome, Changed)
        assert outcome.transitions == (Transition("agent", "a1", None, "initializing"),)
        assert outcome.row.created_at == outcome.row.last_heartbeat == n(LATER)
        assert isinstance(apply(outcome.row, EVENTS[kind]()), Unchanged)
    elif kind == "task_created":
        assert isinstance(outcome, Unchanged)
    else:
        assert isinstance(outcome, Refused) and "'a1'" in outcome.reason and "register first" in outcome.reason


def test_heartbeats() -> None:
    busy = apply(agent_in("idle"), AgentHeartbeat(type="agent.heartbeat", status="busy", current_task_id="t9", **A))
    assert isinstance(busy, Changed) and (busy.row.current_task_id, busy.row.last_heartbeat) == ("t9", n(LATER))
    unnamed = apply(agent_in("busy"), AgentHeartbeat(type="agent.heartbeat", status="busy", **A))
    assert isinstance(unnamed, Changed) and unnamed.row.current_task_id == "t1" and unnamed.transitions == ()
    idle = apply(agent_in("busy"), AgentHeartbeat(type="agent.heartbeat", status="idle", current_task_id="t1", **A))
    assert isinstance(idle, Changed) and idle.row.current_task_id is None
    old = AgentHeartbeat(type="agent.heartbeat", status="busy", id="old", time=T0 - timedelta(seconds=1), agent_id="a1")
    assert isinstance(apply(agent_in("idle"), old), Unchanged)


def test_reregistration_counts_a_restart() -> None:
    row = replace(agent_in("busy"), restarts_count=2, tasks_completed=4)
    event = AgentRegistered(type="agent.registered", pod_name="pod-2", node_name="n2", capabilities=["py"], **A)
    outcome = apply(row, event)
    assert isinstance(outcome, Changed)
    after = outcome.row
    assert (after.status, after.restarts_count, after.current_task_id, after.tasks_completed) == ("initializing", 3, None, 4)
    assert (after.pod_name, after.node_name, after.capabilities, after.last_heartbeat) == ("pod-2", "n2", ["py"], n(LATER))
    assert isinstance(apply(after, event), Unchanged)


def test_ready_for_review_counts_once() -> None:
    outcome = apply(replace(agent_in("busy"), tasks_completed=4), EVENTS["ready"]())
    assert isinstance(outcome, Changed)
    assert (outcome.row.status, outcome.row.current_task_id, outcome.row.tasks_completed) == ("idle", None, 5)
    assert isinstance(apply(outcome.row, EVENTS["ready"]()), Unchanged)


def test_errors_and_stops() -> None:
    error = apply(agent_in("busy"), AgentError(type="agent.error", message="OOM", **A))
    assert isinstance(error, Changed) and (error.row.error_message, error.row.current_task_id) == ("OOM", "t1")
    another = apply(agent_in("error"), AgentError(type="agent.error", message="again", **A))
    assert isinstance(another, Changed) and another.transitions == () and another.row.error_message == "again"
    stopped = apply(agent_in("busy"), EVENTS["stopped"]())
    assert isinstance(stopped, Changed) and stopped.row.current_task_id is None


def test_stale_after_a_newer_heartbeat_changes_nothing() -> None:
    row = replace(agent_in("idle"), last_heartbeat=n(LATER))
    outcome = apply(row, AgentStale(id="s", time=LATER, agent_id="a1", last_heartbeat=n(T0)))
    assert isinstance(outcome, Unchanged) and "after the sweeper looked" in outcome.reason


@pytest.mark.parametrize("status", [s for s in STATES if s != "offline"])
def test_mark_offline(status: str) -> None:
    row = agent_in(status)
    assert isinstance(mark_offline(row, T0 + timedelta(seconds=59)), Unchanged)
    assert not is_stale(row, T0 + timedelta(seconds=59)) and is_stale(row, T0 + timedelta(seconds=60))
    outcome = mark_offline(row, T0 + timedelta(seconds=60))
    assert isinstance(outcome, Changed) and outcome.row.status == "offline"
    assert outcome.transitions == (Transition("agent", "a1", status, "offline"),)
    assert outcome.row.updated_at == n(T0 + timedelta(seconds=60))
    assert outcome.row.last_heartbeat == n(T0)
    assert isinstance(mark_offline(outcome.row, T0 + timedelta(seconds=120)), Unchanged), "fires once"
    assert isinstance(mark_offline(row, T0 + timedelta(seconds=5), timeout_seconds=5), Changed)


def test_stale_event_ids_are_deterministic() -> None:
    row = agent_in("idle")
    first, second = stale_event(row, T0 + timedelta(minutes=1)), stale_event(row, T0 + timedelta(minutes=5))
    assert first.id == second.id
    assert stale_event(replace(row, last_heartbeat=n(LATER)), T0).id != first.id


KINDS = sorted(EVENTS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(KINDS), max_size=25))
def test_any_sequence_stays_in_the_enum_and_repeats_change_nothing(kinds: list[str]) -> None:
    row: AgentRow | None = None
    for step, kind in enumerate(kinds):
        moment = T0 + timedelta(minutes=step)
        event = EVENTS[kind]()
        if isinstance(event, AgentStale):
            event = replace(event, time=moment, last_heartbeat=row.last_heartbeat if row else None)
        else:
            event = event.model_copy(update={"time": moment})
        outcome: Outcome[AgentRow] = apply(row, event)
        if isinstance(outcome, Changed):
            assert outcome.row.status in STATES
            assert outcome.row.tasks_completed >= (row.tasks_completed if row else 0)
            for transition in outcome.transitions:
                assert transition.from_state == (row.status if row else None)
                assert transition.to_state == outcome.row.status != transition.from_state
            row = outcome.row
            assert not isinstance(apply(row, event), Changed)
        if row is not None:
            assert row.status in STATES
            assert row.status != "busy" or row.current_task_id is not None


def test_a_heartbeat_within_the_granularity_changes_nothing_but_a_new_status_or_task_always_writes() -> None:
    idle = agent_in("idle")
    soon = {"type": "agent.heartbeat", "agent_id": "a1", "time": T0 + timedelta(seconds=14.9)}
    assert isinstance(apply(idle, AgentHeartbeat(id="h1", status="idle", **soon), granularity=15), Unchanged)
    written = apply(idle, AgentHeartbeat(id="h1", status="idle", **soon))  # no granularity: every heartbeat writes
    assert isinstance(written, Changed) and written.row.last_heartbeat == n(T0 + timedelta(seconds=14.9))
    later = {**soon, "time": T0 + timedelta(seconds=15)}
    moved = apply(idle, AgentHeartbeat(id="h2", status="idle", **later), granularity=15)
    assert isinstance(moved, Changed) and moved.row.last_heartbeat == n(T0 + timedelta(seconds=15))
    busy = apply(idle, AgentHeartbeat(id="h3", status="busy", current_task_id="t9", **soon), granularity=15)
    assert isinstance(busy, Changed) and (busy.row.status, busy.row.current_task_id) == ("busy", "t9")
    assert busy.transitions == (Transition("agent", "a1", "idle", "busy"),)
    other_task = apply(agent_in("busy"), AgentHeartbeat(id="h4", status="busy", current_task_id="t2", **soon), granularity=15)
    assert isinstance(other_task, Changed) and other_task.row.current_task_id == "t2"
    same_task = apply(agent_in("busy"), AgentHeartbeat(id="h5", status="busy", **soon), granularity=15)
    assert isinstance(same_task, Unchanged) and "within 15 s" in same_task.reason
    revived = apply(agent_in("offline"), AgentHeartbeat(id="h6", status="idle", **soon), granularity=15)
    assert isinstance(revived, Changed) and revived.row.status == "idle"


@given(st.lists(st.tuples(st.floats(0, 40), st.sampled_from(["idle", "busy"])), max_size=30), st.sampled_from([0, 5, 15, 25]))
def test_with_a_granularity_the_stored_heartbeat_is_never_more_than_it_behind_and_the_status_always_exact(
    beats: list[tuple[float, str]], granularity: int
) -> None:
    """Heartbeats in time order: the row's status and task are the last heartbeat's, and its last_heartbeat is the
    newest heartbeat's time less at most the granularity (exactly it when there is none)."""
    row, moment = agent_in("idle"), T0
    for number, (gap, status) in enumerate(beats):
        moment += timedelta(seconds=gap)
        task = "t1" if status == "busy" else None
        event = AgentHeartbeat(type="agent.heartbeat", id=f"h{number}", time=moment, agent_id="a1", status=status,
                               current_task_id=task)  # fmt: skip
        outcome = apply(row, event, granularity=granularity)
        if isinstance(outcome, Changed):
            row = outcome.row
        assert (row.status, row.current_task_id) == (status, task)
        assert timedelta(0) <= n(moment) - row.last_heartbeat < timedelta(seconds=max(granularity, 1e-9)) or (
            granularity == 0 and row.last_heartbeat == n(moment)
        )
