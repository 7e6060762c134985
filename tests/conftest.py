"""Shared fixtures: a real Tansu broker on a free port and a fresh, migrated MariaDB database per session.

The MySQL-compatible server is AIWORKER_TEST_MYSQL_SERVER (default mysql://root@127.0.0.1:3306); when it is
local and down, it is started (or installed) the same way `aiworker-events dev` does it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.commands.broker import EmbeddedBroker
from app.settings import Settings, load_settings
from app.topics import ensure_topics
from db.migrate import drop_database, migrate
from db.pool import create_pool
from tests.harness import WorkerProcess

SERVER = os.environ.get("AIWORKER_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306").rstrip("/")


@pytest.fixture(scope="session")
def mysql_server() -> str:
    from app.commands.dev import ensure_database

    ensure_database(load_settings(database_url=f"{SERVER}/mysql"))
    return SERVER


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, for tests that stop, pause or kill it (the session's broker serves the rest)."""
    with EmbeddedBroker(log_path=tmp_path / "own-broker.log") as running:
        yield running


@pytest.fixture(scope="session")
async def database_url(mysql_server: str) -> AsyncIterator[str]:
    url = f"{mysql_server}/aiw_test_{uuid.uuid4().hex[:12]}"
    await migrate(url)
    yield url
    await drop_database(url)


@pytest.fixture
async def settings(broker: EmbeddedBroker, database_url: str, tmp_path: Path) -> Settings:
    """Settings of one test: its own topic prefix and consumer group on the session's broker and database."""
    tag = uuid.uuid4().hex[:8]
    made = load_settings(
        kafka_bootstrap=broker.bootstrap,
        database_url=database_url,
        topic_prefix=f"t{tag}.",
        worker_id=f"fold-{tag}",
        topic_partitions=4,
        service_token="service-token-for-tests",
        agent_token_key="agent-key-for-tests",
        gitea_secret="gitea-secret-for-tests",
        spool_dir=str(tmp_path / "spool"),
        kafka_session_timeout=6.0,
    )
    await ensure_topics(made, broker.bootstrap)
    return made


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    created = await create_pool(database_url, minsize=1, maxsize=4)
    yield created
    created.close()
    await created.wait_closed()


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A fold worker as its own OS process (`python -m app worker`), stopped after the test."""
    process = WorkerProcess(settings, log_path=tmp_path / "worker.log").start()
    yield process
    process.stop()
    print("---- worker log (tail) ----\n" + process.log()[-6000:])
