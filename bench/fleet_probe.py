"""What the fleet benchmark samples every second: fold lag, CPU seconds and RSS per process, the database's counters.

Fold lag of a partition: the age of its oldest record not folded yet, i.e. now minus the broker time (CreateTime) of
the record at the stored position (`fold_positions.next_offset`, what the fold committed), 0 when the position is at
the end. A tail consumer (no group) reads every partition from the beginning and keeps each record's broker time by
offset, so that the age is exact to the millisecond; the stored positions are read from the database. Stages:
`fold` (the worker id: agent.events straight, fold.tasks) and `route` (the router: agent.events, control.events).
The fold lag of a sample is the largest over the stage's partitions.

Each worker's own counters (`/metrics`: fold and route batches, their seconds, events, database retries) are read
every FOLD_COUNTERS_EVERY samples, so that the report can say how big and how long the fold's transactions were.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

TICKS = os.sysconf("SC_CLK_TCK")
FOLD_COUNTERS_EVERY = 5
COUNTERS = {
    "aiworker_fold_batch_seconds_count": "batches", "aiworker_fold_batch_seconds_sum": "batch_seconds",
    "aiworker_fold_events_total": "events", "aiworker_db_retries_total": "retries",
}  # fmt: skip
"""The worker's counters the report uses, summed per stage (the `stage` label; events are the fold's)."""
STATUS = ("Com_commit", "Com_insert", "Com_update", "Com_select", "Com_delete", "Innodb_rows_inserted",
          "Innodb_rows_updated", "Innodb_data_fsyncs", "Innodb_os_log_written", "Innodb_data_written")  # fmt: skip


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (/proc/<pid>/stat), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def pid_of(name: str) -> int | None:
    """The pid of the process whose command name is `name` (e.g. mariadbd), the first found."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as handle:
                if handle.read().strip() == name:
                    return int(entry)
    return None


@dataclass
class CpuMeter:
    """CPU seconds per role (summed over the role's processes, also those that ended: a restarted worker)."""

    pids: dict[str, list[int]] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)

    def add(self, role: str, pid: int) -> None:
        self.pids.setdefault(role, []).append(pid)
        self.last[pid] = cpu_seconds(pid) or 0.0

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for role, pids in self.pids.items():
            for pid in pids:
                now = cpu_seconds(pid)
                if now is not None:
                    self.last[pid] = now
                out[role] = out.get(role, 0.0) + self.last[pid]
        return out


class Tail:
    """Broker times of every record of some topics, by partition and offset (see the module docstring)."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.times: dict[tuple[str, int], array[float]] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50,
                                    check_crcs=False, max_partition_fetch_bytes=4 << 20)  # fmt: skip
        await consumer.start()
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in self.topics for p in sorted(consumer.partitions_for_topic(t) or set())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        for tp in tps:
            self.times[(tp.topic, tp.partition)] = array("d")
        self.consumer = consumer
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self.consumer is not None
        while True:
            batch = await self.consumer.getmany(timeout_ms=100, max_records=20_000)
            for tp, records in batch.items():
                times = self.times[(tp.topic, tp.partition)]
                for record in records:
                    at = record.timestamp / 1000.0
                    while len(times) < record.offset:  # a gap (none on a plain topic): the next record's time
                        times.append(at)
                    if len(times) == record.offset:
                        times.append(at)

    def age(self, topic: str, partition: int, position: int, now: float) -> float:
        """Seconds since the oldest record at or after `position` was produced; 0 when there is none."""
        times = self.times.get((topic, partition))
        if times is None or position >= len(times):
            return 0.0
        return max(0.0, now - times[position])

    def ends(self) -> dict[tuple[str, int], int]:
        return {tp: len(times) for tp, times in self.times.items()}

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.consumer is not None:
            await self.consumer.stop()


async def positions(pool: Any) -> dict[tuple[str, str, int], int]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT consumer, topic, `partition`, next_offset FROM fold_positions")
        rows = await cur.fetchall()
        await conn.commit()
    return {(str(c), str(t), int(p)): int(o) for c, t, p, o in rows}


async def db_status(pool: Any) -> dict[str, float]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        names = ", ".join(f"'{name}'" for name in STATUS)
        await cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
        rows = await cur.fetchall()
        await conn.commit()
    return {str(name): float(value) for name, value in rows}


@dataclass
class Sample:
    at: float
    lag: dict[str, float]
    cpu: dict[str, float]
    rss: dict[str, float]
    db: dict[str, float]
    worst: dict[str, str] = field(default_factory=dict)
    """The partition of each stage's largest lag."""
    workers: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per worker role, its counters (COUNTERS, `<stage>.<name>`), in every FOLD_COUNTERS_EVERY-th sample."""


async def worker_counters(session: Any, url: str) -> dict[str, float]:
    """A worker's COUNTERS from its /metrics, summed per stage (`fold.batches`, `route.batch_seconds`, ...)."""
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            name = COUNTERS.get(metric.name)
            if name is not None:
                key = f"{metric.labels.get('stage', 'fold')}.{name}"
                out[key] = out.get(key, 0.0) + metric.value
    return out


async def sample(
    pool: Any,
    tail: Tail,
    stages: dict[str, tuple[str, list[str]]],
    cpu: CpuMeter,
    rss_pids: dict[str, int],
    workers: dict[str, str] | None = None,
    session: Any = None,
) -> Sample:
    """One sample: per stage (consumer name, its topics) the largest partition age; CPU totals; RSS; DB counters;
    the counters of `workers` (role -> URL), when given."""
    stored = await positions(pool)
    now = time.time()
    lag: dict[str, float] = {}
    worst: dict[str, str] = {}
    for stage, (consumer, topics) in stages.items():
        ages = [
            (tail.age(topic, partition, stored.get((consumer, topic, partition), 0), now), f"{topic}/{partition}")
            for (topic, partition) in tail.times
            if topic in topics
        ]
        lag[stage], worst[stage] = max(ages, default=(0.0, ""))
    rss = {role: value for role, pid in rss_pids.items() if (value := rss_mb(pid)) is not None}
    counters: dict[str, dict[str, float]] = {}
    for role, url in (workers or {}).items():
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            counters[role] = await worker_counters(session, url)
    return Sample(now, lag, cpu.totals(), rss, await db_status(pool), worst, counters)


def drained(tail: Tail, stored: dict[tuple[str, str, int], int], stages: dict[str, tuple[str, list[str]]]) -> bool:
    """Whether every stage's stored positions are at the ends the tail has seen."""
    return all(
        stored.get((consumer, topic, partition), 0) >= end
        for consumer, topics in stages.values()
        for (topic, partition), end in tail.ends().items()
        if topic in topics and end > 0
    )
