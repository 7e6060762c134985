"""Event models, agent tokens and CloudEvent ids: pure, no I/O."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.events import AGENT_TYPES, ALL_TYPES, CONTROL_TYPES, TaskCreated, TaskStarted, parse_event
from streams.cloudevents import transition_event, transition_id
from streams.machines import Transition
from webhooks.auth import agent_token, bearer, identify

T = "2026-11-22T10:00:00Z"


def test_unknown_fields_are_kept_and_the_key_follows_the_source() -> None:
    event = parse_event({"id": "e1", "type": "task.started", "time": T, "agent_id": "a1", "task_id": "t1", "extra": 5})
    assert isinstance(event, TaskStarted)
    assert event.model_dump()["extra"] == 5
    assert event.routing_key() == "a1"
    assert event.source == "agent"


def test_task_created_takes_its_id_from_the_event_when_absent() -> None:
    event = parse_event({"id": "t-9", "type": "task.created", "time": T, "project_id": "p", "title": "x"})
    assert isinstance(event, TaskCreated)
    assert event.task_id == "t-9"
    assert event.routing_key() == "t-9"


@pytest.mark.parametrize(
    "data",
    [
        {"id": "e", "type": "task.started", "time": T, "agent_id": "a"},  # no task_id
        {"id": "e", "type": "task.started", "time": "yesterday", "agent_id": "a", "task_id": "t"},
        {"id": "e", "type": "task.started", "time": "2026-11-22T10:00:00", "agent_id": "a", "task_id": "t"},  # no zone
        {"id": "", "type": "agent.stopped", "time": T, "agent_id": "a"},
        {"id": "e", "type": "no.such.type", "time": T},
        {"id": "e", "type": "agent.heartbeat", "time": T, "agent_id": "a", "status": "sleeping"},
    ],
)
def test_invalid_events_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_event(data)


def test_sources_partition_the_types() -> None:
    assert AGENT_TYPES.isdisjoint(CONTROL_TYPES)
    assert AGENT_TYPES | CONTROL_TYPES == ALL_TYPES


def test_agent_tokens_speak_only_for_their_agent() -> None:
    token = agent_token("key", "agent-1")
    assert len(token) == 64
    assert identify(token, service_token="s", agent_token_key="key", agent_ids={"agent-1", "agent-2"}).agent_id == "agent-1"  # type: ignore[union-attr]
    assert identify(token, service_token="s", agent_token_key="key", agent_ids={"agent-2"}) is None
    assert identify("s", service_token="s", agent_token_key="key", agent_ids=set()).service  # type: ignore[union-attr]
    assert identify("", service_token="", agent_token_key="", agent_ids={"a"}) is None


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("", None), (None, None), ("Bearer ", None)],
)
def test_bearer_parsing(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


def test_transition_ids_derive_from_the_cause() -> None:
    move = Transition("task", "t1", "backlog", "in_progress")
    assert transition_id("e1", move) == transition_id("e1", move)
    assert transition_id("e1", move) != transition_id("e2", move)
    assert transition_id("e1", move) != transition_id("e1", Transition("task", "t1", "in_progress", "needs_input"))
    cause = parse_event({"id": "e1", "type": "task.started", "time": T, "agent_id": "a1", "task_id": "t1"})
    topic, event_id, payload = transition_event(move, {"id": "t1"}, cause, "aiworker.agent.events")
    assert topic == "task.transitions"
    assert event_id == transition_id("e1", move)
    assert b'"specversion":"1.0"' in payload and b'"subject":"t1"' in payload


def test_boolean_columns_read_back_as_bool() -> None:
    from db.fold_store import decode_row

    assert decode_row("task_groups", {"id": "g", "production_rollback_available": 1})["production_rollback_available"] is True
    assert decode_row("task_groups", {"id": "g", "production_rollback_available": 0})["production_rollback_available"] is False
    assert decode_row("task_groups", {"id": "g", "task_ids": '["t1"]'})["task_ids"] == ["t1"]
