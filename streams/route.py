"""The repartition stage: input records re-keyed onto `fold.tasks` by the entity whose order matters.

The three input topics are keyed by agent, entity and repository, so one task's events arrive on
different partitions. The router reads them, finds the key that orders them (the task id for task
events, the agent id for agent-only events and logs, the project, group or deployment id for the
others) and produces each record unchanged, framed with its source position, onto `fold.tasks`.
The fold consumes `fold.tasks`: every event of one task goes through one partition, in one order.

Frame: one line of JSON (`{"t": topic, "p": partition, "o": offset, "k": key}`), a newline, then
the original record value byte for byte. The router only reads JSON; validation is the fold's job,
and what the router cannot read is routed by its original key (the fold dead-letters it).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from app import topics
from streams import gitea_map

T = TypeVar("T")
LOG_TYPES = frozenset({"log", "log.batch"})
AGENT_ONLY = frozenset({"agent.registered", "agent.heartbeat", "agent.error", "agent.stopped"})


@dataclass(frozen=True, slots=True)
class Source:
    """A record of an input topic: where it was, its key and value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float = 0.0
    """When the record was produced (broker CreateTime, seconds): orders records across partitions in a batch."""


def frame(source: Source) -> bytes:
    key = source.key.decode("utf-8", "replace") if source.key is not None else None
    fields = {"t": source.topic, "p": source.partition, "o": source.offset, "k": key, "ts": source.timestamp}
    header = json.dumps(fields, separators=(",", ":"))
    return header.encode() + b"\n" + source.value


def unframe(value: bytes) -> Source:
    """The source record in a `fold.tasks` value (ValueError when it is not a frame)."""
    head, sep, body = value.partition(b"\n")
    if not sep:
        raise ValueError("fold.tasks record has no frame header line")
    header = json.loads(head)
    key = header.get("k")
    encoded = key.encode() if key is not None else None
    return Source(str(header["t"]), int(header["p"]), int(header["o"]), encoded, body, float(header.get("ts") or 0.0))


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
        payload = json.loads(payload_text)
    except json.JSONDecodeError:
        return None
    for intent in gitea_map.map_delivery(event_type, payload):
        if isinstance(intent, gitea_map.CreateTaskFromIssue | gitea_map.CancelTaskForIssue):
            return intent.task_id
        hint = getattr(intent, "task_hint", None)
        if isinstance(hint, gitea_map.TaskHint) and hint.task_id is not None:
            return hint.task_id
    return None


def decoded(source: Source) -> dict[str, Any] | None:
    try:
        data = json.loads(source.value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


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
