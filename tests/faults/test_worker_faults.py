"""Worker crashes: kill -9 at random moments while it folds; a second worker taking over. Nothing lost, nothing
applied twice, every transition on its topic (a duplicate only with the same CloudEvent id)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.faults.chaos import fault_run, kill_at, schedule
from tests.faults.workload import build, default_events
from tests.harness import WebProcess, WorkerProcess

pytestmark = pytest.mark.faults


async def test_worker_killed_three_times_during_a_20000_event_run(settings: Settings, pool: Any, tmp_path: Path) -> None:
    load = build(default_events(20_000))

    async def chaos(workers: list[WorkerProcess], web: WebProcess) -> None:
        await kill_at(schedule(3, 25.0), workers[0])

    table = await fault_run("worker kill -9 x3", settings, pool, load, tmp_path, chaos=chaos)
    assert table.lost == 0 and table.double_applied == 0


async def test_two_workers_one_killed_the_other_takes_over(settings: Settings, pool: Any, tmp_path: Path) -> None:
    load = build(default_events(6_000))

    async def chaos(workers: list[WorkerProcess], web: WebProcess) -> None:
        await kill_at(schedule(1, 12.0), workers[0], restart=False)

    table = await fault_run("2 workers, 1 killed", settings, pool, load, tmp_path, workers=2, chaos=chaos, seconds=12.0)
    assert table.lost == 0 and table.double_applied == 0
