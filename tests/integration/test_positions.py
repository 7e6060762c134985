"""Positions are the database's: on assignment the fold and the router resume from `fold_positions`, not from
Kafka's committed offsets (faust-streaming #606 is a bug that commits wrong ones).

The worker folds a first round, stops; a second round is produced meanwhile; wrong offsets are committed for both
consumer groups (too far: inside the second round, so Kafka's offsets would skip records; too early: 0, so they
would replay the first round); the worker starts again. Every record of both rounds is applied, and nothing is
delivered again below the stored positions (the worker logs every such record, and none appears).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from app import topics
from app.settings import Settings
from app.topics import router_group
from tests.harness import WorkerProcess, end_offsets, eventually, fetch_all, fold_caught_up, produce
from tests.integration.test_fold_engine import T0, project_upserted, task_created

PARTITIONS = range(4)  # the test settings' topic_partitions


class _AsFaust(RoundRobinPartitionAssignor):  # type: ignore[misc]
    """Round robin under the name of Faust's assignor: a group keeps its members' protocol (Tansu accepts commits only
    from a member, so the test joins the fold's group as one)."""

    name = "faust"


async def _commit(settings: Settings, group: str, offsets: dict[tuple[str, int], int], *, faust: bool = False) -> None:
    """Commit `offsets` for `group` as a member owning every partition (no worker is running), as a buggy client
    would; then leave the group."""
    wanted = {TopicPartition(t, p) for t, p in offsets}
    strategy = (_AsFaust,) if faust else (RoundRobinPartitionAssignor,)
    consumer = AIOKafkaConsumer(
        *sorted({t for t, _ in offsets}), bootstrap_servers=settings.kafka_bootstrap, group_id=group,
        enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=1000,
        partition_assignment_strategy=strategy,
    )  # fmt: skip
    await consumer.start()
    try:

        async def joined() -> bool:
            await consumer.getmany(timeout_ms=200)
            return set(consumer.assignment()) == wanted

        await eventually(joined, timeout=60, what=f"joining {group}")
        await consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
        committed = {tp: await consumer.committed(tp) for tp in wanted}
        assert committed == {TopicPartition(t, p): o for (t, p), o in offsets.items()}, committed
    finally:
        await consumer.stop()


def _wrong(ends: dict[tuple[str, int], int], topic: str, ahead: int) -> dict[tuple[str, int], int]:
    """Too far (the end of the first round + `ahead`) for partitions 0 and 1, too early (0) for 2 and 3."""
    return {(topic, p): ends[(topic, p)] + ahead if p < 2 else 0 for p in PARTITIONS}


async def test_wrong_kafka_offsets_neither_skip_nor_replay(settings: Settings, pool: Any, tmp_path: Path) -> None:
    u = uuid.uuid4().hex[:8]
    agent_topic, control = settings.topic(topics.AGENT_EVENTS), settings.topic(topics.CONTROL_EVENTS)
    project = f"p-pos-{u}"

    def agents(round_: int, count: int) -> list[tuple[int, str]]:
        return [(p, f"a-pos-{u}-{round_}-{p}-{i}") for p in PARTITIONS for i in range(count)]

    def tasks(round_: int, count: int) -> list[tuple[int, str]]:
        return [(p, f"t-pos-{u}-{round_}-{p}-{i}") for p in PARTITIONS for i in range(count)]

    async def send(agent_ids: list[tuple[int, str]], task_ids: list[tuple[int, str]]) -> None:
        for p in PARTITIONS:  # explicit partitions: each one gets its share of both rounds
            records = [(agent_topic, a.encode(), json.dumps({"id": f"r{a}", "type": "agent.registered", "time": T0,
                        "agent_id": a, "pod_name": a}).encode()) for q, a in agent_ids if q == p]  # fmt: skip
            records += [(control, t.encode(), json.dumps(task_created(t, project)).encode()) for q, t in task_ids if q == p]
            await produce(settings.kafka_bootstrap, records, partition=p)

    first = WorkerProcess(settings, log_path=tmp_path / "first.log").start()
    try:
        await produce(settings.kafka_bootstrap, [(control, project.encode(), json.dumps(project_upserted(project)).encode())])
        await send(agents(1, 3), tasks(1, 3))
        await fold_caught_up(settings, pool, timeout=120)
    finally:
        first.stop()
    folded = [settings.topic(topics.FOLD_TASKS), agent_topic]
    ends = await end_offsets(settings.kafka_bootstrap, [*folded, control])
    await send(agents(2, 6), tasks(2, 6))  # while no worker runs: Kafka's committed offsets would decide where it resumes
    await _commit(settings, settings.worker_id, {**_wrong(ends, agent_topic, 3), **_wrong(ends, folded[0], 0)}, faust=True)
    await _commit(settings, router_group(settings), {**_wrong(ends, control, 3), **_wrong(ends, agent_topic, 3)})

    second = WorkerProcess(settings, log_path=tmp_path / "second.log").start()
    try:
        await fold_caught_up(settings, pool, timeout=120)
        every_agent = [a for _, a in agents(1, 3) + agents(2, 6)]
        every_task = [t for _, t in tasks(1, 3) + tasks(2, 6)]
        found = await fetch_all(pool, "SELECT id FROM agents WHERE id LIKE %s", [f"a-pos-{u}-%"])
        assert sorted(r["id"] for r in found) == sorted(every_agent)  # nothing skipped
        found = await fetch_all(pool, "SELECT id FROM tasks WHERE project_id = %s", [project])
        assert sorted(r["id"] for r in found) == sorted(every_task)
        log = second.log()
        assert "resuming from the stored positions, nothing is skipped" in log  # the wrong commits were seen, not followed
        assert "below the stored positions skipped" not in log, log[-4000:]  # nothing replayed
    finally:
        second.stop()
        print("---- second worker log (tail) ----\n" + second.log()[-6000:])
