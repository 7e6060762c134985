"""The routing rules (the routing stage itself, with its I/O, is streams/router.py): input records re-keyed onto
`fold.tasks` by the entity whose order matters.

The three input topics are keyed by agent, entity and repository, so one task's events arrive on
different partitions. The router reads them, finds the key that orders them (the task id for task
events, the agent id for agent-only events and logs, the project, group or deployment id for the
others) and produces each record unchanged, framed with its source position, onto `fold.tasks`.
The fold consumes `fold.tasks`: every event of one task goes through one partition, in one order.

Frame: one line of JSON (`{"t": topic, "p": partition, "o": offset, "k": key}`, and `"s": scope`
for a half, below), a newline, then the original record value byte for byte. The router only reads
JSON; validation is the fold's job, and what the router cannot read is routed by its original key
(the fold dead-letters it).

Scopes: an event that changes a task row and an agent row (task.started, task.ready_for_review) must
be ordered with the task (its other sources) and with the agent (its heartbeats, its next task), and
one key cannot give both. The router sends it twice: keyed by the task with scope "task" (the fold
applies only its task effects) and keyed by the agent with scope "agent" (only its agent effects).
Each half is de-duplicated, parked and dead-lettered on its own (ids carry the scope; the task half
keeps the event id), so each is applied exactly once. The halves are independent: a half applies
whenever its own machine allows it. A task.started refused for its task (e.g. cancelled) still makes
the agent busy with it, and a ready_for_review still frees the agent and counts tasks_completed: the
agent row says what the agent reports it is doing; the task row says what the task machine allows.
(Making one half wait for the other's verdict would make the agent row depend on when the task half
happened to be folded, and a replay could give other rows.)

What needs no re-keying skips this stage: agent.events is keyed by agent id already, the order of an
agent's own rows. The fold reads it straight (`direct_part`): logs, agent-only events and the agent half
of a split event; the router sends on only the rest of it (task events, the task halves). So an agent's
heartbeats and log batches, the bulk of the traffic, are not produced and consumed twice.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from app import jsonio, topics
from app.topics import AGENT_SCOPE, SCOPES, TASK_SCOPE
from streams import gitea_intents as gi
from streams import gitea_map

T = TypeVar("T")
LOG_TYPES = frozenset({"log", "log.batch"})
AGENT_ONLY = frozenset({"agent.registered", "agent.heartbeat", "agent.error", "agent.stopped"})
SPLIT = frozenset({"task.started", "task.ready_for_review"})
"""Event types that change a task row and an agent row: routed as a task half and an agent half."""
WHOLE = "whole"
"""`direct_part`: the fold reads the whole record straight from agent.events."""


@dataclass(frozen=True, slots=True)
class Source:
    """The record of an input topic an event came from (agent.events, control.events, gitea.webhooks): where it was,
    its key and value. Not what was consumed (streams/intake.py `ConsumedRecord`: maybe a fold.tasks frame around
    it), but what the fold de-duplicates, parks and traces by."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float = 0.0
    """When the record was produced (broker CreateTime, seconds): orders records across partitions in a batch."""
    scope: str | None = None
    """Which effects of the event this record applies (a half, see the module docstring); None: all of them."""


def frame(source: Source, scope: str | None = None) -> bytes:
    key = source.key.decode("utf-8", "replace") if source.key is not None else None
    fields: dict[str, Any] = {"t": source.topic, "p": source.partition, "o": source.offset, "k": key, "ts": source.timestamp}
    if scope is not None:
        fields["s"] = scope
    header = json.dumps(fields, separators=(",", ":"))
    return header.encode() + b"\n" + source.value


def unframe(value: bytes) -> Source:
    """The source record in a `fold.tasks` value (ValueError when it is not a frame)."""
    head, sep, body = value.partition(b"\n")
    if not sep:
        raise ValueError("fold.tasks record has no frame header line")
    header = jsonio.loads(head)
    key = header.get("k")
    encoded = key.encode() if key is not None else None
    scope = header.get("s")
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"fold.tasks frame has an unknown scope {scope!r}")
    ts = float(header.get("ts") or 0.0)
    return Source(str(header["t"]), int(header["p"]), int(header["o"]), encoded, body, ts, scope)


def source_order(items: Iterable[T], source: Callable[[T], Source]) -> list[T]:
    """Records of several partitions in one order: each partition's records by offset, merged by timestamp.

    The order inside a partition is never changed; across partitions (the three sources, or the router's
    several producers) the broker timestamps interleave them as they were produced, within one batch.
    """
    runs: dict[tuple[str, int], list[T]] = {}
    for item in items:
        src = source(item)
        runs.setdefault((src.topic, src.partition), []).append(item)
    ordered = [sorted(run, key=lambda i: source(i).offset) for run in runs.values()]
    return list(heapq.merge(*ordered, key=lambda i: source(i).timestamp))


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def event_key(data: dict[str, Any]) -> str | None:
    """The ordering key of a contract event (decoded JSON), or None when it names no entity."""
    kind = data.get("type")
    if not isinstance(kind, str):
        kind = None  # a wrong-typed `type` (a list, an object) names no event; the fold dead-letters it
    if kind in LOG_TYPES or kind in AGENT_ONLY:
        return _text(data, "agent_id")
    if kind == "project.upserted":
        return _text(data, "project_id")
    if kind == "task_group.created":
        return _text(data, "task_group_id") or _text(data, "id")
    if isinstance(kind, str) and kind.startswith("deployment."):
        return _text(data, "deployment_id")
    if kind == "task.created":
        return _text(data, "task_id") or _text(data, "id")
    if kind == "task.question_answered":
        return _text(data, "task_id") or _text(data, "question_id")
    return _text(data, "task_id") or _text(data, "agent_id")


