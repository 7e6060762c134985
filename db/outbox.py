"""SQL of the outbox relay: read unpublished rows in order, mark them, prune old ones; the relay lock."""

from __future__ import annotations

from typing import Any

from asyncmy.cursors import DictCursor


async def acquire_lock(conn: Any, name: str) -> bool:
    """Take the named server lock (held while this connection lives) without waiting."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT GET_LOCK(%s, 0)", [name])
        row = await cur.fetchone()
    await conn.commit()
    return bool(row and row[0] == 1)


async def unpublished(conn: Any, limit: int) -> list[dict[str, Any]]:
    async with conn.cursor(DictCursor) as cur:
        await cur.execute(
            "SELECT id, event_id, topic, message_key, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT %s",
            [limit],
        )
        rows = list(await cur.fetchall())
    await conn.commit()
    return rows


async def mark_published(conn: Any, ids: list[int]) -> None:
    if not ids:
        return
    async with conn.cursor() as cur:
        await cur.execute(
            f"UPDATE outbox SET published_at = CURRENT_TIMESTAMP(3) WHERE id IN ({', '.join(['%s'] * len(ids))})", ids
        )
    await conn.commit()


async def replace_by_note(conn: Any, row_id: int, topic: str, note: bytes) -> None:
    """Replace an unpublishable row (in place: it keeps its turn) by a dlq note, published next round."""
    async with conn.cursor() as cur:
        await cur.execute(
            "UPDATE outbox SET topic = %s, payload = %s WHERE id = %s AND published_at IS NULL", [topic, note, row_id]
        )
    await conn.commit()


async def prune(conn: Any, older_than_seconds: int, limit: int = 10_000) -> int:
    """Delete published rows older than the given age, at most `limit` per call."""
    async with conn.cursor() as cur:
        await cur.execute(
            "DELETE FROM outbox WHERE published_at IS NOT NULL"
            " AND published_at < CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND ORDER BY published_at LIMIT %s",
            [older_than_seconds, limit],
        )
        count = int(cur.rowcount)
    await conn.commit()
    return count
