"""db.fold_store's batched writes against a real migrated database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from asyncmy.cursors import DictCursor
from asyncmy.errors import OperationalError

from db import fold_store


async def rows(conn: Any, table: str) -> dict[str, dict[str, Any]]:
    async with conn.cursor(DictCursor) as cur:
        await cur.execute(f"SELECT * FROM {table}")
        return {row["id"]: fold_store.decode_row(table, row) for row in await cur.fetchall()}


async def test_update_rows_writes_each_row_its_own_values_whatever_columns_changed(conn: Any) -> None:
    count = fold_store.UPDATE_ROWS_PER_STATEMENT + 7  # two statements for the biggest column set
    async with conn.cursor() as cur:
        await fold_store.insert_rows(
            cur, "agents", [{"id": f"a{i}", "pod_name": f"pod{i}", "status": "idle"} for i in range(count)]
        )
        moment = datetime(2026, 11, 22, 10, 0, 5)
        changes: list[tuple[str, dict[str, Any]]] = [
            (f"a{i}", {"status": "busy", "last_heartbeat": moment, "restarts_count": i}) for i in range(count - 3)
        ]
        changes += [
            (f"a{count - 3}", {"capabilities": ["python", "go"], "node_name": None}),
            (f"a{count - 2}", {"error_message": 'it\'s "quoted"\n', "status": "error"}),
            (f"a{count - 1}", {}),  # nothing changed: no statement
        ]
        await fold_store.update_rows(cur, "agents", changes)
    await conn.commit()

    agents = await rows(conn, "agents")
    for i in range(count - 3):
        assert (agents[f"a{i}"]["status"], agents[f"a{i}"]["last_heartbeat"], agents[f"a{i}"]["restarts_count"]) == (
            "busy", moment, i,
        )  # fmt: skip
    assert agents[f"a{count - 3}"]["capabilities"] == ["python", "go"]
    assert agents[f"a{count - 3}"]["status"] == "idle"
    assert (agents[f"a{count - 2}"]["error_message"], agents[f"a{count - 2}"]["status"]) == ('it\'s "quoted"\n', "error")
    assert agents[f"a{count - 1}"]["status"] == "idle" and agents[f"a{count - 1}"]["last_heartbeat"] is None


async def test_update_rows_refuses_a_table_it_does_not_know(conn: Any) -> None:
    async with conn.cursor() as cur:
        try:
            await fold_store.update_rows(cur, "mysql.user", [("x", {"a": 1})])
        except ValueError as exc:
            assert "unknown table" in str(exc)
        else:
            raise AssertionError("update_rows wrote to a table outside the fold's")


async def test_positions_advance_together_and_never_backwards(conn: Any) -> None:
    async with conn.cursor(DictCursor) as cur:
        await fold_store.lock_positions(cur, "c", [("t", 0), ("t", 1), ("u", 0)])
        await fold_store.save_positions(cur, "c", {("t", 0): 5, ("t", 1): 7, ("u", 0): 2})
        await fold_store.save_positions(cur, "c", {("t", 0): 3, ("t", 1): 9})  # 3 < 5: kept at 5
        assert await fold_store.lock_positions(cur, "c", [("t", 0), ("t", 1), ("u", 0)]) == {
            ("t", 0): 5, ("t", 1): 9, ("u", 0): 2,
        }  # fmt: skip
        assert await fold_store.lock_positions(cur, "other", [("t", 0)]) == {("t", 0): 0}  # per consumer
        keys = [(f"agent-{i}", "t", i % 3) for i in range(50)]
        await fold_store.lock_log_positions(cur, keys)
        await fold_store.save_log_positions(cur, {key: i + 1 for i, key in enumerate(keys)})
        await fold_store.save_log_positions(cur, {keys[0]: 0, keys[1]: 10})
        stored = await fold_store.lock_log_positions(cur, keys)
    await conn.commit()
    assert stored[keys[0]] == 1 and stored[keys[1]] == 10 and stored[keys[49]] == 50


async def test_forget_positions_starts_every_partition_and_agent_at_0_again(conn: Any) -> None:
    """What `dev` does when it starts a new in-memory broker, whose offsets start at 0 again."""
    async with conn.cursor(DictCursor) as cur:
        await fold_store.forget_positions(cur)  # what earlier tests of this database stored
        await fold_store.lock_positions(cur, "c", [("t", 0), ("t", 1)])
        await fold_store.save_positions(cur, "c", {("t", 0): 5, ("t", 1): 7})
        await fold_store.lock_log_positions(cur, [("a1", "t", 0)])
        await fold_store.save_log_positions(cur, {("a1", "t", 0): 4})
        assert await fold_store.lock_positions(cur, "c", [("t", 0)]) == {("t", 0): 5}
        assert await fold_store.forget_positions(cur) == 3
        assert await fold_store.lock_positions(cur, "c", [("t", 0), ("t", 1)]) == {("t", 0): 0, ("t", 1): 0}
        assert await fold_store.lock_log_positions(cur, [("a1", "t", 0)]) == {("a1", "t", 0): 0}
    await conn.commit()


async def test_two_workers_folding_disjoint_partitions_never_wait_for_each_others_rows(conn: Any, other_conn: Any) -> None:
    """Positions, log positions and entity rows are locked by their primary key, point by point: a transaction that holds
    the rows of some partitions (and agents) does not block another on the others (on a small table a scan of the key's
    prefix would lock them all: two workers would take turns, and deadlock). The second waits at most 1 s: 1205 fails."""
    topics = ("agent.events", "fold.tasks")
    mine = [(t, p) for t in topics for p in (1, 3, 5, 7)]
    theirs = [(t, p) for t in topics for p in (0, 2, 4, 6)]
    async with conn.cursor(DictCursor) as cur:
        await fold_store.insert_rows(cur, "agents", [{"id": f"a{i}", "pod_name": f"pod{i}"} for i in range(8)])
        await fold_store.lock_positions(cur, "w", mine + theirs)
        await fold_store.lock_log_positions(cur, [(f"a{i}", "agent.events", i) for i in range(8)])
    await conn.commit()
    async with conn.cursor(DictCursor) as cur, other_conn.cursor(DictCursor) as other:
        await other.execute("SET SESSION innodb_lock_wait_timeout = 1")
        held = await fold_store.lock_positions(cur, "w", mine)
        await fold_store.lock_log_positions(cur, [(f"a{i}", "agent.events", i) for i in range(1, 8, 2)])
        await fold_store.load_rows(cur, "agents", [f"a{i}" for i in range(1, 8, 2)])
        await fold_store.save_positions(cur, "w", {key: offset + 5 for key, offset in held.items()})
        got = await fold_store.lock_positions(other, "w", theirs)
        await fold_store.lock_log_positions(other, [(f"a{i}", "agent.events", i) for i in range(0, 8, 2)])
        await fold_store.load_rows(other, "agents", [f"a{i}" for i in range(0, 8, 2)])
        await fold_store.update_rows(other, "agents", [(f"a{i}", {"status": "idle"}) for i in range(0, 8, 2)])
        await fold_store.save_positions(other, "w", {key: offset + 3 for key, offset in got.items()})
        await fold_store.save_log_positions(other, {(f"a{i}", "agent.events", i): 9 for i in range(0, 8, 2)})
    await other_conn.commit()
    await conn.commit()
    async with conn.cursor(DictCursor) as cur:
        stored = await fold_store.lock_positions(cur, "w", mine + theirs)
    await conn.commit()
    assert stored == {**{key: 5 for key in mine}, **{key: 3 for key in theirs}}


async def test_rows_an_event_only_needs_are_shared_by_both_workers_and_their_gaps_stay_locked(conn: Any, other_conn: Any) -> None:
    """Two workers' transactions each fold a task.created of one project: the project row is only needed
    (`UnitOfWork.exists`, share mode), so the second does not wait for the first (it waited for the first's whole
    batch when both locked the row for update; 1205 here after 1 s). An id without a row stays locked against
    inserts until the transaction ends (what parking relies on: the creator then sees the parked event)."""
    from streams.uow import UnitOfWork

    async with conn.cursor(DictCursor) as cur:
        await fold_store.insert_rows(cur, "projects", [{"id": "p1", "name": "one", "k8s_namespace": "ns"}])
    await conn.commit()
    async with conn.cursor(DictCursor) as cur, other_conn.cursor(DictCursor) as other:
        await other.execute("SET SESSION innodb_lock_wait_timeout = 1")
        first, second = UnitOfWork(cur), UnitOfWork(other)
        assert await first.exists("projects", "p1")
        assert not await first.exists("projects", "p2")
        assert await second.exists("projects", "p1")  # not waiting for `first`
        for uow, task in ((first, "t1"), (second, "t2")):
            await fold_store.insert_rows(uow.cur, "tasks", [{"id": task, "project_id": "p1", "title": task}])
        with pytest.raises(OperationalError) as refused:  # the gap lock of `first`'s missing p2
            await fold_store.insert_rows(other, "projects", [{"id": "p2", "name": "two", "k8s_namespace": "ns"}])
        assert refused.value.args[0] == 1205
        await other_conn.commit()
        assert await first.get("projects", "p1") is not None  # upgraded to an update lock: the other has committed
    await conn.commit()
    assert set(await rows(conn, "tasks")) == {"t1", "t2"}


async def test_a_batch_of_log_lines_shares_its_agent_with_the_other_workers_task_halves(conn: Any, other_conn: Any) -> None:
    """Log lines only need their agent to exist: the fold locks it in share mode (streams/logs.py), so the other
    worker's task half of a task.started, which needs the agent too, does not wait for the whole batch of the agent's
    lines (it did when both locked the row for update: half the lock waits of the fleet ramp; 1205 here after 1 s)."""
    from app.agent_events import LogBatch
    from streams.logs import LogWriter
    from streams.outcomes import FoldStats
    from streams.parking import WorkItem
    from streams.route import Source
    from streams.uow import UnitOfWork

    async with conn.cursor(DictCursor) as cur:
        await fold_store.insert_rows(cur, "agents", [{"id": "a1", "pod_name": "pod1"}])
    await conn.commit()
    line = {"id": "l1", "type": "log", "time": "2026-12-02T00:00:00Z", "agent_id": "a1", "message": "hello"}
    batch = LogBatch.model_validate({"id": "b1", "type": "log.batch", "time": line["time"], "agent_id": "a1", "logs": [line]})
    source = Source("agent.events", 0, 0, b"a1", b"{}")
    stats = FoldStats()
    async with conn.cursor(DictCursor) as cur, other_conn.cursor(DictCursor) as other:
        await other.execute("SET SESSION innodb_lock_wait_timeout = 1")
        uow = UnitOfWork(cur)
        writer = await LogWriter.load(uow, [WorkItem(source, batch, "a1")])
        assert await writer.add(source, batch, stats) is None
        assert stats.logs == 1
        assert await UnitOfWork(other).exists("agents", "a1")  # not waiting for the batch
        await other_conn.commit()
        with pytest.raises(OperationalError) as refused:  # the lines' agent cannot change under the batch
            await fold_store.update_rows(other, "agents", [("a1", {"status": "idle"})])
        assert refused.value.args[0] == 1205
        await other_conn.rollback()
    await conn.commit()
