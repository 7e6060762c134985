"""Running a fault run: the processes of one run, the fold's progress, and the run itself."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.settings import Settings
from tests.faults.checker import Table, check
from tests.faults.driver import Driver
from tests.faults.workload import Workload
from tests.harness import WebProcess, WorkerProcess, eventually, fetch_all


async def fold_progress(pool: Any, settings: Settings) -> int:
    rows = await fetch_all(pool, "SELECT COALESCE(SUM(next_offset), 0) AS n FROM fold_positions WHERE consumer = %s",
                           [settings.worker_id])  # fmt: skip
    return int(rows[0]["n"])


async def wait_for_fold_progress(pool: Any, settings: Settings, since: int, timeout: float = 120.0) -> int:
    async def moved() -> int | None:
        now = await fold_progress(pool, settings)
        return now if now > since else None

    return await eventually(moved, timeout=timeout, what="the fold to make progress")


def schedule(count: int, seconds: float) -> list[float]:
    """`count` random moments in (0, seconds), one in each of `count` equal windows (so restarts can finish)."""
    window = seconds / count
    return [i * window + random.uniform(0.15, 0.85) * window for i in range(count)]


async def kill_at(moments: list[float], worker: WorkerProcess, *, restart: bool = True) -> None:
    """kill -9 the worker at each moment (seconds from now), restarting it at once unless told not to."""
    started = time.monotonic()
    for moment in moments:
        await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
        worker.kill()
        print(f"  kill -9 worker at {moment:.1f}s" + (", restarted" if restart else ""))
        if restart:
            worker.start()


async def setup_folded(driver: Driver, load: Workload, pool: Any) -> None:
    await driver.setup(load)

    async def all_tasks() -> bool:
        rows = await fetch_all(pool, "SELECT COUNT(*) AS n FROM tasks WHERE id LIKE %s", [f"{load.tag}-%"])
        return int(rows[0]["n"]) == len(load.tasks)

    await eventually(all_tasks, timeout=120, what="the setup (projects and tasks) to be folded")


async def fault_run(
    name: str, settings: Settings, pool: Any, load: Workload, tmp_path: Path, *, workers: int = 1,
    chaos: Callable[[list[WorkerProcess], WebProcess], Awaitable[None]], fold_timeout: float = 300.0, seconds: float = 25.0,
) -> Table:  # fmt: skip
    web = WebProcess(settings, tmp_path / "web.log").start()
    running = [WorkerProcess(settings, tmp_path / f"worker{i}.log").start() for i in range(workers)]
    try:
        driver = Driver(
            lambda: web.url,
            settings.service_token.get_secret_value(),
            settings.gitea_secret.get_secret_value(),
            rate=load.size / seconds,
        )
        await setup_folded(driver, load, pool)
        await asyncio.gather(driver.run(load), chaos(running, web))
        return await check(name, settings, pool, load, driver.sent, fold_timeout=fold_timeout)
    finally:
        for process in running:
            process.stop()
        web.stop()
        for process in running:
            print(f"---- {process.log_path.name} (tail) ----\n" + process.log()[-2500:])
