"""The routing stage's pure parts: frames, ordering keys, the cross-partition order of a batch."""

from __future__ import annotations

import json

from app import topics
from streams.gitea_map import task_id_for_issue
from streams.route import Source, event_key, frame, route_key, source_order, unframe
from tests.gitea_samples import load_sample


def src(value: object, *, topic: str = "x.agent.events", partition: int = 0, offset: int = 0, ts: float = 0.0) -> Source:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return Source(topic, partition, offset, b"orig", data, ts)


def test_a_frame_carries_the_source_position_and_the_value_byte_for_byte() -> None:
    original = src(b'{"a": 1}\n\xff', partition=3, offset=42, ts=12.5)
    assert unframe(frame(original)) == original


def test_task_events_are_keyed_by_task_and_agent_only_events_by_agent() -> None:
    assert event_key({"type": "task.started", "agent_id": "a", "task_id": "t"}) == "t"
    assert event_key({"type": "log", "agent_id": "a", "task_id": "t"}) == "a"
    assert event_key({"type": "agent.heartbeat", "agent_id": "a", "current_task_id": "t"}) == "a"
    assert event_key({"type": "task.created", "id": "t"}) == "t"
    assert event_key({"type": "deployment.started", "deployment_id": "d", "task_group_id": "g"}) == "d"
    assert event_key({"type": "task.question_answered", "question_id": "q"}) == "q"


def test_an_answer_without_its_task_goes_to_its_question_task() -> None:
    answer = src({"type": "task.question_answered", "question_id": "q"}, topic="x.control.events")
    assert route_key(topics.CONTROL_EVENTS, answer, {"q": "t"}) == b"t"
    assert route_key(topics.CONTROL_EVENTS, answer, {}) == b"q"


def test_gitea_deliveries_go_to_the_task_of_the_issue_or_branch() -> None:
    sample = load_sample("issues__opened_aiworker")
    envelope = {"event_type": "issues", "payload": sample.payload_bytes.decode()}
    assert route_key(topics.GITEA_WEBHOOKS, src(envelope)) == task_id_for_issue(42, 17).encode()


def test_unreadable_records_keep_their_key() -> None:
    assert route_key(topics.AGENT_EVENTS, src(b"not json")) == b"orig"


def test_the_batch_order_keeps_each_partition_and_merges_them_by_time() -> None:
    a = [src({}, partition=0, offset=o, ts=t) for o, t in ((0, 1.0), (1, 5.0), (2, 3.0))]
    b = [src({}, topic="x.control.events", offset=o, ts=t) for o, t in ((7, 2.0), (8, 4.0))]
    ordered = source_order([b[1], a[2], a[0], b[0], a[1]], lambda s: s)
    assert [(s.topic[-6:], s.offset) for s in ordered] == [
        ("events", 0), ("events", 7), ("events", 8), ("events", 1), ("events", 2)]  # fmt: skip
    assert [s.offset for s in ordered if s.topic == "x.agent.events"] == [0, 1, 2]  # never reordered


def test_a_wrong_typed_event_type_is_routed_by_its_ids_not_a_crash() -> None:
    """The topic fuzz suite: `"type": [...]` made the router raise TypeError (unhashable) and stop routing."""
    for kind in ([1, 2], {"a": 1}, 7, None):
        assert event_key({"type": kind, "agent_id": "a-1"}) == "a-1"
        assert event_key({"type": kind, "task_id": "t-1", "agent_id": "a-1"}) == "t-1"


def test_an_event_of_a_task_and_an_agent_is_routed_as_two_halves() -> None:
    from app.topics import scoped_id
    from streams.route import route_keys

    for kind in ("task.started", "task.ready_for_review"):
        event = {"id": "e-1", "type": kind, "agent_id": "a-1", "task_id": "t-1"}
        assert route_keys(topics.AGENT_EVENTS, src(event)) == [(b"t-1", "task"), (b"a-1", "agent")]
    heartbeat = {"id": "h-1", "type": "agent.heartbeat", "agent_id": "a-1", "status": "idle"}
    assert route_keys(topics.AGENT_EVENTS, src(heartbeat)) == [(b"a-1", None)]
    asked = {"id": "q-1", "type": "task.question_asked", "agent_id": "a-1", "task_id": "t-1", "question_id": "q"}
    assert route_keys(topics.AGENT_EVENTS, src(asked)) == [(b"t-1", None)]  # changes no agent row: one record
    source = Source("agent.events", 1, 5, b"a-1", b'{"x": 1}', 2.0)
    assert unframe(frame(source, "agent")).scope == "agent" and unframe(frame(source)).scope is None
    assert scoped_id("e-1", "task") == "e-1" and scoped_id("e-1", "agent") == "e-1|agent"
    assert len(scoped_id("x" * 191, "agent")) <= 191


