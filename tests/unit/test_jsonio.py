"""The one JSON decoder (app/jsonio.py): each hostile value class decided once, alike at the web's door and in the
worker's fold (an event posted to /events, a Gitea payload, a record produced straight to an input topic)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from app import jsonio
from app.envelope import GiteaEnvelope
from app.events import AGENT_TYPES
from streams.decode import decode
from streams.route import Source
from tests.fuzz.strategies import DECODER_REFUSES, Hostile, hostile_event
from webhooks.events_api import BodyError, decode_body, validate
from webhooks.gitea_signature import GiteaPayloadError, parse_payload

EVENT = b'{"id":"e-1","type":"agent.error","time":"2026-11-22T10:00:00Z","agent_id":"a-1","message":MSG}'


def nested(depth: int) -> bytes:
    """A message field whose event nests `depth` levels deep (the event object is level 1)."""
    return b'"m","x":' + b"[" * (depth - 1) + b"]" * (depth - 1)


CASES = {
    # class: (message text spliced into EVENT, accepted?)
    "plain": (b'"hello"', True),
    "NUL": (b'"a\\u0000b"', True),
    "U+2028 U+2029 U+0085 raw": ('"a\u2028b\u2029c\u0085d"'.encode(), True),
    "a surrogate pair": (b'"\\ud83d\\ude00"', True),
    "lone surrogate escape": (b'"\\ud800"', False),
    "lone low surrogate escape": (b'"x\\udc00y"', False),
    "surrogate as raw bytes": (b'"\xed\xa0\x80"', False),
    "invalid UTF-8": (b'"\xff"', False),
    "nesting at the limit": (nested(jsonio.MAX_DEPTH), True),
    "nesting past the limit": (nested(jsonio.MAX_DEPTH + 1), False),
    "integer 2^63 - 1": (b'"m","x":9223372036854775807', True),
    "integer 2^63": (b'"m","x":9223372036854775808', False),
    "integer -2^63 - 1": (b'"m","x":-9223372036854775809', False),
    "integer past 2^64": (b'"m","x":123456789012345678901234567890', False),
    "float 1e19": (b'"m","x":1e19', False),
    "1e400": (b'"m","x":1e400', False),
    "NaN": (b'"m","x":NaN', False),
    "Infinity": (b'"m","x":-Infinity', False),
    "duplicate keys (the last wins)": (b'"first","message":"last"', True),
}


def agent_event(message: bytes) -> bytes:
    return EVENT.replace(b"MSG", message)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_web_and_the_worker_decide_every_class_alike(name: str) -> None:
    message, accepted = CASES[name]
    raw = agent_event(message)
    for content_type, body in (("application/json", raw), ("application/json", b"[" + raw + b"]"),
                               ("application/x-ndjson", b"\n" + raw + b"\r\n")):  # fmt: skip
        try:
            _events, errors = validate(decode_body(content_type, body))
            web = not errors
        except BodyError:
            web = False
        assert web is accepted, (name, content_type)
    worker = decode("agent.events", Source("t.agent.events", 0, 0, b"a-1", raw))
    assert (not isinstance(worker, str)) is accepted, (name, worker)
    try:
        gitea = bool(parse_payload(raw))
    except GiteaPayloadError:
        gitea = False
    assert gitea is accepted, name
    envelope = GiteaEnvelope(delivery_id="d", event_type="issues", received_at="2026-11-22T10:00:00Z", payload="{}")
    try:  # what the web would have put into an envelope, the fold's payload decoding reads alike
        payload_ok = isinstance(envelope.model_copy(update={"payload": raw.decode()}).payload_json(), dict)
    except (UnicodeDecodeError, jsonio.JsonError):
        payload_ok = False
    assert payload_ok is accepted, name
    if accepted:
        assert not isinstance(worker, str)
        assert worker.message == ("last" if "duplicate" in name else json.loads(message.split(b",")[0]))  # type: ignore[attr-defined]
        jsonio.dumps(jsonio.loads(raw))  # what is accepted can be published again


def test_refusals_say_where() -> None:
    deep = agent_event(nested(jsonio.MAX_DEPTH + 1))
    _events, errors = validate(decode_body("application/json", b"[" + agent_event(b'"ok"') + b"," + deep + b"]"))
    assert [(e["index"], e["field"].split(".")[0]) for e in errors] == [(1, "x")]
    assert "deeper than 32 levels" in errors[0]["reason"]
    with pytest.raises(BodyError, match=r"line 3 is not UTF-8: byte 1 "):
        decode_body("application/x-ndjson", agent_event(b'"ok"') + b"\n\n" + b"{\xff}")
    with pytest.raises(BodyError, match=r"line 2 is not valid JSON: .* \(line 1, column 2\)"):
        decode_body("application/x-ndjson", agent_event(b'"ok"') + b"\n{]")
    _events, errors = validate(decode_body("application/json", agent_event(b'"m","x":{"y":[1,18446744073709551615]}')))
    assert errors[0]["field"] == "x.y.1" and "signed 64-bit" in errors[0]["reason"]
    reason = decode("agent.events", Source("t.agent.events", 0, 0, None, deep))
    assert isinstance(reason, str) and "nests 33 levels deep" in reason


def test_ndjson_splits_on_newlines_only() -> None:
    texts = [json.dumps(f"line {n} \u2028 \u2029 \u0085 \v \f \x1c \r", ensure_ascii=False) for n in range(3)]
    lines = [agent_event(text.encode()) for text in texts]
    assert all("\u2028".encode() in line for line in lines)
    items = decode_body("application/x-ndjson", b"\n".join(lines) + b"\n")
    assert [item["message"].split()[1] for item in items] == ["0", "1", "2"]


def test_a_json_text_sequence_splits_on_its_record_separators() -> None:
    body = b"".join(b"\x1e" + agent_event(f'"seq {n}"'.encode()) + b"\n" for n in range(3))
    assert [item["message"] for item in decode_body("application/json-seq", body)] == ["seq 0", "seq 1", "seq 2"]
    with pytest.raises(BodyError, match="line 1 is not valid JSON"):
        decode_body("application/x-ndjson", body)


def test_a_byte_order_mark_is_refused() -> None:
    with pytest.raises(BodyError, match="byte order mark"):
        decode_body("application/json", b"\xef\xbb\xbf" + agent_event(b'"ok"'))
    with pytest.raises(GiteaPayloadError, match="byte order mark"):
        parse_payload(b"\xef\xbb\xbf{}")
    reason = decode("agent.events", Source("t.agent.events", 0, 0, None, b"\xef\xbb\xbf" + agent_event(b'"ok"')))
    assert isinstance(reason, str) and "byte order mark" in reason


def test_a_log_batch_may_use_its_two_extra_levels_and_no_other_event() -> None:
    line = json.loads(agent_event(nested(jsonio.MAX_DEPTH)).replace(b"agent.error", b"log"))
    batch = {"id": "b", "type": "log.batch", "time": line["time"], "agent_id": "a-1", "logs": [line]}
    decoded = decode("agent.events", Source("t.agent.events", 0, 0, None, json.dumps(batch).encode()))
    assert not isinstance(decoded, str), decoded
    deeper = agent_event(nested(jsonio.MAX_DEPTH + 2))  # as deep as the batch, but not a batch
    refused = decode("agent.events", Source("t.agent.events", 0, 0, None, deeper))
    assert isinstance(refused, str) and "nests 34 levels deep" in refused


@given(hostile_event())
def test_every_hostile_event_is_decided_alike_at_the_door_and_in_the_fold(value: Hostile) -> None:
    """tests/fuzz/strategies.py's hostile values: the door's verdict is the fold's, and what is accepted is the doc."""
    try:
        items = decode_body("application/json", value.raw)
        events, errors = validate(items)
        web = None if errors else events[0]
    except BodyError:
        web = None
    topic = "agent.events" if value.doc is None or value.doc.get("type") in AGENT_TYPES else "control.events"
    worker = decode(topic, Source(f"t.{topic}", 0, 0, None, value.raw))
    assert (web is None) == isinstance(worker, str), (value.kind, worker)
    try:
        assert (jsonio.loads(value.raw, max_depth=jsonio.MAX_DEPTH) == value.doc) is value.decodable, value.kind
    except jsonio.JsonError:
        assert not value.decodable, value.kind
    if web is not None:
        assert web == worker
        dumped = web.model_dump(mode="json", exclude={"time"})
        assert value.doc is not None and all(dumped[k] == v for k, v in value.doc.items() if k != "time"), value.kind


def test_the_hostile_classes_the_decoder_refuses() -> None:
    assert sorted(DECODER_REFUSES) == sorted(
        ["lone surrogate", "nesting past the limit", "integer past 2^63", "1e400", "NaN", "BOM", "invalid UTF-8"]
    )
