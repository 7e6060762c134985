"""SQL of the dlq replay (app/replay.py): forget the refusals of the events it re-drives, and what its dry run
(app/commands/replay_dry.py) reads back from the outbox before rolling back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


async def refused_marker_column(conn: Any) -> bool:
    """Whether processed_events remembers refused events (then a re-drive must forget them first)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT COUNT(*) FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = 'processed_events' AND column_name = 'outcome'"
        )
        row = await cur.fetchone()
    return bool(row and row[0])


async def forget_refusals(conn: Any, event_ids: Sequence[str]) -> int:
    """Delete the 'refused' markers of these events, so that the fold considers them again."""
    if not event_ids:
        return 0
    async with conn.cursor() as cur:
        await cur.execute(
            f"DELETE FROM processed_events WHERE outcome = 'refused' AND event_id IN ({', '.join(['%s'] * len(event_ids))})",
            list(event_ids),
        )
        return int(cur.rowcount)


async def last_outbox_id(conn: Any) -> int:
    """The newest outbox row's id (0: none)."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT COALESCE(MAX(id), 0) FROM outbox")
        return int((await cur.fetchone())[0])


async def outbox_since(conn: Any, after_id: int) -> list[tuple[int, str, bytes]]:
    """(id, topic, payload) of the outbox rows after `after_id`, oldest first."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT id, topic, payload FROM outbox WHERE id > %s ORDER BY id", [after_id])
        return [(int(r[0]), str(r[1]), bytes(r[2])) for r in await cur.fetchall()]