def test_the_fold_reads_agents_own_events_straight_and_the_router_sends_on_the_rest() -> None:
    """agent.events is keyed by agent: what orders by agent skips the router; each part is taken exactly once."""
    from app.topics import AGENT_SCOPE
    from streams.route import WHOLE, decoded, direct_part, route_keys, routed_keys

    agent_events = [
        {"id": "h", "type": "agent.heartbeat", "agent_id": "a-1", "status": "idle"},
        {"id": "l", "type": "log.batch", "agent_id": "a-1", "logs": []},
        {"id": "r", "type": "agent.registered", "agent_id": "a-1", "pod_name": "p"},
        {"id": "s", "type": "task.started", "agent_id": "a-1", "task_id": "t-1"},
        {"id": "q", "type": "task.question_asked", "agent_id": "a-1", "task_id": "t-1", "question_id": "q"},
        {"id": "n", "type": "task.started", "agent_id": "a-1"},  # no task: one whole record, routed by its agent
        {"id": "w", "type": ["task.started"], "agent_id": "a-1", "task_id": "t-1"},  # wrong-typed type
    ]
    parts = [direct_part(decoded(src(e))) for e in agent_events]
    assert parts == [WHOLE, WHOLE, WHOLE, AGENT_SCOPE, None, None, WHOLE]
    assert direct_part(decoded(src(b"\xff not json"))) == WHOLE
    for event, part in zip(agent_events, parts, strict=True):
        every = route_keys(topics.AGENT_EVENTS, src(event))
        sent = routed_keys(topics.AGENT_EVENTS, src(event))
        read_here = {scope for _, scope in every} if part == WHOLE else ({part} if part is not None else set())
        assert {scope for _, scope in sent} | read_here == {scope for _, scope in every}, event
        assert not {scope for _, scope in sent} & read_here, event  # never both
    assert routed_keys(topics.AGENT_EVENTS, src(agent_events[3])) == [(b"t-1", "task")]
    started = {"id": "s", "type": "task.started", "agent_id": "a-1", "task_id": "t-1"}
    assert routed_keys(topics.CONTROL_EVENTS, src(started, topic="x.control.events")) == route_keys(
        topics.CONTROL_EVENTS, src(started, topic="x.control.events")
    )  # other topics: everything is routed


def test_records_that_the_decoder_refuses_are_not_read_by_the_router_either() -> None:
    from streams.route import decoded

    assert decoded(src(b'{"type": "log", "x": NaN}')) is None  # routed by their original key; the fold dead-letters
    assert decoded(src(b'{"type": "log", "m": "\\ud800"}')) is None
    assert decoded(src(b'{"type": "log", "m": "\\u2028"}')) == {"type": "log", "m": "\u2028"}
    assert decoded(src(b"[1, 2]")) is None and decoded(src(b"\xff")) is None


def test_the_leading_type_decides_as_the_whole_record_would() -> None:
    """direct_part_of peeks at the type a record opens with; for valid JSON it says what decoding would say."""
    from hypothesis import given
    from hypothesis import strategies as st

    from streams.route import AGENT_ONLY, LOG_TYPES, SPLIT, WHOLE, decode_object, direct_part, direct_part_of

    kinds = st.sampled_from(sorted(LOG_TYPES | AGENT_ONLY | SPLIT | {"task.created", "task.question_asked", "x"}))

    @given(kinds, st.booleans(), st.booleans(), st.booleans(), st.sampled_from(["", " ", "\n  "]))
    def agree(kind: str, with_id: bool, with_task: bool, type_first: bool, space: str) -> None:
        fields = [("type", kind), ("agent_id", "a-1")] + ([("task_id", "t-1")] if with_task else [])
        if with_id:
            fields.insert(0 if not type_first else 1, ("id", "e-1"))
        raw = ("{" + space + ("," + space).join(f'"{k}":{space}"{v}"' for k, v in fields) + "}").encode()
        assert direct_part_of(raw) == direct_part(decode_object(raw)), raw

    agree()
    assert direct_part_of(b'{"id":"e","type":"agent.heartbeat", broken') == WHOLE  # the fold dead-letters it
    assert direct_part_of(b'{"id":"e","type":"task.created", broken') is None  # the router routes it; the fold skips
    assert direct_part_of(b'{"id":"e\\"x","type":"task.started","agent_id":"a","task_id":"t"}') == "agent"
