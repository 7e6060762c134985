"""The fold's trace rows (migrations/008_trace.sql): what became of each work item, and each transition emitted.

The fold (streams/fold.py) and the sweeper queue them on the transaction's unit of work (streams/uow.py), which
writes them with the batch's other rows; `aiworker-events trace` (app/trace.py) reads them back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from app.envelope import GiteaEnvelope
from db.parking import ParkedEvent
from db.trace import OutcomeRow, TransitionRow
from streams.machines import Transition
from streams.parking import WorkItem
from streams.route import Source

REASON_CHARS = 512


def received_at(timestamp: float) -> datetime | None:
    """The broker's time of a record (CreateTime, seconds) as naive UTC, None when the record has none."""
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None) if timestamp > 0 else None


def outcome_row(work: WorkItem, outcome: str, reason: str | None, dlq_id: str | None) -> OutcomeRow:
    """The fold_outcomes row of one work item."""
    source, item = work.source, work.item
    event_id = event_type = delivery_id = origin = task_id = agent_id = repository = None
    if isinstance(item, GiteaEnvelope):
        event_id, event_type, delivery_id, origin = item.id, item.event_type, item.delivery_id, item.origin
        repository = item.repository or None  # the record key: the full name the web read (the console searches it)
    elif not isinstance(item, str):
        event_id, event_type = item.id, item.type
        task, agent = getattr(item, "task_id", None), getattr(item, "agent_id", None)
        task_id = task if isinstance(task, str) else None
        agent_id = agent if isinstance(agent, str) else None
    return (
        event_id, source.scope, event_type, delivery_id, origin, task_id, agent_id, source.topic, source.partition,
        source.offset, received_at(source.timestamp), outcome, reason[:REASON_CHARS] if reason else None, dlq_id,
        repository,
    )  # fmt: skip


def transition_row(transition_id: str, cause_id: str, transition: Transition) -> TransitionRow:
    return (transition_id, cause_id, transition.entity, transition.entity_id, transition.from_state, transition.to_state)


def expired_row(event: ParkedEvent, reason: str, dlq_id: str) -> OutcomeRow:
    """The fold_outcomes row of a parked event the sweeper dead-letters (it waited longer than PARK_SECONDS)."""
    suffix = f"|{event.scope}"
    event_id = event.event_id[: -len(suffix)] if event.scope and event.event_id.endswith(suffix) else event.event_id
    return (
        event_id, event.scope, None, None, None, None, None, event.source_topic, event.source_partition,
        event.source_offset, None, "expired", reason[:REASON_CHARS], dlq_id, None,
    )  # fmt: skip


def unroutable_row(source: Source, reason: str, dlq_id: str) -> OutcomeRow:
    """The fold_outcomes row of a record the router dead-letters (its keys could not be read): its id and type
    when its value still reads as a JSON object naming them (a Gitea envelope: its delivery id too)."""
    fields: dict[str, Any] = {}
    try:
        value = orjson.loads(source.value)
        fields = value if isinstance(value, dict) else {}
    except (orjson.JSONDecodeError, RecursionError):
        pass

    def text(name: str, limit: int) -> str | None:
        found = fields.get(name)
        return found[:limit] if isinstance(found, str) and found else None

    delivery = text("delivery_id", 191)
    event_id = text("event_id", 191) or (f"gitea:{delivery}" if delivery else text("id", 191))
    return (
        event_id, None, text("event_type", 100) or text("type", 100), delivery, text("origin", 16), text("task_id", 36),
        text("agent_id", 36), source.topic, source.partition, source.offset, received_at(source.timestamp), "invalid",
        reason[:REASON_CHARS], dlq_id, text("repository", 255),
    )  # fmt: skip
