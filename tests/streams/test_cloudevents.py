"""cloudevents.dumps: orjson's text is the standard library's text (replays and consumers see the same bytes)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import cloudevents


def stdlib(value: Any) -> bytes:
    return json.dumps(value, default=cloudevents._json_default, separators=(",", ":"), ensure_ascii=False).encode()


SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
    | st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2037, 12, 31)) | st.dates()
)  # fmt: skip
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4))


@given(VALUES)
def test_dumps_matches_the_standard_library(value: Any) -> None:
    assert cloudevents.dumps(value) == stdlib(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_back_the_same(value: float) -> None:
    assert json.loads(cloudevents.dumps({"x": value})) == {"x": value}  # 1e16 or 1e+16: the same number


def test_datetimes_and_the_rest_are_spelled_as_before() -> None:
    row = {
        "naive": datetime(2026, 11, 22, 10, 0, 5), "micro": datetime(2026, 11, 22, 10, 0, 5, 120),
        "utc": datetime(2026, 11, 22, 10, tzinfo=UTC), "plus2": datetime(2026, 11, 22, 10, tzinfo=timezone(timedelta(hours=2))),
        "day": date(2026, 11, 22), "raw": b"bytes \xff", "text": "zoë ✓", "big": 2**63 - 1, "list": [1, "a", None],
    }  # fmt: skip
    assert cloudevents.dumps(row) == stdlib(row)
    assert b'"naive":"2026-11-22T10:00:05Z"' in cloudevents.dumps(row)
    with pytest.raises(TypeError):  # past 64 bits: app/jsonio.py lets none in, so there is no second encoder
        cloudevents.dumps({"big": 2**70})


def test_a_reclaim_says_whom_the_task_was_taken_from() -> None:
    from app.agent_events import TaskStarted
    from streams.machines import Reclaim, Transition
    from streams.machines.task import TaskRow

    cause = TaskStarted(type="task.started", id="s2", time=datetime(2026, 11, 22, 10, tzinfo=UTC), agent_id="a2", task_id="t1")
    row = TaskRow(id="t1", project_id="p1", title="t", state="in_progress", assigned_agent_id="a2")
    reclaim = Transition("task", "t1", "in_progress", "in_progress", Reclaim("a1", "offline"))
    _, _, payload = cloudevents.transition_event(reclaim, row, cause, "agent.events")
    data = json.loads(payload)["data"]
    assert (data["from"], data["to"]) == ("in_progress", "in_progress")
    assert data["reclaimed_from"] == {"agent_id": "a1", "status": "offline"}
    _, _, plain = cloudevents.transition_event(Transition("task", "t1", "backlog", "in_progress"), row, cause, "agent.events")
    assert "reclaimed_from" not in json.loads(plain)["data"]
