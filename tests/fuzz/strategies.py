"""Hypothesis strategies of the fuzz suites: what clients and misbehaving producers can send."""

from __future__ import annotations

import copy
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from app import jsonio

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


# ---- hostile values (issue 12): what the poison suite places among valid events, and Hypothesis draws ----

Path = tuple[str, ...]
INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80")
BIG_INTEGERS = (2**63, -(2**63) - 1, 2**64, 10**30)
ONE_MB = 1_000_000


@dataclass(frozen=True)
class Hostile:
    """One hostile value placed in a document: its class, the JSON text, and what it should come to.

    `decodable`: whether app/jsonio.py accepts the text (a decodable document may still be an invalid event);
    `doc`: the document as the decoder reads it (None when it does not), to compare what is stored."""

    kind: str
    raw: bytes
    decodable: bool
    doc: dict[str, Any] | None


def _placed(doc: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _text_at(doc: dict[str, Any], path: Path) -> str:
    node: Any = doc
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str) else ""


def nested(levels: int) -> dict[str, Any]:
    """An object nesting `levels` deep (itself included)."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


def _spliced(raw: bytes, member: bytes) -> bytes:
    """`raw` (a JSON object) with `member` ("key":value) as its first member."""
    return b"{" + member + (b"," if raw[1:2] != b"}" else b"") + raw[1:]


def _dumps(doc: dict[str, Any], ascii_only: bool = False) -> bytes:
    return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _in_text(kind: str, doc: dict[str, Any], path: Path, choice: int) -> Hostile:
    """A hostile character inside the text at `path` (between two letters: a title is stripped)."""
    char = {"lone surrogate": ("\ud800", "\udc00", "\udfff")[choice % 3], "NUL": "\x00", "U+2028": "\u2028",
            "U+2029": "\u2029", "U+0085": "\u0085"}[kind]  # fmt: skip
    placed = _placed(doc, path, f"a{char}b {_text_at(doc, path)}")
    if kind == "lone surrogate":
        return Hostile(kind, _dumps(placed, ascii_only=True), False, None)  # as the escape \ud800
    return Hostile(kind, _dumps(placed), True, placed)


def hostile_value(kind: str, doc: dict[str, Any], path: Path, *, deep_key: str = "x_deep", choice: int = 0) -> Hostile:
    """`doc` (a valid event or payload) with a value of class `kind` at its text field `path` (or beside it);
    `deep_key` names the member that carries a nesting (`metadata` for a log line: a JSON column); `choice` picks
    among the variants of a class."""
    depth = 0 if not doc else max(1, jsonio.check(doc, max_depth=10**6))
    if kind in ("lone surrogate", "NUL", "U+2028", "U+2029", "U+0085"):
        return _in_text(kind, doc, path, choice)
    if kind in ("nesting at the limit", "nesting past the limit"):
        levels = jsonio.MAX_DEPTH - 1 + (kind == "nesting past the limit")  # the member's object sits at level 2
        assert depth <= jsonio.MAX_DEPTH
        placed = _placed(doc, (deep_key,), nested(levels))
        return Hostile(kind, _dumps(placed), kind == "nesting at the limit", placed)
    if kind == "1 MB text":  # ASCII, or two bytes a character
        placed = _placed(doc, path, "x" * ONE_MB if choice % 2 == 0 else "ü" * (ONE_MB // 2))
        return Hostile(kind, _dumps(placed), True, placed)
    if kind == "integer past 2^63":
        big = BIG_INTEGERS[choice % len(BIG_INTEGERS)]
        return Hostile(kind, _spliced(_dumps(doc), b'"x_big":' + str(big).encode()), False, None)
    if kind in ("1e400", "NaN"):
        literal = {"1e400": (b"1e400", b"-1e400", b"1.5e309")[choice % 3], "NaN": (b"NaN", b"Infinity")[choice % 2]}[kind]
        return Hostile(kind, _spliced(_dumps(doc), b'"x_num":' + literal), False, None)
    if kind == "wrong type":
        placed = _placed(doc, path, ([1, 2], {"a": 1}, 7, True)[choice % 4])
        return Hostile(kind, _dumps(placed), True, placed)
    if kind == "duplicate keys":  # a decoy first: the last one wins, everywhere
        decoy = json.dumps(_placed({path[0]: doc[path[0]]}, path, "decoy"))[1:-1].encode()
        return Hostile(kind, _spliced(_dumps(doc), decoy), True, doc)
    if kind == "BOM":
        return Hostile(kind, b"\xef\xbb\xbf" + _dumps(doc), False, None)
    if kind == "invalid UTF-8":
        marked = _dumps(_placed(doc, path, f"a@@BAD@@b {_text_at(doc, path)}"))
        return Hostile(kind, marked.replace(b"@@BAD@@", INVALID_UTF8[choice % len(INVALID_UTF8)]), False, None)
    raise ValueError(f"no hostile value class {kind!r}")


HOSTILE_KINDS = ("lone surrogate", "NUL", "U+2028", "U+2029", "U+0085", "nesting at the limit", "nesting past the limit",
                 "1 MB text", "integer past 2^63", "1e400", "NaN", "wrong type", "duplicate keys", "BOM",
                 "invalid UTF-8")  # fmt: skip
"""Every class of hostile value, in the order of the poison suite's table."""
DECODER_REFUSES = frozenset(k for k in HOSTILE_KINDS if not hostile_value(k, {"m": "x"}, ("m",)).decodable)


@st.composite
def hostile(draw: st.DrawFn, doc: dict[str, Any], paths: list[Path], deep_key: str = "x_deep") -> Hostile:
    """`doc` with one hostile value of any class at one of its text fields `paths`."""
    kind = draw(st.sampled_from(HOSTILE_KINDS))
    return hostile_value(kind, doc, draw(st.sampled_from(paths)), deep_key=deep_key, choice=draw(st.integers(0, 11)))


@st.composite
def hostile_event(draw: st.DrawFn, agent_id: str = "fuzz-agent") -> Hostile:
    """A valid event of any kind (`valid_event`) with one hostile value in one of its text fields (or a new one)."""
    event = draw(valid_event(agent_id))
    texts = [(k,) for k, v in event.items() if isinstance(v, str) and k not in ("id", "type", "time", "agent_id")]
    return draw(hostile(event, texts or [("x_text",)], deep_key="metadata" if event["type"] == "log" else "x_deep"))


hostile_numbers = st.sampled_from([str(n).encode() for n in BIG_INTEGERS] + [b"1e400", b"-1e400", b"NaN", b"Infinity"])
"""Number literals that no decoder here accepts (`ints` and `json_scalars` stay inside what is accepted)."""
