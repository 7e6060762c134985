"""Packing `log` events: the lines of one agent that arrive in one request travel as one `log.batch` record.

A run of log lines of an agent is closed by any other event of the same agent, so the order of each agent's
events is kept exactly; a batch is also closed at MAX_LINES lines or about MAX_BYTES bytes, under the
broker's default record size limit (1 MiB). The batch id is a UUIDv5 of its lines' ids: the same request sent
again makes the same batch (and each line keeps its own id for de-duplication in the fold).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.event_base import Event

LOG_BATCH_NAMESPACE = uuid.UUID("6f1d3c2a-8e0b-4f7e-9d51-2b7a4c9e0f33")
MAX_LINES = 10_000
MAX_BYTES = 512 * 1024


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of a value `app.jsonio` accepted (orjson: the standard library's `json.dumps` was a seventh
    of the web's CPU under the fleet benchmark's load, docs/performance.md)."""
    return orjson.dumps(value)


@dataclass
class _Batch:
    agent_id: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    size: int = 0

    def value(self) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid5(LOG_BATCH_NAMESPACE, "\n".join(self.ids))),
            "type": "log.batch",
            "time": self.lines[-1]["time"],
            "agent_id": self.agent_id,
            "logs": self.lines,
        }


def pack(
    events: list[Event], items: list[dict[str, Any]], *, max_bytes: int = MAX_BYTES
) -> list[tuple[Event | None, dict[str, Any]]]:
    """The records to send, in order: (event, raw item) for every event but log lines, (None, batch) for batches
    (closed at about `max_bytes`; a single line bigger than that is a batch of its own)."""
    out: list[tuple[Event | None, dict[str, Any] | _Batch]] = []
    open_batches: dict[str, _Batch] = {}
    for event, item in zip(events, items, strict=True):
        agent_id = getattr(event, "agent_id", None)
        if event.type != "log" or not isinstance(agent_id, str):
            if isinstance(agent_id, str):
                open_batches.pop(agent_id, None)
            out.append((event, item))
            continue
        size = len(dumps(item))
        batch = open_batches.get(agent_id)
        if batch is None or len(batch.lines) >= MAX_LINES or (batch.lines and batch.size + size > max_bytes):
            batch = open_batches[agent_id] = _Batch(agent_id)
            out.append((None, batch))
        batch.lines.append(item)
        batch.ids.append(event.id)
        batch.size += size
    return [(event, value.value() if isinstance(value, _Batch) else value) for event, value in out]
