"""What the worker shows an operator: its metrics, /healthz (the fold progresses) and /readyz.

Lag, per stage (`fold`: fold.tasks and agent.events under the worker's consumer name; `route`: the input
topics under the router's) and owned partition: the partition's end minus the stored position. The end is the
larger of the high watermark the broker sent with the consumer's last fetch answer (aiokafka's `highwater()`) and
the end offset the broker lists for it (ListOffsets, streams/ends.py, asked on every sample): the high watermark
alone stays where it was when a partition is owned but no longer fetched (paused by a rebalance, a stopped
fetcher), so such a partition would show no lag however many records arrive behind it; ListOffsets alone falls
short on Tansu (the last batch's base offset + 1 after batched writes). The stored position is the larger of
`fold_positions.next_offset` (read every SAMPLE_SECONDS) and what this process committed since. A partition with
neither a fetch answer nor a listed end (the broker did not answer) has no lag sample.

Progress: a stage progresses when it commits a batch, or has no lag. /healthz fails when a stage has lag and
made no progress for AIWORKER_WORKER_STALL_SECONDS: a batch retrying database trouble commits nothing, so it
counts as no progress, and neither does a partition that is owned but not fetched. It fails as well while a loop
is held (db/errors.py `Health`: a failure that hits every record alike; the check says since when and why).
/readyz fails while the worker owns no partition of either stage, or the database does not answer. The outbox,
parked and agent gauges are sampled on the same timer (cheap indexed reads, db/observe.py); they describe the
whole database, so every worker reports the same values (use max()).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError
from asyncmy.errors import MySQLError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.observe import Verdict
from app.settings import Settings
from db import observe as sql
from db.errors import Health
from db.pool import describe_error, ping
from streams.intake import ConsumedRecord
from streams.outcomes import DLQ_REASONS, FoldStats

log = logging.getLogger(__name__)
SAMPLE_SECONDS = 5.0
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
Owned = Callable[[], dict[tuple[str, int], int | None]]
"""A stage's owned partitions, each with the high watermark of its last fetch answer (None: none yet)."""
Ends = Callable[[list[tuple[str, int]]], Awaitable[dict[tuple[str, int], int]]]
"""The end offsets the broker lists for these partitions (streams/ends.py `BrokerEnds`)."""


@dataclass(slots=True)
class Stage:
    consumer: str
    owned: Owned | None = None
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    progressed: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class Sample:
    outbox: sql.Backlog
    parked: sql.Backlog
    agents: dict[str, int]


