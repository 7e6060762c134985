"""Both workers replaced under load (what the fleet benchmark's `--phase` mode does): the two workers of the group
are stopped (SIGTERM, one after the other as bench/fleet.py does, or kill -9) and two new ones started while events
keep arriving; in the staggered case the second new one joins while the first is catching up (a rebalance during
the catch-up). The new workers must fold everything accepted: every log row once, every task and agent row as
expected (tests/faults/checker.py), and the stored positions of both stages at the end of their topics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.faults.chaos import fault_run
from tests.faults.workload import build, default_events
from tests.harness import WebProcess, WorkerProcess, fold_caught_up, get_json

pytestmark = pytest.mark.faults


async def replace_both(workers: list[WorkerProcess], *, kill: bool, stagger: float = 0.0) -> None:
    """Stop every worker in turn (SIGTERM, each waited for), or kill -9 them all, then start as many new ones with
    the same settings (the same groups, the same stored positions), `stagger` seconds apart."""
    started = time.monotonic()
    for worker in workers:
        await asyncio.to_thread(worker.kill if kill else worker.stop)
    print(f"  {'killed' if kill else 'stopped'} both workers (took {time.monotonic() - started:.1f}s)")
    for n, worker in enumerate(workers):
        if n:
            await asyncio.sleep(stagger)
        worker.start()
    print(f"  started two new workers{f', {stagger:.0f}s apart' if stagger else ''}")


async def healthz(workers: list[WorkerProcess]) -> list[Any]:
    """Each worker's /healthz checks, or why it did not answer (a worker still joining serves none yet)."""
    answers: list[Any] = []
    for worker in workers:
        try:
            status, body = await get_json(f"{worker.url}/healthz")
            answers.append((status, body.get("checks")))
        except Exception as exc:  # noqa: BLE001 - shown, not asserted: the fold's rows are what the test checks
            answers.append(type(exc).__name__)
    return answers


@pytest.mark.parametrize("how", ["sigterm", "sigkill", "staggered"])
async def test_both_workers_replaced_under_load(how: str, settings: Settings, pool: Any, tmp_path: Path) -> None:
    load = build(default_events(6_000), agents=24, tasks_per_agent=4)
    probes: list[Any] = []

    async def chaos(workers: list[WorkerProcess], web: WebProcess) -> None:
        await asyncio.sleep(4.0)
        await replace_both(workers, kill=how == "sigkill", stagger=8.0 if how == "staggered" else 0.0)
        for _ in range(6):  # the new ones join (half a session timeout) and fold while the load goes on
            await asyncio.sleep(2.0)
            probes.append(await healthz(workers))

    table = await fault_run(
        f"both workers replaced ({how})", settings, pool, load, tmp_path, workers=2, chaos=chaos, seconds=14.0,
        fold_timeout=180.0,
    )  # fmt: skip
    print("  /healthz of the new workers, every 2 s:\n   " + "\n   ".join(map(str, probes)))
    assert table.lost == 0 and table.double_applied == 0
    await fold_caught_up(settings, pool, timeout=60.0)
