"""SQL of the fold's trace (migrations/008_trace.sql): outcome and transition rows written in the fold's
transaction, pruned by age, and read back by `aiworker-events trace` (app/trace.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from db.literals import escape_backslashes, quoter

OUTCOME_COLUMNS = (
    "event_id", "scope", "event_type", "delivery_id", "origin", "task_id", "agent_id", "source_topic", "source_partition",
    "source_offset", "received_at", "outcome", "reason", "dlq_id", "repository",
)  # fmt: skip
TRANSITION_COLUMNS = ("transition_id", "cause_id", "entity", "entity_id", "from_state", "to_state")
OutcomeRow = tuple[Any, ...]
"""Values of OUTCOME_COLUMNS, in order."""
TransitionRow = tuple[str, str, str, str, str | None, str]


async def insert_outcomes(cur: Any, rows: Sequence[OutcomeRow]) -> None:
    """One multi-row INSERT (quoted by db/literals.py, as the outbox and logs are), inside the fold's transaction."""
    await _insert(cur, "fold_outcomes", OUTCOME_COLUMNS, rows)


async def insert_transitions(cur: Any, rows: Sequence[TransitionRow]) -> None:
    await _insert(cur, "fold_transitions", TRANSITION_COLUMNS, rows)


async def _insert(cur: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        return
    quote = quoter(cur)  # checks the session's escaping mode; texts, ints and times are quoted here (the driver's
    # `literal` costs about 1 µs a value: a quarter of a heartbeat batch's trace rows went to quoting)

    def one(value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, str):
            return "'" + escape_backslashes(value) + "'"
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, datetime):
            return "'" + value.isoformat(" ", "microseconds") + "'"
        return quote(value)

    values = ",".join("(" + ",".join(map(one, row)) + ")" for row in rows)
    await cur.execute(f"INSERT INTO {table} ({', '.join(f'`{c}`' for c in columns)}) VALUES {values}")


async def prune(conn: Any, older_than_seconds: int, limit: int = 10_000) -> int:
    """Delete outcome and transition rows folded longer ago than the retention, at most `limit` of each per call
    (short transactions beside the fold's); the rows deleted.

    By the primary key, which grows with folded_at (no index on folded_at: the fold would write it for every row):
    the `limit`-th oldest row bounds each statement, so a call reads at most `limit` rows per table."""
    deleted = 0
    for table in ("fold_outcomes", "fold_transitions"):
        async with conn.cursor() as cur:
            await cur.execute(
                f"SELECT id, folded_at < CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND FROM {table} ORDER BY id LIMIT 1 OFFSET %s",
                [older_than_seconds, limit - 1],
            )
            bound = await cur.fetchone()
            if bound is not None and bound[1]:
                await cur.execute(f"DELETE FROM {table} WHERE id <= %s", [bound[0]])
            else:
                where = "" if bound is None else f" AND id < {int(bound[0])}"
                await cur.execute(
                    f"DELETE FROM {table} WHERE folded_at < CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND{where}",
                    [older_than_seconds],
                )
            deleted += int(cur.rowcount)
        await conn.commit()
    return deleted


async def outcomes_of(cur: Any, key: str, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` outcome rows naming `key` as event id (the halves of a split event too), Gitea delivery
    id, task or agent, each lookup on its own index."""
    one = "(SELECT * FROM fold_outcomes WHERE {} = %s ORDER BY id DESC LIMIT %s)"
    columns = ("event_id", "delivery_id", "task_id", "agent_id")
    await cur.execute(" UNION ".join(one.format(c) for c in columns), [v for _ in columns for v in (key, limit)])
    return sorted(await cur.fetchall(), key=lambda row: int(row["id"]))[-limit:]


async def outcomes_of_events(cur: Any, event_ids: Sequence[str]) -> list[dict[str, Any]]:
    if not event_ids:
        return []
    await cur.execute(f"SELECT * FROM fold_outcomes WHERE event_id IN ({', '.join(['%s'] * len(event_ids))})", list(event_ids))
    return list(await cur.fetchall())


async def transitions_of(cur: Any, entity_id: str, cause_ids: Sequence[str], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` transition rows of the entity `entity_id`, and those caused by these events."""
    causes = list(dict.fromkeys(cause_ids))
    sql = "(SELECT * FROM fold_transitions WHERE entity_id = %s ORDER BY id DESC LIMIT %s)"
    if causes:
        sql += f" UNION (SELECT * FROM fold_transitions WHERE cause_id IN ({', '.join(['%s'] * len(causes))}))"
    await cur.execute(sql, [entity_id, limit, *causes])
    return sorted(await cur.fetchall(), key=lambda row: int(row["id"]))


async def unpublished(cur: Any, ids: Sequence[str]) -> dict[str, Any]:
    """{outbox event id: created_at} of these ids still waiting for the relay (rows not there: published, or
    pruned after publishing)."""
    if not ids:
        return {}
    await cur.execute(
        f"SELECT event_id, created_at FROM outbox WHERE published_at IS NULL AND event_id IN ({', '.join(['%s'] * len(ids))})",
        list(ids),
    )
    return {row["event_id"]: row["created_at"] for row in await cur.fetchall()}


async def still_parked(cur: Any, event_ids: Sequence[str]) -> dict[str, str]:
    """{event id: reason} of these events that are parked now."""
    if not event_ids:
        return {}
    await cur.execute(
        f"SELECT event_id, reason FROM parked_events WHERE event_id IN ({', '.join(['%s'] * len(event_ids))})", list(event_ids)
    )
    return {row["event_id"]: row["reason"] for row in await cur.fetchall()}
