"""Transitions as CloudEvents 1.0 (structured JSON), with ids derived from their cause."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime
from typing import Any

import orjson

from app import topics
from streams.machines import Transition
from streams.machines.domain import Input
from streams.uow import as_dict

SOURCE = "aiworker-events"
ID_NAMESPACE = uuid.UUID("6f1c3a52-0c5e-4d8e-9a51-2b9e4c7d8a10")
TYPES = {
    "task": "aiworker.task.state_changed",
    "agent": "aiworker.agent.status_changed",
    "deployment": "aiworker.deployment.status_changed",
    "task_group": "aiworker.task_group.status_changed",
}
TOPICS = {
    "task": topics.TASK_TRANSITIONS,
    "agent": topics.AGENT_TRANSITIONS,
    "deployment": topics.DEPLOYMENT_TRANSITIONS,
    "task_group": topics.DEPLOYMENT_TRANSITIONS,
}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; naive datetimes are UTC ("...Z"). orjson alone: what it cannot write (an integer past
    64 bits) never comes in, since app/jsonio.py refuses it at the door and in the fold (TypeError otherwise)."""
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def transition_id(cause_id: str, transition: Transition) -> str:
    """The same cause and change always give the same id, so a replay re-emits the same events."""
    name = f"{cause_id}|{transition.entity}|{transition.entity_id}|{transition.from_state}|{transition.to_state}"
    return str(uuid.uuid5(ID_NAMESPACE, name))


def transition_event(transition: Transition, row: Any, cause: Input, cause_source: str) -> tuple[str, str, bytes]:
    """(topic short name, id, CloudEvent JSON bytes) of one transition."""
    event_id = transition_id(cause.id, transition)
    row_data = as_dict(row) if dataclasses.is_dataclass(row) else dict(row)
    data: dict[str, Any] = {
        "from": transition.from_state,
        "to": transition.to_state,
        "row": row_data,
        "cause": {"id": cause.id, "source": cause_source, "type": cause.type},
    }
    if transition.reclaimed_from is not None:
        data["reclaimed_from"] = {"agent_id": transition.reclaimed_from.agent_id, "status": transition.reclaimed_from.status}
    envelope = {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": TYPES[transition.entity],
        "subject": transition.entity_id,
        "time": cause.time,
        "datacontenttype": "application/json",
        "data": data,
    }
    return TOPICS[transition.entity], event_id, dumps(envelope)
