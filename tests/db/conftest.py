"""Self-contained fixtures for the db tests: each database is uniquely named on a real MariaDB
(or MySQL) server and dropped afterwards. Server: AIWORKER_TEST_MYSQL_SERVER, default
mysql://root@127.0.0.1:3306."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from db.migrate import drop_database, migrate
from db.pool import connect

SERVER = os.environ.get("AIWORKER_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306").rstrip("/")

# Children before parents, so plain DELETEs satisfy every foreign key (agents.current_task_id is
# cleared first to break the tasks <-> agents cycle).
TABLES_IN_DELETE_ORDER = (
    "agent_logs",
    "deployments",
    "task_groups",
    "task_questions",
    "tasks",
    "agents",
    "projects",
    "outbox",
    "processed_events",
    "fold_positions",
    "fold_outcomes",
    "fold_transitions",
)


def unique_database_url() -> str:
    return f"{SERVER}/aiw_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def fresh_db_url() -> AsyncIterator[str]:
    """The URL of a database that does not exist yet; dropped after the test."""
    url = unique_database_url()
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="module")
async def migrated_db_url() -> AsyncIterator[str]:
    """A fully migrated database shared by the tests of one module."""
    url = unique_database_url()
    await migrate(url)
    try:
        yield url
    finally:
        await drop_database(url)


async def _clear(conn: Any) -> None:
    async with conn.cursor() as cur:
        await cur.execute("UPDATE agents SET current_task_id = NULL")
        for table in TABLES_IN_DELETE_ORDER:
            await cur.execute(f"DELETE FROM {table}")
    await conn.commit()


@pytest.fixture
async def conn(migrated_db_url: str) -> AsyncIterator[Any]:
    """A connection (autocommit off, UTC) to the migrated database, emptied before the test."""
    connection = await connect(migrated_db_url)
    try:
        await _clear(connection)
        yield connection
    finally:
        await connection.rollback()
        await connection.ensure_closed()


@pytest.fixture
async def other_conn(migrated_db_url: str) -> AsyncIterator[Any]:
    """A second, independent connection to the same database."""
    connection = await connect(migrated_db_url)
    try:
        yield connection
    finally:
        await connection.rollback()
        await connection.ensure_closed()
