"""Hypothesis strategies of the fuzz suites: what clients and misbehaving producers can send."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("AIWORKER_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
T0 = "2026-11-22T10:00:00Z"

ints = st.integers(-(2**63), 2**63 - 1)
"""What app/jsonio.py accepts (hostile numbers: `hostile_numbers`)."""
json_scalars = st.none() | st.booleans() | ints | st.floats(-1e18, 1e18) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
wrong_values = st.one_of(
    st.none(), ints, st.floats(-1e18, 1e18), st.lists(ints, max_size=3), st.dictionaries(st.text(max_size=3), ints, max_size=2),
    st.text(min_size=300, max_size=400), st.just(""), st.just("not-a-time"), st.just(-1),
)  # fmt: skip


def valid_events(agent_id: str) -> dict[str, dict[str, Any]]:
    """One valid event of each kind (ids made unique by the caller)."""
    return {
        "agent.registered": {"type": "agent.registered", "agent_id": agent_id, "pod_name": "pod-0", "max_concurrent_tasks": 2},
        "agent.heartbeat": {"type": "agent.heartbeat", "agent_id": agent_id, "status": "idle"},
        "agent.error": {"type": "agent.error", "agent_id": agent_id, "message": "boom"},
        "log": {"type": "log", "agent_id": agent_id, "level": "info", "message": "hello"},
        "task.started": {"type": "task.started", "agent_id": agent_id, "task_id": "t-fuzz"},
        "project.upserted": {"type": "project.upserted", "project_id": "p-fuzz", "name": "Fuzz", "k8s_namespace": "fuzz"},
        "task.created": {"type": "task.created", "task_id": "t-fuzz", "project_id": "p-fuzz", "title": "Fuzz"},
        "task.cancelled": {"type": "task.cancelled", "task_id": "t-fuzz", "reason": "fuzz"},
        "deployment.requested": {"type": "deployment.requested", "deployment_id": "d-fuzz", "project_id": "p-fuzz",
                                 "environment": "staging", "task_group_id": "g-fuzz"},
    }  # fmt: skip


@st.composite
def valid_event(draw: st.DrawFn, agent_id: str = "fuzz-agent") -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(valid_events(agent_id))))
    event = {"id": f"fz-{uuid.uuid4().hex}", "time": T0, **valid_events(agent_id)[kind]}
    if draw(st.booleans()):
        event[draw(st.sampled_from(["extra", "x_note", "ünïcode"]))] = draw(json_values)  # unknown fields are kept
    return event


@st.composite
def broken_event(draw: st.DrawFn, agent_id: str = "fuzz-agent") -> dict[str, Any]:
    """A valid event with one field of the wrong type or value, or missing."""
    event = draw(valid_event(agent_id))
    name = draw(st.sampled_from(sorted(k for k in event if k not in ("extra", "x_note", "ünïcode"))))
    if draw(st.booleans()) and name != "agent_id":
        del event[name]
    else:
        event[name] = draw(wrong_values.filter(lambda v: v != event[name]))
    return event


def encode(items: list[Any], ndjson: bool) -> bytes:
    if ndjson:
        return b"\n".join(json.dumps(item).encode() for item in items)
    return json.dumps(items if len(items) != 1 else items[0]).encode()


bad_utf8 = st.builds(
    lambda prefix, junk: b'{"id":"' + prefix.encode() + junk + b'","type":"log"}',
    st.text(max_size=5),
    st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]),
)
content_types = st.sampled_from([
    "application/json", "application/x-ndjson", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/json; charset=latin-1",
    "text/json", "application/jsonl", "application/json;;",
])  # fmt: skip
