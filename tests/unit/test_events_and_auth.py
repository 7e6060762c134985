"""Event models, agent tokens and CloudEvent ids: pure, no I/O."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.agent_events import TaskStarted
from app.control_events import TaskCreated
from app.events import AGENT_TYPES, ALL_TYPES, CONTROL_TYPES, parse_event
from streams.cloudevents import transition_event, transition_id
from streams.machines import Transition
from webhooks.auth import Caller, Unauthenticated, agent_mac, agent_token, authenticate, bearer

T = "2026-11-22T10:00:00Z"


def test_unknown_fields_are_kept_and_the_key_follows_the_source() -> None:
    event = parse_event({"id": "e1", "type": "task.started", "time": T, "agent_id": "a1", "task_id": "t1", "extra": 5})
    assert isinstance(event, TaskStarted)
    assert event.model_dump()["extra"] == 5
    assert event.routing_key() == "a1"
    assert event.source == "agent"


def test_an_events_source_is_the_one_its_type_is_listed_under() -> None:
    """`source` comes from the model's class (an AgentEvent is "agent"): the same split as AGENT_TYPES/CONTROL_TYPES."""
    import typing

    from app.events import AnyAgentEvent, AnyControlEvent

    for union in (AnyAgentEvent, AnyControlEvent):
        for model in typing.get_args(typing.get_args(union)[0]):
            for name in typing.get_args(model.model_fields["type"].annotation):
                expected = "agent" if name in AGENT_TYPES else "control"
                assert model.model_construct(type=name).source == expected, name
                assert name in (AGENT_TYPES if expected == "agent" else CONTROL_TYPES)


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


def auth(token: str, *, service: str = "s", key: str = "key") -> Caller | str:
    try:
        return authenticate(f"Bearer {token}", service_token=service, agent_token_key=key)
    except Unauthenticated as exc:
        return str(exc)


def test_an_agent_token_names_its_agent_and_is_checked_from_the_header_alone() -> None:
    token = agent_token("key", "agent-1")
    agent_id, _, mac = token.rpartition(".")
    assert (agent_id, len(mac), mac) == ("agent-1", 64, agent_mac("key", "agent-1"))
    assert auth(token) == Caller(service=False, agent_id="agent-1")
    assert auth(agent_token("key", "pod.7.a")) == Caller(service=False, agent_id="pod.7.a")  # the last dot splits
    assert auth("s") == Caller(service=True)
    assert Caller(service=True).key == "service" and Caller(service=False, agent_id="a").key == "agent:a"


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (agent_token("other-key", "agent-1"), "not a valid token of agent 'agent-1'"),
        (f"agent-2.{agent_mac('key', 'agent-1')}", "not a valid token of agent 'agent-2'"),
        (agent_mac("key", "agent-1"), "agent tokens without their agent id are no longer accepted; an agent token is "
                                      "<agent_id>.<hex HMAC-SHA256(AGENT_TOKEN_KEY, agent_id)>"),
        ("nonsense", "neither the service token nor an agent token (<agent_id>.<hex HMAC"),
        (f".{agent_mac('key', '')}", "neither the service token nor an agent token"),
        (agent_token("key", "x" * 37), "neither the service token nor an agent token"),  # no agent id is that long
        ("S", "neither the service token"),
    ],
)  # fmt: skip
def test_bad_tokens_say_what_a_token_is(token: str, why: str) -> None:
    answer = auth(token)
    assert isinstance(answer, str) and why in answer, answer


def test_nothing_authenticates_without_its_setting() -> None:
    assert isinstance(auth(agent_token("", "a1"), key=""), str)  # no AGENT_TOKEN_KEY: no agent token is valid
    assert isinstance(auth("", service=""), str)
    with pytest.raises(Unauthenticated, match="send Authorization: Bearer"):
        authenticate(None, service_token="s", agent_token_key="key")


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


def test_the_agent_token_command_prints_what_the_web_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    from app.commands.cli import main

    assert main(["agent-token", "pod-7", "--agent-token-key", "key"]) == 0
    token = capsys.readouterr().out.strip()
    assert token == agent_token("key", "pod-7") and auth(token) == Caller(service=False, agent_id="pod-7")
    assert main(["agent-token", "x" * 37, "--agent-token-key", "key"]) == 1
    assert "1 to 36 characters" in capsys.readouterr().err


def test_text_bound_for_a_text_column_is_limited_by_its_utf8_bytes() -> None:
    from pydantic import ValidationError

    from app.event_base import TEXT_BYTES
    from app.events import parse_event

    base = {"id": "e", "type": "task.created", "time": "2026-11-22T10:00:00Z", "task_id": "t", "project_id": "p", "title": "T"}
    assert parse_event(base | {"description": "€" * (TEXT_BYTES // 3)}).description is not None  # type: ignore[attr-defined]
    for text in ("€" * (TEXT_BYTES // 3 + 1), "x" * (TEXT_BYTES + 1), "ü" * 1_000_000):
        with pytest.raises(ValidationError, match="description"):
            parse_event(base | {"description": text})
    error = {"id": "e", "type": "agent.error", "time": "2026-11-22T10:00:00Z", "agent_id": "a", "message": "😀" * 20_000}
    with pytest.raises(ValidationError, match="bytes in UTF-8"):
        parse_event(error)


@pytest.mark.parametrize("time", ["1970-01-01T00:00:00Z", "2038-01-19T03:14:08Z", "2100-01-01T00:00:00Z", "0001-01-01T00:00:00Z"])
def test_a_time_the_database_cannot_store_is_refused_by_the_model(time: str) -> None:
    """Refused at the door (422), not accepted there and dead-lettered by the fold (issue 12 point 3: what is accepted
    can be folded); for a log line inside a batch too."""
    line = {"id": "l1", "type": "log", "time": time, "agent_id": "a1", "message": "m"}
    for event in (line, {"id": "b1", "type": "log.batch", "time": T, "agent_id": "a1", "logs": [line]}):
        with pytest.raises(ValidationError, match="outside what the database stores"):
            parse_event(event)
    for fits in ("1970-01-01T00:00:01Z", "2038-01-19T03:14:07Z", "2038-01-19T05:14:07+02:00"):
        assert parse_event({**line, "time": fits}).time is not None
