"""The worker's /healthz, /readyz and /metrics against a real broker and database (issue 13).

A worker process folds a few events (applied, parked, invalid); its metrics must count them by outcome, the dlq
by reason, report the parked event and the agents, and lag 0 once the fold caught up. The health verdicts'
logic (lag without progress for the stall time) is tested on the monitor itself, with a real database.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import topics
from app.commands.broker import free_port
from app.settings import Settings
from streams.ends import BrokerEnds
from streams.monitor import FoldMonitor
from tests.harness import WorkerProcess, eventually, fetch_all, fold_caught_up, get_json, produce, sample, scrape
from tests.integration.test_fold_engine import agent_registered, project_upserted, task_created

pytestmark = pytest.mark.integration


@pytest.fixture
def json_worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker logging JSON lines, as the manifests run it."""
    process = WorkerProcess(settings.model_copy(update={"log_format": "json"}), log_path=tmp_path / "worker.log").start()
    yield process
    process.stop()


async def test_worker_serves_probes_and_counts_what_it_folds(settings: Settings, pool: Any, json_worker: WorkerProcess) -> None:
    worker = json_worker
    u = uuid.uuid4().hex[:8]
    project, task, agent, orphan = f"p-o-{u}", f"t-o-{u}", f"a-o-{u}", f"t-missing-{u}"
    control, agents = settings.topic(topics.CONTROL_EVENTS), settings.topic(topics.AGENT_EVENTS)
    started = {"id": f"s-{u}", "type": "task.started", "time": "2026-11-22T10:05:00Z", "agent_id": agent, "task_id": orphan}
    await produce(settings.kafka_bootstrap, [
        (control, project.encode(), json.dumps(project_upserted(project)).encode()),
        (control, task.encode(), json.dumps(task_created(task, project)).encode()),
        (agents, agent.encode(), json.dumps(agent_registered(agent)).encode()),
        (agents, agent.encode(), json.dumps(started).encode()),  # its task never comes: parked
        (control, b"x", b"not json"),  # invalid: dlq
    ])  # fmt: skip
    await fold_caught_up(settings, pool)

    async def ready() -> bool:
        status, _ = await get_json(f"{worker.url}/readyz")
        return status == 200

    await eventually(ready, what="the worker's /readyz to answer 200")
    status, body = await get_json(f"{worker.url}/healthz")
    assert status == 200, body
    parked = int((await fetch_all(pool, "SELECT COUNT(*) AS n FROM parked_events"))[0]["n"])

    async def settled() -> Any:  # the gauges are sampled every few seconds
        got = await scrape(worker.url)
        lag = [v for (name, _), v in got.items() if name == "aiworker_fold_lag_records"]
        return got if lag and not any(lag) and sample(got, "aiworker_parked_events") == parked else None

    got = await eventually(settled, what="lag 0 and the parked event in the worker's metrics")
    assert sample(got, "aiworker_fold_events_total", source="control", type="project.upserted", outcome="applied") == 1
    assert sample(got, "aiworker_fold_events_total", source="control", type="task.created", outcome="applied") == 1
    assert sample(got, "aiworker_fold_events_total", source="agent", type="agent.registered", outcome="applied") == 1
    # task.started is folded as two halves (its task's, its agent's: streams/route.py), both waiting for the task
    assert sample(got, "aiworker_fold_events_total", source="agent", type="task.started", outcome="parked") == 2
    assert sample(got, "aiworker_fold_events_total", source="control", type="unknown", outcome="invalid") == 1
    assert sample(got, "aiworker_dlq_records_total", reason="invalid") == 1
    assert sample(got, "aiworker_dlq_records_total", reason="refused") == 0  # every reason class is there, from 0
    assert sample(got, "aiworker_ready") == 1
    assert (sample(got, "aiworker_fold_batch_seconds_count", stage="fold") or 0) >= 1
    assert (sample(got, "aiworker_fold_batch_seconds_count", stage="route") or 0) >= 1
    statuses = await fetch_all(pool, "SELECT status, COUNT(*) AS n FROM agents GROUP BY status")
    for row in statuses:
        assert sample(got, "aiworker_agents", status=row["status"]) == row["n"]
    assert sample(got, "aiworker_park_seconds") == settings.park_seconds
    assert "aiworker_outbox_oldest_unpublished_seconds" in {name for name, _ in got}
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    (refusal,) = [line for line in lines if line.get("outcome") == "refused"]
    assert refusal["topic"] == control and "record is not JSON" in refusal["message"]
    assert isinstance(refusal["partition"], int) and isinstance(refusal["offset"], int)
    folded = [line["message"] for line in lines if line["message"].startswith("folded ")]
    assert any("1 invalid" in m and "1 to the dlq (invalid)" in m for m in folded), folded
    assert not [line for line in lines if line["logger"].startswith(("faust", "mode", "aiokafka", "streams.faust_transport"))
                and line["level"] == "info"], "Faust's and aiokafka's lines stay at WARNING"  # fmt: skip


