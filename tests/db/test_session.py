"""The pinned session (db/pool.py): every connection, single or pooled, runs strict, with one quoting rule, in
the isolation parking relies on, whatever the server's defaults; strict mode refuses what would be truncated."""

from __future__ import annotations

from typing import Any

import pytest
from asyncmy.cursors import DictCursor
from asyncmy.errors import MySQLError

from db import fold_store, parking
from db.pool import SQL_MODE, connect, create_pool, max_packet


async def session_of(cur: Any) -> dict[str, Any]:
    await cur.execute("SELECT @@SESSION.sql_mode AS sql_mode, @@SESSION.time_zone AS time_zone, VERSION() AS version")
    row = dict(await cur.fetchone())
    variable = "tx_isolation" if "MariaDB" in row["version"] else "transaction_isolation"  # MariaDB < 11.1: no alias
    await cur.execute(f"SELECT @@SESSION.{variable} AS isolation, @@GLOBAL.max_allowed_packet AS packet")
    return row | dict(await cur.fetchone())


def assert_pinned(session: dict[str, Any]) -> None:
    modes = set(session["sql_mode"].split(","))
    assert modes == set(SQL_MODE.split(","))
    assert {"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES", "NO_ZERO_DATE"} <= modes
    assert "NO_BACKSLASH_ESCAPES" not in modes
    assert session["isolation"] == "REPEATABLE-READ"
    assert session["time_zone"] == "+00:00"


async def test_a_single_connection_and_every_pooled_one_is_pinned(migrated_db_url: str) -> None:
    conn = await connect(migrated_db_url)
    try:
        async with conn.cursor(DictCursor) as cur:
            assert_pinned(await session_of(cur))
    finally:
        conn.close()
    pool = await create_pool(migrated_db_url, minsize=2, maxsize=2)
    try:
        async with pool.acquire() as first, pool.acquire() as second:
            for held in (first, second):
                async with held.cursor(DictCursor) as cur:
                    session = await session_of(cur)
                    assert_pinned(session)
                    assert await max_packet(cur) == int(session["packet"]) > 0
    finally:
        pool.close()
        await pool.wait_closed()


async def test_max_packet_is_read_once_per_connection(conn: Any) -> None:
    async with conn.cursor(DictCursor) as cur:
        limit = await max_packet(cur)
        await cur.execute("SELECT 1 AS one")  # a second read would leave this result unread
        assert await max_packet(cur) == limit
        assert (await cur.fetchone())["one"] == 1


@pytest.mark.parametrize("what", ["log position", "fold position", "parked event"])
async def test_an_id_longer_than_its_column_is_an_error_not_a_truncation(conn: Any, what: str) -> None:
    long_agent = "a" * 37  # agent ids are VARCHAR(36)
    async with conn.cursor() as cur:
        with pytest.raises(MySQLError) as refused:
            if what == "log position":
                await fold_store.lock_log_positions(cur, [(long_agent, "t.agent.events", 0)])
            elif what == "fold position":
                await fold_store.lock_positions(cur, "c" * 300, [("t.agent.events", 0)])
            else:
                event = parking.ParkedEvent("tasks", "t" * 192, "task:x", "e1", "topic", 0, 1, b"k", b"{}", "waits")
                await parking.park(cur, [event])
        assert refused.value.args[0] == 1406  # Data too long for column
        for table in ("log_positions", "fold_positions", "parked_events"):
            await cur.execute(f"SELECT COUNT(*) FROM {table}")
            assert (await cur.fetchone())[0] == 0
    await conn.rollback()
