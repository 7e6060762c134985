"""Liveness by the stream's clock (streams/liveness.py): an agent is offline when no heartbeat was *received* for
AGENT_OFFLINE_SECONDS by the ingest clock (the record's broker timestamp), not by its own `time` against the
worker's wall clock. Agents whose clocks are 5 minutes off do not flap; a fold held back does not mark them
offline; an agent that falls silent among others that go on still goes offline, once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from app import topics
from app.settings import Settings
from streams.fold import Fold
from streams.intake import ConsumedRecord
from streams.sweeper import Sweeper
from tests.harness import WorkerProcess, eventually, fetch_all, fold_caught_up

OFFLINE = 60


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _offline_transitions(pool: Any, settings: Settings, agents: list[str]) -> list[str]:
    """The agents of `agents` that a transition moved to offline (outbox rows of agent.transitions)."""
    rows = await fetch_all(pool, "SELECT message_key, payload FROM outbox WHERE topic = %s",
                           [settings.topic(topics.AGENT_TRANSITIONS)])  # fmt: skip
    return [
        r["message_key"]
        for r in rows
        if r["message_key"] in agents and json.loads(bytes(r["payload"]))["data"]["to"] == "offline"
    ]


async def test_agents_with_clocks_five_minutes_off_do_not_flap_and_a_silent_one_goes_offline(
    settings: Settings, pool: Any
) -> None:
    u = uuid.uuid4().hex[:8]
    skew = {f"a-fast-{u}": timedelta(minutes=5), f"a-slow-{u}": timedelta(minutes=-5), f"a-true-{u}": timedelta()}
    silent = f"a-true-{u}"
    # Every heartbeat written (no granularity: tests/integration/test_heartbeat_granularity.py), so the bound is exact.
    settings = settings.model_copy(update={"agent_offline_seconds": OFFLINE, "heartbeat_granularity_seconds": 0})
    fold, sweeper = Fold(pool, settings), Sweeper(pool, settings)
    topic = settings.topic(topics.AGENT_EVENTS)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    offset = 0
    # A partition of the test's own: the sweeper's clock is per partition, and other tests' agents folded on
    # partition 0 of the same database (just now, by the wall clock) would move it ten minutes ahead of this test's.
    partition = 900 + uuid.uuid4().int % 100

    def record(agent: str, event: dict[str, Any], received: datetime) -> ConsumedRecord:
        nonlocal offset
        offset += 1
        body = {"id": f"{event['type']}-{agent}-{offset}", "time": _iso(received + skew[agent]), "agent_id": agent, **event}
        return ConsumedRecord(topic, partition, offset - 1, agent.encode(), json.dumps(body).encode(), received.timestamp())

    registered = [record(a, {"type": "agent.registered", "pod_name": a}, start) for a in skew]
    assert (await fold.apply_batch(registered)).applied == 3
    for step in range(1, 9):  # a heartbeat every 20 s of received time; the silent agent stops after the first 40 s
        received = start + timedelta(seconds=20 * step)
        beats = [record(a, {"type": "agent.heartbeat", "status": "idle"}, received) for a in skew if a != silent or step <= 2]
        await fold.apply_batch(beats)
        await sweeper.sweep_once(received + timedelta(seconds=1))  # the worker's wall clock: a second after ingest
        rows = await fetch_all(pool, "SELECT id, status FROM agents WHERE id IN (%s, %s, %s)", list(skew))
        status = {r["id"]: r["status"] for r in rows}
        assert status[f"a-fast-{u}"] == status[f"a-slow-{u}"] == "idle", (step, status)  # no flap, either way off
        assert status[silent] == ("offline" if 20 * step - 40 >= OFFLINE else "idle"), (step, status)
    assert await _offline_transitions(pool, settings, list(skew)) == [silent]  # once
    # The worker's wall clock far ahead of ingest (the fold lags): still no agent of a live partition goes offline.
    await sweeper.sweep_once(start + timedelta(seconds=160 + settings.agent_clock_lag_seconds - 1))
    assert await _offline_transitions(pool, settings, list(skew)) == [silent]


async def test_a_fold_held_back_marks_no_agent_offline(settings: Settings, pool: Any, tmp_path: Path) -> None:
    """The worker folds heartbeats; then its fold is held back (the positions of agent.events locked) for three
    times AGENT_OFFLINE_SECONDS while heartbeats keep arriving and the sweeper keeps sweeping; then it catches up.
    By the worker's wall clock every agent was silent that long; by the stream's clock none was."""
    u = uuid.uuid4().hex[:8]
    agents = [f"a-hold-{u}-{i}" for i in range(4)]
    settings = settings.model_copy(update={"agent_offline_seconds": 5})
    worker = WorkerProcess(settings, log_path=tmp_path / "worker.log").start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    topic = settings.topic(topics.AGENT_EVENTS)
    beating = True

    async def send(agent: str, event: dict[str, Any]) -> None:
        body = {"id": f"{event['type']}-{uuid.uuid4().hex}", "time": _iso(datetime.now(UTC)), "agent_id": agent, **event}
        await producer.send_and_wait(topic, json.dumps(body).encode(), key=agent.encode())

    async def heartbeats() -> None:
        while beating:
            for agent in agents:
                await send(agent, {"type": "agent.heartbeat", "status": "idle"})
            await asyncio.sleep(1.0)

    try:
        for agent in agents:
            await send(agent, {"type": "agent.registered", "pod_name": agent})
        beat = asyncio.create_task(heartbeats())

        async def idle() -> bool:
            sql = "SELECT id FROM agents WHERE status = 'idle' AND last_seen_at IS NOT NULL AND id LIKE %s"
            rows = await fetch_all(pool, sql, [f"a-hold-{u}-%"])
            return len(rows) == len(agents)

        await eventually(idle, timeout=90, what="the agents idle, their heartbeats received")
        async with pool.acquire() as locker:
            async with locker.cursor() as cur:
                await locker.begin()
                await cur.execute(
                    "SELECT next_offset FROM fold_positions WHERE consumer = %s AND topic = %s FOR UPDATE",
                    [settings.worker_id, topic],
                )  # fmt: skip
                assert await cur.fetchall()
                await asyncio.sleep(3 * settings.agent_offline_seconds)  # held back; the sweeper sweeps every second
            await locker.rollback()
        await asyncio.sleep(2.0)
        beating = False
        await beat
        await fold_caught_up(settings, pool, timeout=90)
        assert await _offline_transitions(pool, settings, agents) == []
        rows = await fetch_all(pool, "SELECT status FROM agents WHERE id LIKE %s", [f"a-hold-{u}-%"])
        assert {r["status"] for r in rows} == {"idle"}
        assert "sweeper: this worker marks stale agents offline" in worker.log()  # the sweeper ran meanwhile
    finally:
        beating = False
        await producer.stop()
        worker.stop()
        print("---- worker log (tail) ----\n" + worker.log()[-4000:])