async def test_health_fails_only_for_lag_without_progress(settings: Settings, pool: Any) -> None:
    monitor = FoldMonitor(settings.model_copy(update={"worker_stall_seconds": 30.0}), {"fold": f"c-{uuid.uuid4().hex[:8]}"})
    topic = settings.topic(topics.FOLD_TASKS)
    consumer = monitor.stages["fold"].consumer
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO fold_positions (consumer, topic, `partition`, next_offset) VALUES (%s, %s, 0, 40), (%s, %s, 1, 7)",
            [consumer, topic, consumer, topic],
        )
        await conn.commit()
    watermarks: dict[tuple[str, int], int | None] = {(topic, 0): 42, (topic, 1): 7, (topic, 2): None}
    monitor.attach("fold", lambda: dict(watermarks))
    await monitor.sample_once(pool)
    assert monitor.stages["fold"].lag == {(topic, 0): 2, (topic, 1): 0}  # partition 2: no fetch answer yet
    assert monitor.health()[0], "lag with recent progress is healthy"
    monitor.stages["fold"].progressed = time.monotonic() - 31  # nothing committed for longer than the stall time
    healthy, checks = monitor.health()
    assert not healthy and "stalled: 2 record(s) of lag" in checks["fold"]
    watermarks[(topic, 0)] = 40  # the fold caught up (no lag): healthy again however long it has been idle
    await monitor.sample_once(pool)
    assert monitor.health()[0]
    ready, checks = await monitor.readiness(pool)
    assert ready and checks["database"] == "ok"
    monitor.attach("fold", lambda: {})
    ready, checks = await monitor.readiness(pool)
    assert not ready and "owns no partition" in checks["partitions"]


async def test_a_partition_owned_but_not_fetched_shows_its_lag(settings: Settings, pool: Any) -> None:
    """A consumer that owns a partition but no longer fetches it (paused by a rebalance that never resumed it, a
    stopped fetcher) keeps its last high watermark, or none: the broker's listed end still shows the records behind
    the stored position, so the lag is there and /healthz fails once the stage made no progress for the stall time.
    When the broker does not list the ends, the lag falls back to the high watermarks and the check says so."""
    stall = settings.model_copy(update={"worker_stall_seconds": 30.0})
    topic = settings.topic(topics.FOLD_TASKS)
    for _ in range(3):  # a batch each: Tansu lists a partition's end as its last batch's base offset + 1
        await produce(settings.kafka_bootstrap, [(topic, b"k", b"{}")], partition=1)
    never_fetched: dict[tuple[str, int], int | None] = {(topic, 0): None, (topic, 1): None}
    ends = BrokerEnds(settings.kafka_bootstrap)
    try:
        monitor = FoldMonitor(stall, {"fold": f"c-{uuid.uuid4().hex[:8]}"}, ends=ends)
        monitor.attach("fold", lambda: dict(never_fetched))
        await monitor.sample_once(pool)
        assert monitor.stages["fold"].lag == {(topic, 0): 0, (topic, 1): 3}
        monitor.stages["fold"].progressed = time.monotonic() - 31
        healthy, checks = monitor.health()
        assert not healthy and "stalled: 3 record(s) of lag" in checks["fold"], checks
    finally:
        await ends.close()
    nowhere = BrokerEnds(f"127.0.0.1:{free_port()}", timeout=1.0)
    monitor = FoldMonitor(stall, {"fold": f"c-{uuid.uuid4().hex[:8]}"}, ends=nowhere)
    monitor.attach("fold", lambda: {(topic, 0): None, (topic, 1): 2})
    await monitor.sample_once(pool)
    assert monitor.stages["fold"].lag == {(topic, 1): 2}
    healthy, checks = monitor.health()
    assert healthy and "did not list" in checks["ends"], checks
    await nowhere.close()


async def test_a_fold_stuck_waiting_for_the_database_fails_healthz_until_it_commits(
    settings: Settings, pool: Any, tmp_path: Path
) -> None:
    """The fold's stored positions are locked by another transaction: its batch waits (and retries the lock wait
    timeout), commits nothing, so with lag /healthz fails after WORKER_STALL_SECONDS; released, it folds and heals."""
    stalled = settings.model_copy(update={"worker_stall_seconds": 2.0})
    worker = WorkerProcess(stalled, log_path=tmp_path / "worker.log").start()
    agents = settings.topic(topics.AGENT_EVENTS)
    try:
        first, second = (f"a-stall-{uuid.uuid4().hex[:8]}" for _ in range(2))
        await produce(settings.kafka_bootstrap, [(agents, first.encode(), json.dumps(agent_registered(first)).encode())])
        await fold_caught_up(settings, pool)
        async with pool.acquire() as locker, locker.cursor() as cur:
            await locker.begin()
            # next-key locks: the consumer's rows and the gaps between them (no new partition row either)
            await cur.execute("SELECT * FROM fold_positions WHERE consumer = %s FOR UPDATE", [settings.worker_id])
            await produce(settings.kafka_bootstrap, [(agents, second.encode(), json.dumps(agent_registered(second)).encode())])

            async def unhealthy() -> Any:
                status, body = await get_json(f"{worker.url}/healthz")
                return body if status == 503 else None

            body = await eventually(unhealthy, timeout=60, what="/healthz to fail while the fold cannot commit")
            assert "stalled" in body["checks"]["fold"], body
            await locker.rollback()

        async def healthy() -> bool:
            status, _ = await get_json(f"{worker.url}/healthz")
            return status == 200

        await eventually(healthy, timeout=60, what="/healthz to recover once the fold commits")
        rows = await fetch_all(pool, "SELECT id FROM agents WHERE id = %s", [second])
        assert rows, "the event waited, it was not skipped"
    finally:
        worker.stop()
        print("---- worker log (tail) ----\n" + worker.log()[-3000:])
