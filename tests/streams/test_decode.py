"""streams.decode: the one-pass JSON validation gives what json.loads + validation gives, for any record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app import jsonio
from app.events import parse_event, parse_event_json
from streams.decode import decode
from streams.logs import LogWriter
from streams.machines import epoch_second, naive_utc
from streams.route import Source
from tests.fuzz.strategies import broken_event, json_values, valid_event


def classic(raw: bytes) -> Any:
    try:
        return parse_event(jsonio.loads(raw))
    except Exception as exc:  # noqa: BLE001 - the comparison wants whatever either way raises
        return type(exc).__name__


def one_pass(raw: bytes) -> Any:
    try:
        return parse_event_json(raw)
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__


@given(valid_event() | broken_event() | json_values.map(lambda v: {"id": "x", "type": "log", "message": v}))
def test_one_pass_validation_matches_loads_then_validate(event: Any) -> None:
    raw = json.dumps(event).encode()
    assert one_pass(raw) == classic(raw)


@given(valid_event() | broken_event())
def test_decode_gives_the_same_event_or_reason_as_the_classic_way(event: dict[str, Any]) -> None:
    raw = json.dumps(event).encode()
    got = decode("agent.events", Source("x.agent.events", 0, 0, None, raw))
    want = classic(raw)
    if isinstance(want, str):  # not an event: a reason, never an event
        assert isinstance(got, str) and got.startswith("invalid event: "), got
    elif isinstance(got, str):  # an event, refused for its topic or a time the database cannot store
        assert "does not belong on" in got or "outside what the database stores" in got, got
    else:
        assert got == want


def test_records_that_are_not_events_keep_their_reasons() -> None:
    reasons = [decode("agent.events", Source("x.agent.events", 0, 0, None, raw)) for raw in (b"\xff", b"[1]", b"{}")]
    assert reasons[0].startswith("record is not JSON: not UTF-8: byte 0")
    assert reasons[1] == "record is a JSON list, not an event object"
    assert isinstance(reasons[2], str) and reasons[2].startswith("invalid event:")


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)), st.integers(-14 * 60, 14 * 60))
def test_epoch_seconds_and_log_stamps_are_the_naive_utc_second(moment: datetime, offset_minutes: int) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    stored = naive_utc(aware)
    assert epoch_second(aware) == int((stored.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    assert epoch_second(moment) == epoch_second(moment.replace(tzinfo=UTC))  # naive is UTC
    if datetime(1970, 1, 1, 0, 0, 1) <= stored <= datetime(2038, 1, 19, 3, 14, 7):
        writer = LogWriter.__new__(LogWriter)
        writer._stamps = {}
        assert writer._stamp(epoch_second(aware)) == str(stored)
