"""The database goes away for 20 s mid-run (a private mariadbd, stopped and started by the test): the worker
does not crash or crash-loop, no offset is skipped, nothing accepted is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from app.settings import Settings
from db.migrate import migrate
from db.pool import create_pool
from tests.faults.chaos import fault_run
from tests.faults.mariadb import PrivateMariaDB
from tests.faults.workload import build, default_events
from tests.harness import WebProcess, WorkerProcess

pytestmark = pytest.mark.faults


@pytest.fixture
async def private_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrivateMariaDB]:
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb")).install().start()
    yield server
    server.stop()


async def test_database_down_for_20_seconds_mid_run(settings: Settings, private_db: PrivateMariaDB, tmp_path: Path) -> None:
    url = private_db.url("aiworker_faults")
    await migrate(url)
    run_settings = settings.model_copy(update={"database_url": SecretStr(url)})
    pool: Any = await create_pool(url, minsize=1, maxsize=4)
    load = build(default_events(6_000))

    async def chaos(workers: list[WorkerProcess], web: WebProcess) -> None:
        worker = workers[0]
        pid = worker.process.pid if worker.process else None
        await asyncio.sleep(4.0)
        private_db.stop()
        print("  mariadbd stopped for 20 s")
        await asyncio.sleep(20.0)
        assert worker.process is not None and worker.process.poll() is None, "the worker exited while the database was down"
        private_db.start()
        print("  mariadbd started again")
        assert worker.process is not None and worker.process.pid == pid, "the worker was restarted (crash loop?)"
        await pool.clear()  # the connections of the checker's pool died with the server

    try:
        table = await fault_run("mariadb down 20 s", run_settings, pool, load, tmp_path, chaos=chaos, seconds=16.0)
    finally:
        pool.close()
        await pool.wait_closed()
    assert table.lost == 0 and table.double_applied == 0
