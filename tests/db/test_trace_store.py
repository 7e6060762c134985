"""db.trace against a real migrated database: rows written in one statement and read back by key; retention."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asyncmy.cursors import DictCursor

from db import trace


def outcome(event_id: str, **fields: Any) -> tuple[Any, ...]:
    values = dict.fromkeys(trace.OUTCOME_COLUMNS)
    values.update(event_id=event_id, source_topic="t.agent.events", source_partition=1, source_offset=7, outcome="applied")
    values.update(fields)
    return tuple(values[c] for c in trace.OUTCOME_COLUMNS)


async def test_rows_are_found_by_each_key_newest_first_within_the_limit(conn: Any) -> None:
    received = datetime(2026, 11, 22, 10, 0, 0, 123000)
    async with conn.cursor(DictCursor) as cur:
        await trace.insert_outcomes(cur, [
            outcome("e1", task_id="t1", agent_id="a1", received_at=received, reason="it's \"quoted\"\n"),
            outcome("e2", task_id="t1"), outcome("gitea:x", delivery_id="d1", origin="reconcile"),
        ])  # fmt: skip
        await trace.insert_transitions(cur, [("c1", "e1", "task", "t1", None, "backlog"), ("c2", "e9", "task", "t1", "a", "b")])
        await conn.commit()
        assert [r["event_id"] for r in await trace.outcomes_of(cur, "t1", 10)] == ["e1", "e2"]
        assert [r["event_id"] for r in await trace.outcomes_of(cur, "t1", 1)] == ["e2"]  # the newest
        [by_delivery] = await trace.outcomes_of(cur, "d1", 10)
        assert (by_delivery["event_id"], by_delivery["origin"]) == ("gitea:x", "reconcile")
        [first] = await trace.outcomes_of(cur, "a1", 10)
        assert first["received_at"] == received and first["reason"] == 'it\'s "quoted"\n'
        assert [t["transition_id"] for t in await trace.transitions_of(cur, "t1", [], 10)] == ["c1", "c2"]
        assert [t["transition_id"] for t in await trace.transitions_of(cur, "zz", ["e1"], 10)] == ["c1"]
    await conn.commit()


async def test_rows_older_than_the_retention_are_deleted_in_batches(conn: Any) -> None:
    async with conn.cursor() as cur:
        await trace.insert_outcomes(cur, [outcome(f"old{i}") for i in range(3)] + [outcome("new")])
        await trace.insert_transitions(
            cur, [("c-old", "old0", "task", "t", None, "backlog"), ("c-new", "new", "task", "t", None, "backlog")]
        )
        await cur.execute("UPDATE fold_outcomes SET folded_at = folded_at - INTERVAL 2 DAY WHERE event_id LIKE 'old%'")
        await cur.execute("UPDATE fold_transitions SET folded_at = folded_at - INTERVAL 2 DAY WHERE cause_id = 'old0'")
    await conn.commit()
    assert await trace.prune(conn, 86400, limit=2) == 3  # two outcomes, one transition
    assert await trace.prune(conn, 86400, limit=2) == 1
    assert await trace.prune(conn, 86400, limit=2) == 0
    async with conn.cursor(DictCursor) as cur:
        await cur.execute("SELECT event_id FROM fold_outcomes")
        assert [r["event_id"] for r in await cur.fetchall()] == ["new"]
        await cur.execute("SELECT transition_id FROM fold_transitions")
        assert [r["transition_id"] for r in await cur.fetchall()] == ["c-new"]
    await conn.commit()