class FoldMonitor:
    """The worker's registry, its counters, the sampled gauges and the health verdicts; see the module docstring."""

    def __init__(self, settings: Settings, stages: dict[str, str], loops: Health | None = None, ends: Ends | None = None) -> None:
        self.settings = settings
        self.loops = loops or Health()
        self.ends = ends
        self.ends_error: str | None = None
        self.stages = {name: Stage(consumer) for name, consumer in stages.items()}
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "aiworker_fold_events", "events the fold took in, by source, type and outcome", ["source", "type", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.log_lines = Counter("aiworker_fold_log_lines", "agent log lines written", registry=self.registry)
        self.batch_seconds = Histogram(
            "aiworker_fold_batch_seconds", "time from a batch's start to its commit, retries included, by stage", ["stage"],
            buckets=BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.db_retries = Counter(
            "aiworker_db_retries", "batch attempts that failed on database trouble and were tried again", ["stage"],
            registry=self.registry,
        )  # fmt: skip
        for stage in self.stages:
            self.db_retries.labels(stage)
        park = Gauge("aiworker_park_seconds", "AIWORKER_PARK_SECONDS: parked events older go to the dlq", registry=self.registry)
        park.set(settings.park_seconds)
        self.dlq: dict[str, int] = dict.fromkeys(DLQ_REASONS, 0)
        self.dlq_sources: list[tuple[str, Callable[[], int]]] = []
        self.sample: Sample | None = None
        self.sample_error: str | None = "not sampled yet"
        self.registry.register(_Sampled(self))

    def attach(self, stage: str, owned: Owned | None) -> None:
        """The stage's consumer (None: it stopped); its owned partitions and high watermarks are read from it."""
        self.stages[stage].owned = owned

    def count_dlq(self, reason: str, read: Callable[[], int]) -> None:
        """dlq records of `reason` that another part counts (the sweeper, the relay), read at every scrape."""
        self.dlq_sources.append((reason, read))

    def batch_done(self, stage: str, records: Iterable[ConsumedRecord], seconds: float, stats: FoldStats | None = None) -> None:
        """A batch committed: the stage progressed; its positions, duration and (fold) outcomes are counted."""
        state = self.stages[stage]
        state.progressed = time.monotonic()
        for record in records:
            key = (record.topic, record.partition)
            if record.offset + 1 > state.positions.get(key, 0):
                state.positions[key] = record.offset + 1
        self.batch_seconds.labels(stage).observe(seconds)
        if stats is not None:
            for (source, event_type, outcome), count in stats.events.items():
                self.events.labels(source, event_type, outcome).inc(count)
            for reason, count in stats.dlq.items():
                self.dlq[reason] = self.dlq.get(reason, 0) + count
            if stats.logs:
                self.log_lines.inc(stats.logs)

    def retried(self, stage: str) -> None:
        self.db_retries.labels(stage).inc()

    def owned(self) -> dict[str, dict[tuple[str, int], int | None]]:
        out: dict[str, dict[tuple[str, int], int | None]] = {}
        for name, stage in self.stages.items():
            try:
                out[name] = stage.owned() if stage.owned is not None else {}
            except (AssertionError, KeyError, AttributeError, RuntimeError) as exc:  # a rebalance under way
                log.debug("%s: partitions not readable now (%r)", name, exc)
                out[name] = {}
        return out

    async def sample_once(self, pool: Any) -> None:
        """Read stored positions and the gauges' rows; recompute every stage's lag (from memory when the database
        does not answer) and mark stages without lag as progressing."""
        stored: dict[str, dict[tuple[str, int], int]] = {}
        try:
            async with asyncio.timeout(5.0), pool.acquire() as conn, conn.cursor() as cur:
                for name, stage in self.stages.items():
                    stored[name] = await sql.stored_positions(cur, stage.consumer)
                self.sample = Sample(
                    await sql.outbox_backlog(cur), await sql.parked_backlog(cur), await sql.agents_by_status(cur)
                )
                await conn.rollback()
            self.sample_error = None
        except (MySQLError, OSError, TimeoutError) as exc:
            self.sample_error = f"database unreachable: {describe_error(exc)}"
        owned_now = self.owned()
        listed = await self._listed([key for parts in owned_now.values() for key in parts])
        now = time.monotonic()
        for name, owned in owned_now.items():
            stage = self.stages[name]
            for key, position in stored.get(name, {}).items():
                if position > stage.positions.get(key, 0):
                    stage.positions[key] = position
            ends = {key: max(hw or 0, listed.get(key, 0)) for key, hw in owned.items() if hw is not None or key in listed}
            stage.lag = {key: max(0, end - stage.positions.get(key, 0)) for key, end in ends.items()}
            if not any(stage.lag.values()):
                stage.progressed = now

    async def _listed(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The broker's listed ends of these partitions; none when it does not answer (the high watermarks remain)."""
        if self.ends is None or not partitions:
            return {}
        try:
            listed = await self.ends(partitions)
        except (KafkaError, OSError, TimeoutError) as exc:
            self.ends_error = f"the broker did not list the partitions' ends: {type(exc).__name__}"
            return {}
        self.ends_error = None
        return listed

    async def run(self, pool: Callable[[], Any], stopping: asyncio.Event, ready: Callable[[bool], None]) -> None:
        """Sample every SAMPLE_SECONDS until `stopping` (`pool()`: None until the worker has one); after each sample,
        `ready(verdict)`: partitions owned and the database answered (what /readyz checks, without asking again)."""
        while not stopping.is_set():
            if pool() is not None:
                await self.sample_once(pool())
                ready(any(self.owned().values()) and self.sample_error is None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), SAMPLE_SECONDS)

    def health(self) -> Verdict:
        """Unhealthy when a stage has lag and made no progress for AIWORKER_WORKER_STALL_SECONDS."""
        now, limit = time.monotonic(), self.settings.worker_stall_seconds
        checks: dict[str, Any] = {}
        healthy = True
        for name, stage in self.stages.items():
            lag, idle = sum(stage.lag.values()), now - stage.progressed
            if lag and idle > limit:
                healthy = False
                checks[name] = f"stalled: {lag} record(s) of lag and no batch committed for {idle:.0f}s (limit {limit:.0f}s)"
            else:
                checks[name] = f"ok ({lag} record(s) of lag)"
        if self.ends_error is not None:  # not a failure: the lag falls back to the fetch answers' high watermarks
            checks["ends"] = self.ends_error
        for loop, hold in sorted(self.loops.held().items()):
            healthy = False
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hold.since))
            checks[f"held: {loop}"] = f"held since {since} ({time.time() - hold.since:.0f}s): {hold.reason}"
        return healthy, checks

    async def readiness(self, pool: Any) -> Verdict:
        """Ready when the worker owns a partition (of either stage) and the database answers."""
        owned = self.owned()
        checks: dict[str, Any] = {name: f"{len(parts)} partition(s)" for name, parts in owned.items()}
        database = "database pool not open yet" if pool is None else await ping(pool)
        checks["database"] = database or "ok"
        if not any(owned.values()):
            checks["partitions"] = "this worker owns no partition yet (group joining, or more workers than partitions)"
        return bool(any(owned.values()) and database is None), checks


class _Sampled(Collector):
    """The gauges of the last sample and the dlq counts, at every scrape."""

    def __init__(self, monitor: FoldMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        m = self.monitor
        lag = GaugeMetricFamily(
            "aiworker_fold_lag_records", "high watermark minus the stored position, per owned partition",
            labels=["stage", "topic", "partition"],
        )  # fmt: skip
        for name, stage in m.stages.items():
            for (topic, partition), records in sorted(stage.lag.items()):
                lag.add_metric([name, topic, str(partition)], records)
        yield lag
        dlq = CounterMetricFamily("aiworker_dlq_records", "records sent to the dlq, by reason class", labels=["reason"])
        counts = dict(m.dlq)
        for reason, read in m.dlq_sources:
            counts[reason] = counts.get(reason, 0) + read()
        for reason, count in sorted(counts.items()):
            dlq.add_metric([reason], count)
        yield dlq
        if m.sample is None:
            return
        s = m.sample
        yield GaugeMetricFamily("aiworker_outbox_unpublished_rows", "outbox rows not yet published", value=s.outbox.rows)
        yield GaugeMetricFamily(
            "aiworker_outbox_oldest_unpublished_seconds", "age of the oldest unpublished outbox row (0: none)",
            value=s.outbox.oldest_seconds,
        )  # fmt: skip
        yield GaugeMetricFamily("aiworker_parked_events", "events waiting for a row (parked_events)", value=s.parked.rows)
        yield GaugeMetricFamily(
            "aiworker_parked_oldest_seconds", "age of the oldest parked event (0: none)", value=s.parked.oldest_seconds
        )
        agents = GaugeMetricFamily("aiworker_agents", "agents by status", labels=["status"])
        for status, count in s.agents.items():
            agents.add_metric([status], count)
        yield agents
