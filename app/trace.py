"""What the system knows of an event, a Gitea delivery, a task or an agent, in order: read by `aiworker-events trace`
(its timeline and --json: app/commands/trace_cli.py) and by the console's task page (webhooks/console/views.py).

For every event the key names (or that changed the entity it names): where each of its records came in (topic,
partition, offset, the broker's time), what the fold did with it (applied, unchanged, ignored, refused, invalid,
duplicate, parked, expired; with the reason), the transitions it caused (id, entity, from -> to, published or
still in the outbox) and its dlq records. From the fold's trace rows (migrations/008_trace.sql, kept
TRACE_RETENTION_SECONDS), the outbox and parked_events: the database only, indexed lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asyncmy.cursors import DictCursor

from app import topics
from db import trace as sql
from db.pool import connect

LIMIT = 200


@dataclass
class TracedEvent:
    """One event (or a cause known only by its transitions) with its records and transitions, in order."""

    event_id: str | None
    records: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)

    def first(self) -> tuple[datetime, int]:
        """When the fold first wrote of it (the order of the timeline)."""
        return min((row["folded_at"], int(row["id"])) for row in self.records or self.transitions)

    def describe(self) -> dict[str, Any]:
        """What its records say about the event itself (the last one that says it)."""
        out: dict[str, Any] = {"event_id": self.event_id}
        for name in ("event_type", "delivery_id", "origin", "task_id", "agent_id"):
            out[name.removeprefix("event_") if name == "event_type" else name] = next(
                (r[name] for r in reversed(self.records) if r[name] is not None), None
            )
        return out


@dataclass
class Trace:
    key: str
    events: list[TracedEvent]
    truncated: bool
    limit: int = LIMIT


async def collect(database_url: str, key: str, limit: int = LIMIT) -> Trace:
    conn = await connect(database_url)
    try:
        found = await collect_on(conn, key, limit)
        await conn.commit()
    finally:
        conn.close()
    return found


async def collect_on(conn: Any, key: str, limit: int = LIMIT) -> Trace:
    """The trace of `key` read on an open connection (the console's task page reads it so, from its pool)."""
    async with conn.cursor(DictCursor) as cur:
        records = await sql.outcomes_of(cur, key, limit)
        truncated = len(records) >= limit
        ids = [r["event_id"] for r in records if r["event_id"]]
        transitions = await sql.transitions_of(cur, key, ids, limit)
        causes = [t["cause_id"] for t in transitions if t["cause_id"] not in set(ids)]
        known = {int(r["id"]) for r in records}
        records += [r for r in await sql.outcomes_of_events(cur, causes) if int(r["id"]) not in known]
        waiting = await sql.unpublished(
            cur, [t["transition_id"] for t in transitions] + [r["dlq_id"] for r in records if r["dlq_id"]]
        )
        parked = await sql.still_parked(cur, [_parked_id(r) for r in records if r["outcome"] == "parked"])
    events: dict[str | None, TracedEvent] = {}
    for record in sorted(records, key=lambda r: int(r["id"])):
        record["waiting"] = record["dlq_id"] in waiting if record["dlq_id"] else False
        record["still_parked"] = record["outcome"] == "parked" and _parked_id(record) in parked
        events.setdefault(record["event_id"], TracedEvent(record["event_id"])).records.append(record)
    for transition in transitions:
        transition["waiting"] = transition["transition_id"] in waiting
        events.setdefault(transition["cause_id"], TracedEvent(transition["cause_id"])).transitions.append(transition)
    return Trace(key, sorted(events.values(), key=lambda e: e.first()), truncated, limit)


def _parked_id(record: dict[str, Any]) -> str:
    return topics.scoped_id(str(record["event_id"]), record["scope"])


def time_text(value: Any) -> str | None:
    """A time of the trace as its timeline and --json show it (UTC, to the millisecond)."""
    return value.isoformat(sep=" ", timespec="milliseconds") if isinstance(value, datetime) else None


def as_json(found: Trace) -> dict[str, Any]:
    """The document `trace --json` prints (times UTC, ISO 8601)."""
    events = []
    for event in found.events:
        records = [
            {
                "topic": r["source_topic"], "partition": r["source_partition"], "offset": r["source_offset"],
                "scope": r["scope"], "received_at": time_text(r["received_at"]), "folded_at": time_text(r["folded_at"]),
                "outcome": r["outcome"], "reason": r["reason"], "still_parked": r["still_parked"],
                "dlq": {"id": r["dlq_id"], "published": not r["waiting"]} if r["dlq_id"] else None,
            }
            for r in event.records
        ]  # fmt: skip
        transitions = [
            {
                "id": t["transition_id"], "entity": t["entity"], "entity_id": t["entity_id"], "from": t["from_state"],
                "to": t["to_state"], "folded_at": time_text(t["folded_at"]), "published": not t["waiting"],
            }
            for t in event.transitions
        ]  # fmt: skip
        events.append({**event.describe(), "records": records, "transitions": transitions})
    return {"query": found.key, "events": events, "truncated": found.truncated}
