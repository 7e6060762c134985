"""The fold's statements stay below max_allowed_packet (db/packets.py), on a private MariaDB started with a 1 MiB
limit: megabytes of outbox rows, log lines, entity rows, updates and parked events go in, and a single row over
the limit is refused by the server as a data error (1153: dead-lettered by the fold, not retried as trouble)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asyncmy.cursors import DictCursor
from asyncmy.errors import MySQLError

from app.commands.processes import PacketLimitError, check_packet, packet_needed
from app.settings import load_settings
from db import fold_store, parking
from db.errors import refused_by_data
from db.migrate import migrate
from db.packets import PacketTooLargeError, chunks
from db.pool import create_pool, max_packet
from tests.faults.mariadb import PrivateMariaDB

PACKET = 1024 * 1024


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a database on a private MariaDB whose max_allowed_packet is 1 MiB."""
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb-packets"), f"--max-allowed-packet={PACKET}").install().start()
    try:
        yield server.url("aiworker_packets")
    finally:
        server.stop()


@pytest.fixture
async def small_packets(small_server: str) -> AsyncIterator[Any]:
    await migrate(small_server)
    pool = await create_pool(small_server, minsize=1, maxsize=2)
    yield pool
    pool.close()
    await pool.wait_closed()


def text(n: int, size: int) -> str:
    return f"{n}:" + os.urandom(size // 2).hex()[: size - 8] + "'\\\"\n"  # quotes and backslashes: escaped twice as long


async def test_megabytes_of_rows_go_in_below_a_1_mib_packet(small_packets: Any) -> None:
    async with small_packets.acquire() as conn, conn.cursor(DictCursor) as cur:
        await conn.begin()
        assert await max_packet(cur) == PACKET
        agents = [{"id": f"a{n}", "pod_name": f"pod-{n}", "error_message": text(n, 60_000)} for n in range(40)]
        await fold_store.insert_rows(cur, "agents", agents)  # 2.4 MB
        await fold_store.update_rows(cur, "agents", [(a["id"], {"error_message": text(n, 65_000)}) for n, a in enumerate(agents)])
        await fold_store.insert_outbox(cur, [(f"e{n}", "t", "k", text(n, 100_000).encode()) for n in range(40)])
        logs = [("a1", None, "info", text(n, 60_000), None, "2026-11-22 10:00:00", f"log-{n}") for n in range(60)]
        await fold_store.insert_logs(cur, logs)
        parked = [
            parking.ParkedEvent("tasks", "t1", "task:t1", f"p{n}", "topic", 0, n, b"k", text(n, 200_000).encode(), "waits")
            for n in range(20)
        ]
        await parking.park(cur, parked)
        await fold_store.record_event_ids(cur, [(f"id-{n}-" + "x" * 150, "topic", 0, n, "applied") for n in range(9000)])
        counts = {}
        for table in ("agents", "outbox", "agent_logs", "parked_events", "processed_events"):
            await cur.execute(f"SELECT COUNT(*) AS n FROM {table}")
            counts[table] = (await cur.fetchone())["n"]
        await cur.execute("SELECT SUM(LENGTH(error_message)) AS n FROM agents")
        updated = (await cur.fetchone())["n"]
        await conn.rollback()
    assert counts == {"agents": 40, "outbox": 40, "agent_logs": 60, "parked_events": 20, "processed_events": 9000}
    assert updated == sum(len(text(n, 65_000)) for n in range(40))


async def test_a_row_over_the_packet_is_a_data_error(small_packets: Any) -> None:
    async with small_packets.acquire() as conn, conn.cursor(DictCursor) as cur:
        await conn.begin()
        with pytest.raises(MySQLError) as refused:
            await fold_store.insert_outbox(cur, [("big", "t", "k", text(0, 2 * PACKET).encode())])
        assert refused.value.args[0] == 1153 and refused_by_data(refused.value)  # not sent: the server would drop us
        assert isinstance(refused.value, PacketTooLargeError) and "max_allowed_packet" in refused.value.args[1]
        await cur.execute("SELECT 1 AS one")  # the connection is still good
        assert (await cur.fetchone())["one"] == 1

        def event(event_id: str, payload: bytes) -> parking.ParkedEvent:
            return parking.ParkedEvent("tasks", "t9", "task:t9", event_id, "topic", 0, 0, None, payload, "waits")

        await parking.park(cur, [event("fits", b"e" * 700_000)])  # estimated over the packet (escaping), measured under
        with pytest.raises(PacketTooLargeError):
            await parking.park(cur, [event("over", b"\0" * (PACKET // 2 + 1000))])  # every byte escaped: over
        await cur.execute("SELECT event_id, LENGTH(payload) AS n FROM parked_events")
        assert [(r["event_id"], r["n"]) for r in await cur.fetchall()] == [("fits", 700_000)]
        await conn.rollback()


def test_chunks_keep_order_and_bound() -> None:
    sizes = [300, 300, 500, 2000, 10, 10]
    assert [list(c) for c, _ in chunks(list(range(6)), sizes, 1000)] == [[0, 1], [2], [3], [4, 5]]
    assert [size for _, size in chunks(list(range(6)), sizes, 1000)] == [602, 501, 2001, 22]
    assert [list(c) for c, _ in chunks(list(range(6)), [1] * 6, 1000, max_items=4)] == [[0, 1, 2, 3], [4, 5]]


async def test_the_worker_refuses_to_start_on_a_packet_too_small_for_one_event(small_server: str) -> None:
    fits = load_settings(database_url=small_server, max_event_bytes=256 * 1024)
    assert packet_needed(fits) <= PACKET
    await asyncio.to_thread(check_packet, fits)
    too_big = load_settings(database_url=small_server, max_event_bytes=1024 * 1024)
    with pytest.raises(PacketLimitError, match="max_allowed_packet is 1048576 bytes"):
        await asyncio.to_thread(check_packet, too_big)