def gitea_key(data: dict[str, Any]) -> str | None:
    """The task a Gitea delivery is about when the delivery alone tells (issue id, `task/<id>` branch)."""
    payload_text = data.get("payload")
    event_type = data.get("event_type")
    if not isinstance(payload_text, str) or not isinstance(event_type, str):
        return None
    try:
        payload = jsonio.loads(payload_text)
    except jsonio.JsonError:
        return None
    for intent in gitea_map.map_delivery(event_type, payload):
        if isinstance(intent, gi.CreateTaskFromIssue | gi.CancelTaskForIssue):
            return intent.task_id
        hint = getattr(intent, "task_hint", None)
        if isinstance(hint, gi.TaskHint) and hint.task_id is not None:
            return hint.task_id
    return None


def decoded(source: Source) -> dict[str, Any] | None:
    return decode_object(source.value)


def decode_object(value: bytes) -> dict[str, Any] | None:
    """The JSON object in `value`, or None: decoded as the fold decodes it (app/jsonio.py; a log batch may use its
    extra levels), so the router reads what the fold will accept."""
    try:
        data = jsonio.loads(value, max_depth=jsonio.MAX_DEPTH + jsonio.BATCH_DEPTH)
    except jsonio.JsonError:
        return None
    return data if isinstance(data, dict) else None


# The type of an event whose JSON opens with it (or with its id, then it), as the web side writes them: enough to
# tell logs and agent-only events without decoding kilobytes. Anything else is decoded (`direct_part_of`).
_LEADING_TYPE = re.compile(rb'\{\s*(?:"id"\s*:\s*"[^"\\]*"\s*,\s*)?"type"\s*:\s*"([a-z0-9_.]+)"')


def direct_part_of(value: bytes) -> str | None:
    """`direct_part` of a record value, from its leading type alone when that decides it. The router and the fold
    both ask this function, so they agree on every record, even one whose JSON is broken after its type."""
    leading = _LEADING_TYPE.match(value)
    if leading is not None:
        kind = leading.group(1).decode()
        if kind in LOG_TYPES or kind in AGENT_ONLY:
            return WHOLE
        if kind not in SPLIT:
            return None
    return direct_part(decode_object(value))


def direct_part(data: dict[str, Any] | None) -> str | None:
    """What the fold reads of an agent.events record straight from agent.events (see the module docstring):
    WHOLE for logs, agent-only events and what is not a JSON object (the fold dead-letters it), AGENT_SCOPE for
    the agent half of a split event, None for the rest (the router re-keys it by its task)."""
    if data is None:
        return WHOLE
    kind = data.get("type")
    if not isinstance(kind, str) or kind in LOG_TYPES or kind in AGENT_ONLY:
        return WHOLE  # a record without a usable type fails validation: dead-lettered by the fold, once
    if kind in SPLIT and _text(data, "task_id") is not None and _text(data, "agent_id") is not None:
        return AGENT_SCOPE
    return None


def route_key(short_topic: str, source: Source, question_tasks: Mapping[str, str] | None = None) -> bytes | None:
    """The `fold.tasks` key of an input record: its ordering entity, else its original key.

    An answer that does not name its task goes to its question's task (`question_tasks`: question id ->
    task id, from the database and the questions asked in the batch), so it is ordered with the task.
    """
    data = decoded(source)
    if data is None:
        return source.key
    if short_topic == topics.GITEA_WEBHOOKS:
        key = gitea_key(data)
    elif data.get("type") == "task.question_answered" and not data.get("task_id") and question_tasks:
        key = question_tasks.get(str(data.get("question_id"))) or event_key(data)
    else:
        key = event_key(data)
    return key.encode() if key is not None else source.key


def route_keys(
    short_topic: str, source: Source, question_tasks: Mapping[str, str] | None = None
) -> list[tuple[bytes | None, str | None]]:
    """The (fold.tasks key, scope) of each record the router sends for an input record: two halves for an event
    that changes a task and an agent (SPLIT), else one whole record keyed by `route_key`."""
    data = decoded(source) if short_topic == topics.AGENT_EVENTS else None
    if data is not None and isinstance(data.get("type"), str) and data["type"] in SPLIT:
        task_id, agent_id = _text(data, "task_id"), _text(data, "agent_id")
        if task_id is not None and agent_id is not None:
            return [(task_id.encode(), TASK_SCOPE), (agent_id.encode(), AGENT_SCOPE)]
    return [(route_key(short_topic, source, question_tasks), None)]


def routed_keys(
    short_topic: str, source: Source, question_tasks: Mapping[str, str] | None = None
) -> list[tuple[bytes | None, str | None]]:
    """What the router sends on for an input record: `route_keys` less what the fold reads straight (`direct_part_of`)."""
    part = direct_part_of(source.value) if short_topic == topics.AGENT_EVENTS else None
    if part == WHOLE:
        return []
    return [(key, scope) for key, scope in route_keys(short_topic, source, question_tasks) if part is None or scope != part]
