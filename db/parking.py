"""SQL of parked events: events waiting for a row that another partition has not delivered yet.

Every function takes a cursor inside the caller's open transaction; none commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from db.packets import budget, chunks, execute, literal_bytes
from db.pool import max_packet


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    waits_table: str
    waits_id: str
    entity: str
    event_id: str
    """The id it is parked by: the event id, with the scope of an agent half (streams/route.py)."""
    source_topic: str
    source_partition: int
    source_offset: int
    source_key: bytes | None
    payload: bytes
    reason: str
    scope: str | None = None


COLUMNS = (
    "waits_table", "waits_id", "entity", "event_id", "source_topic", "source_partition", "source_offset", "source_key",
    "payload", "reason", "scope",
)  # fmt: skip


def _row(raw: dict[str, Any]) -> ParkedEvent:
    key = raw["source_key"]
    return ParkedEvent(
        raw["waits_table"], raw["waits_id"], raw["entity"], raw["event_id"], raw["source_topic"],
        int(raw["source_partition"]), int(raw["source_offset"]),
        key.encode() if isinstance(key, str) else key, bytes(raw["payload"]), raw["reason"], raw.get("scope"),
    )  # fmt: skip


async def waits_of_entities(cur: Any, entities: Sequence[str], *, lock: bool = False) -> dict[str, tuple[str, str]]:
    """For each entity with parked events: what its oldest parked event waits for (table, id).

    `lock`: a locking read (the latest committed rows, waiting for a transaction that is taking them)."""
    if not entities:
        return {}
    marks = ", ".join(["%s"] * len(entities))
    await cur.execute(
        f"SELECT entity, waits_table, waits_id FROM parked_events WHERE entity IN ({marks}) ORDER BY id"
        + (" FOR UPDATE" if lock else ""),
        list(entities),
    )
    found: dict[str, tuple[str, str]] = {}
    for raw in await cur.fetchall():
        found.setdefault(raw["entity"], (raw["waits_table"], raw["waits_id"]))
    return found


async def park(cur: Any, events: Sequence[ParkedEvent]) -> None:
    """Store parked events; one already parked (same event id) is kept once."""
    if not events:
        return
    row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    values: list[list[Any]] = []
    for event in events:
        key = event.source_key.decode("utf-8", "replace")[:255] if event.source_key is not None else None
        values.append([event.waits_table, event.waits_id, event.entity, event.event_id, event.source_topic,
                       event.source_partition, event.source_offset, key, event.payload, event.reason[:512],
                       event.scope])  # fmt: skip
    packet = await max_packet(cur)
    for chunk, size in chunks(values, [sum(literal_bytes(v) for v in params) for params in values], budget(packet)):
        sql = (
            f"INSERT INTO parked_events ({', '.join(COLUMNS)}) VALUES {', '.join([row] * len(chunk))}"
            " ON DUPLICATE KEY UPDATE event_id = event_id"  # not INSERT IGNORE: that would truncate a too long id
        )
        await execute(cur, sql, [v for params in chunk for v in params], size, packet)


async def take_waiting(cur: Any, waits_table: str, waits_ids: Sequence[str]) -> list[ParkedEvent]:
    """Remove and return (in parking order) the events waiting for these rows; locking read."""
    if not waits_ids:
        return []
    marks = ", ".join(["%s"] * len(waits_ids))
    await cur.execute(
        f"SELECT id, {', '.join(COLUMNS)} FROM parked_events WHERE waits_table = %s AND waits_id IN ({marks})"
        " ORDER BY id FOR UPDATE",
        [waits_table, *waits_ids],
    )
    rows = list(await cur.fetchall())
    if rows:
        ids = [int(r["id"]) for r in rows]
        await cur.execute(f"DELETE FROM parked_events WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)
    return [_row(r) for r in rows]


async def take_first_waiting(cur: Any, waits_table: str, waits_id: str) -> ParkedEvent | None:
    """Remove and return the oldest event waiting for this row (locking read), or None."""
    await cur.execute(
        f"SELECT id, {', '.join(COLUMNS)} FROM parked_events WHERE waits_table = %s AND waits_id = %s"
        " ORDER BY id LIMIT 1 FOR UPDATE",
        [waits_table, waits_id],
    )
    raw = await cur.fetchone()
    if raw is None:
        return None
    await cur.execute("DELETE FROM parked_events WHERE id = %s", [int(raw["id"])])
    return _row(raw)


async def take_expired(cur: Any, older_than_seconds: int, limit: int = 500) -> list[ParkedEvent]:
    """Remove and return events parked longer than `older_than_seconds` (their row never came)."""
    await cur.execute(
        f"SELECT id, {', '.join(COLUMNS)} FROM parked_events"
        " WHERE parked_at < CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND ORDER BY id LIMIT %s FOR UPDATE",
        [older_than_seconds, limit],
    )
    rows = list(await cur.fetchall())
    if rows:
        ids = [int(r["id"]) for r in rows]
        await cur.execute(f"DELETE FROM parked_events WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)
    return [_row(r) for r in rows]
