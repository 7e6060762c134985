"""A race of two workers (found by the fault suite, two workers with one killed): parked events woken meanwhile.

Worker A reads which entities have parked events without locks; worker B then creates the awaited row and wakes
them, and commits. A, still seeing its snapshot, parked the entity's next event behind events already applied,
waiting for a row that exists: nothing ever woke it (task.ready_for_review parked until the sweeper's dlq).
The snapshot is simulated here: the entity seems to wait for a row that exists and nothing is parked.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app import topics
from app.settings import Settings
from streams import parking
from streams.fold import Fold
from tests.harness import fetch_all
from tests.integration.test_fold_engine import T0, Feed, agent_registered, project_upserted, task_created


async def test_an_event_does_not_park_behind_events_woken_by_another_worker(
    settings: Settings, pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    u = uuid.uuid4().hex[:8]
    project, task, agent = f"p-w-{u}", f"t-w-{u}", f"a-w-{u}"
    setup = [
        feed.record(topics.CONTROL_EVENTS, project_upserted(project)),
        feed.record(topics.CONTROL_EVENTS, task_created(task, project)),
        feed.record(topics.AGENT_EVENTS, agent_registered(agent)),
    ]  # fmt: skip
    assert (await fold.apply_batch(setup)).applied == 3
    stale_load = parking.Parking.load

    async def stale(cur: Any, entities: Any) -> parking.Parking:
        loaded = await stale_load(cur, entities)
        loaded._waits.setdefault(task, ("agents", agent))  # what the snapshot saw before the other worker committed
        return loaded

    monkeypatch.setattr(parking.Parking, "load", staticmethod(stale))
    started = {"id": f"s{task}", "type": "task.started", "time": T0, "agent_id": agent, "task_id": task}
    stats = await fold.apply_batch([feed.record(topics.AGENT_EVENTS, started)])
    assert (stats.applied, stats.parked) == (1, 0), stats
    assert not await fetch_all(pool, "SELECT id FROM parked_events WHERE entity = %s", [task])
    [row] = await fetch_all(pool, "SELECT state FROM tasks WHERE id = %s", [task])
    assert row["state"] == "in_progress"
