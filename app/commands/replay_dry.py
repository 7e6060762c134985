"""The replay tool's dry run: fold the candidates for real, inside one transaction that is rolled back.

The fold runs unchanged (its own begin/commit/rollback become savepoints of the outer transaction),
under a throw-away consumer name so that the stored input positions do not hide the records; the
event-id de-duplication and every row are the real ones. What the fold wrote to the outbox before
the rollback tells each outcome: the transitions it would emit, or the reason it would refuse.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from app import jsonio, topics
from app.replay import DryOutcome
from app.replay_records import DlqEntry
from app.settings import Settings
from db.replay import forget_refusals, last_outbox_id, outbox_since, refused_marker_column

SAVEPOINT = "aiworker_replay_dry_run"


class _SavepointConnection:
    """A connection whose transaction calls become savepoints of a transaction that is never committed."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def _execute(self, sql: str) -> None:
        async with self._conn.cursor() as cur:
            await cur.execute(sql)

    async def begin(self) -> None:
        await self._execute(f"SAVEPOINT {SAVEPOINT}")

    async def commit(self) -> None:
        await self._execute(f"RELEASE SAVEPOINT {SAVEPOINT}")

    async def rollback(self) -> None:
        await self._execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _OneConnectionPool:
    def __init__(self, conn: Any) -> None:
        self._conn = _SavepointConnection(conn)

    @asynccontextmanager
    async def _acquired(self) -> AsyncIterator[Any]:
        yield self._conn

    def acquire(self) -> Any:
        return self._acquired()


def _describe(settings: Settings, stats: Any, written: list[tuple[int, str, bytes]], was: str) -> tuple[str, str]:
    """(verdict, what and why) of one entry's fold; `was`: the reason it was dead-lettered with."""
    dlq = settings.topic(topics.DLQ)
    noted = [str(jsonio.loads(p).get("reason", "")) for _, t, p in written if t == dlq]
    changes = []
    for _, topic, payload in written:
        if topic != dlq:
            event = jsonio.loads(payload)
            data = event.get("data", {})
            changes.append(f"{event.get('subject')}: {data.get('from')} -> {data.get('to')}")
    # The fold's reasons, not only the outbox's: a record folded at its old source position has the dlq id it
    # had then, so its dlq row is not written again.
    reasons = list(dict.fromkeys([r.reason for r in getattr(stats, "refusals", ())] or noted))
    if reasons or int(getattr(stats, "refused", 0)) + int(getattr(stats, "invalid", 0)):
        if reasons == [was]:
            return "refused", "the same reason again"
        return "refused", "; ".join(reasons) or "the fold gave no reason (see the worker's log)"
    if getattr(stats, "duplicates", 0):
        return "duplicate", "already applied (same event id)"
    if getattr(stats, "applied", 0):
        notes = f"; a part to the dlq: {'; '.join(noted)}" if noted else ""
        return "applies", (", ".join(changes) or "changes rows") + notes
    if getattr(stats, "ignored", None):
        return "ignored", ", ".join(f"{k} ignored" for k in stats.ignored)
    return "unchanged", "applies, changes nothing"


async def dry_run(settings: Settings, pool: Any, entries: Sequence[DlqEntry]) -> list[DryOutcome]:
    """What re-driving `entries` (in this order) would do now; the database is left unchanged."""
    from streams.fold import Fold
    from streams.intake import ConsumedRecord

    outcomes: list[DryOutcome] = []
    async with pool.acquire() as conn:
        await conn.begin()
        try:
            forget = await refused_marker_column(conn)
            fold = Fold(_OneConnectionPool(conn), settings.model_copy(update={"worker_id": f"replay-dry-{uuid.uuid4().hex}"}))
            last = await last_outbox_id(conn)
            for entry in entries:
                if forget and entry.event_id is not None:
                    await forget_refusals(conn, [entry.event_id])
                record = ConsumedRecord(entry.topic, max(entry.partition, 0), max(entry.offset, 0), entry.key, entry.value)
                stats = await fold.apply_batch([record])
                written = await outbox_since(conn, last)
                last = max([last, *(row[0] for row in written)])
                verdict, detail = _describe(settings, stats, written, entry.reason)
                outcomes.append(DryOutcome(entry, verdict, detail))
        finally:
            await conn.rollback()
    return outcomes
