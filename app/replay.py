"""The dlq re-drive of `aiworker-events replay` (its command line: app/commands/replay_cli.py) and of the console's
re-drive jobs (webhooks/console/jobs.py): dead-lettered records back onto their source topic after a fix.

Reads <prefix>dlq up to its end at start-up, keeps the records that match the filters, and produces
each original value with its original key onto its source topic (acks=all). Progress is committed
to a consumer group of the tool after every re-produced batch, so an interrupted run resumes where
it stopped (the default group is derived from the filters; --from-start ignores it). Re-driving a
record twice applies it once: the fold de-duplicates by event id. --dry-run folds the candidates in
a transaction that is rolled back and prints what each would do: that runs the worker's fold, so the command
passes it in (`dry_fold`, app/commands/replay_dry.py); the console does not dry-run.

A dlq record of a big original carries only its start (`truncated`): the original is re-read from its
source position and re-driven only when its sha256 matches; when it is gone (retention) or differs, the
record is not re-driven and is counted `unavailable`, with a line saying where the original was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app import AiworkerError, topics
from app.producer import kafka_producer
from app.replay_records import DlqEntry, DlqFormatError, Filters, event_of, parse_dlq_record
from app.settings import Settings
from db.pool import create_pool
from db.replay import forget_refusals, refused_marker_column


class ReplayError(AiworkerError):
    """The replay could not go on (broker or database unreachable, bad filter)."""


@dataclass(frozen=True, slots=True)
class DryOutcome:
    """What re-driving a dlq entry would do now, as the dry run found by folding it."""

    entry: DlqEntry
    verdict: str  # applies | unchanged | duplicate | refused | ignored
    detail: str


DryFold = Callable[[Settings, Any, Sequence[DlqEntry]], Awaitable[list[DryOutcome]]]
"""Folds entries in a transaction it rolls back (settings, pool, entries): app/commands/replay_dry.py `dry_run`."""


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    filters: Filters = field(default_factory=Filters)
    dry_run: bool = False
    group: str | None = None
    from_start: bool = False
    limit: int | None = None
    batch_size: int = 200
    idle_timeout: float = 30.0

    def group_id(self, settings: Settings) -> str:
        digest = hashlib.sha1(f"{settings.topic_prefix}|{self.filters.describe()}".encode()).hexdigest()[:12]
        return self.group or f"{settings.worker_id}.replay.{digest}"


@dataclass(slots=True)
class ReplayCounts:
    scanned: int = 0
    matched: int = 0
    replayed: int = 0
    filtered: int = 0
    unreadable: int = 0
    foreign: int = 0
    unavailable: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        verdicts = "".join(f" {name}={count}" for name, count in sorted(self.verdicts.items()))
        return (
            f"replay: scanned={self.scanned} matched={self.matched} replayed={self.replayed} filtered={self.filtered}"
            f" unreadable={self.unreadable} foreign={self.foreign} unavailable={self.unavailable}{verdicts}"
        )


class Replayer:
    def __init__(
        self, settings: Settings, bootstrap: str, options: ReplayOptions, console: Console, dry_fold: DryFold | None = None
    ) -> None:
        if options.dry_run and dry_fold is None:
            raise ReplayError("a dry run folds the records: pass the fold's dry run (app/commands/replay_dry.py dry_run)")
        self.settings = settings
        self.dry_fold = dry_fold
        self.bootstrap = bootstrap
        self.options = options
        self.console = console
        self.counts = ReplayCounts()
        self.total: int | None = None
        """Records to scan in this run, once the dlq's ends are known (for progress displays)."""
        self.inputs = {settings.topic(name) for name in topics.INPUT_TOPICS}

    def _select(self, tp: TopicPartition, offset: int, timestamp: int, value: bytes | None) -> DlqEntry | None:
        self.counts.scanned += 1
        try:
            entry = parse_dlq_record(tp.partition, offset, timestamp, value)
        except DlqFormatError as exc:
            self.counts.unreadable += 1
            self.console.print(f"dlq {tp.partition}@{offset}: not a dlq record ({exc}); skipped", soft_wrap=True)
            return None
        if not self.options.filters.matches(entry):
            self.counts.filtered += 1
            return None
        if entry.topic not in self.inputs:
            self.counts.foreign += 1
            self.console.print(f"dlq {tp.partition}@{offset}: source {entry.topic} is no input topic here; skipped")
            return None
        self.counts.matched += 1
        return entry

    async def _originals(self, entries: Sequence[DlqEntry]) -> list[DlqEntry]:
        """The entries with their whole original: truncated ones re-read from the source position (digest checked)."""
        if not any(e.truncated for e in entries):
            return list(entries)
        whole: list[DlqEntry] = []
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_bytes=64 << 20,
                                    max_partition_fetch_bytes=64 << 20)  # fmt: skip
        await consumer.start()
        try:
            for entry in entries:
                if not entry.truncated:
                    whole.append(entry)
                    continue
                original = await self._read_at(consumer, entry)
                where = f"{entry.topic}/{entry.partition}@{entry.offset}"
                if original is None or hashlib.sha256(original.value or b"").hexdigest() != entry.value_sha256:
                    self.counts.unavailable += 1
                    self.console.print(
                        f"dlq {entry.dlq_partition}@{entry.dlq_offset}: holds only the start of the record at {where},"
                        " which is no longer there (or differs); not re-driven",
                        soft_wrap=True, markup=False,
                    )  # fmt: skip
                    continue
                event = event_of(original.value)
                whole.append(dataclasses.replace(entry, key=original.key, value=original.value, event=event, truncated=False))
        finally:
            await consumer.stop()
        return whole

    async def _read_at(self, consumer: AIOKafkaConsumer, entry: DlqEntry) -> Any:
        """The record at the entry's source position, or None when it is not there (anymore)."""
        tp = TopicPartition(entry.topic, entry.partition)
        consumer.assign([tp])
        consumer.seek(tp, entry.offset)
        deadline = time.monotonic() + min(self.options.idle_timeout, 10.0)
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            for record in batch.get(tp, []):
                return record if record.offset == entry.offset else None
        return None

    async def _redrive(self, producer: AIOKafkaProducer, pool: object, entries: Sequence[DlqEntry]) -> None:
        entries = await self._originals(entries)
        if not entries:
            return
        if self.dry_fold is not None and self.options.dry_run:
            for outcome in await self.dry_fold(self.settings, pool, entries):
                self._print_outcome(outcome)
            return
        async with pool.acquire() as conn:  # type: ignore[attr-defined]
            if await refused_marker_column(conn):
                await forget_refusals(conn, [e.event_id for e in entries if e.event_id is not None])
            await conn.commit()
        futures = [await producer.send(e.topic, value=e.value, key=e.key) for e in entries]
        await asyncio.gather(*futures)
        self.counts.replayed += len(entries)

    def _print_outcome(self, outcome: DryOutcome) -> None:
        entry = outcome.entry
        self.counts.verdicts[outcome.verdict] = self.counts.verdicts.get(outcome.verdict, 0) + 1
        self.console.print(
            f"dlq {entry.dlq_partition}@{entry.dlq_offset} {entry.event_type} id={entry.event_id}"
            f" was: {entry.reason!r} -> {outcome.verdict}: {outcome.detail}",
            soft_wrap=True,
            markup=False,
        )

    async def run(self) -> ReplayCounts:
        dlq = self.settings.topic(topics.DLQ)
        group = self.options.group_id(self.settings)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        producer = kafka_producer(self.settings, self.bootstrap)
        pool = await create_pool(self.settings.database_url.get_secret_value(), minsize=1, maxsize=2)
        try:
            await consumer.start()
            await producer.start()
            await self._loop(consumer, producer, pool, dlq, group)
        except KafkaError as exc:
            raise ReplayError(f"the broker failed: {exc!r}; what was committed stays done, run again to resume") from exc
        finally:
            await consumer.stop()
            await producer.stop()
            pool.close()
            await pool.wait_closed()
        return self.counts

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, pool: object, dlq: str, group: str) -> None:
        partitions = consumer.partitions_for_topic(dlq)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(dlq) or set()
        if not partitions:
            raise ReplayError(f"topic {dlq} does not exist; check AIWORKER_TOPIC_PREFIX")
        tps = [TopicPartition(dlq, p) for p in sorted(partitions)]
        consumer.assign(tps)
        starts: dict[TopicPartition, int] = {}
        for tp in tps:
            committed = None if self.options.from_start else await consumer.committed(tp)
            starts[tp] = committed if committed is not None else 0
        ends = await self._snapshot_ends(consumer, tps, starts)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        total = sum(max(0, ends[tp] - starts[tp]) for tp in tps)
        self.total = total
        mode = "dry run" if self.options.dry_run else "replay"
        self.console.print(f"{mode} of {dlq} ({self.options.filters.describe()}), group {group}: {total} record(s) to scan")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[counts]}"))
        with Progress(*columns, TimeElapsedColumn(), console=self.console, transient=False) as progress:
            task = progress.add_task(mode, total=total, counts="")
            idle_since = time.monotonic()
            while remaining and not self._limit_reached():
                batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=self.options.batch_size)
                if not batch:
                    if time.monotonic() - idle_since > self.options.idle_timeout:
                        raise ReplayError(f"no dlq records arrived for {self.options.idle_timeout:.0f}s; run again to resume")
                    continue
                idle_since = time.monotonic()
                entries, commits = self._take(batch, ends)
                await self._redrive(producer, pool, entries)
                if not self.options.dry_run and commits:
                    await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in commits.items()})
                for tp in list(remaining):
                    if commits.get(tp, starts[tp]) >= ends[tp] or await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                scanned = sum(commits[tp] - starts[tp] for tp in commits)
                starts.update(commits)
                progress.update(task, advance=scanned, counts=f"matched {self.counts.matched}  replayed {self.counts.replayed}")

    async def _snapshot_ends(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], starts: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """The end of each partition now (records dead-lettered later are left for the next run).

        The high watermark of a fetch response, not ListOffsets alone: Tansu answers ListOffsets with
        the last batch's base offset + 1, short of the end when that batch holds several records.
        """
        listed = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(listed[tp] - 1, starts[tp], 0))
        deadline = time.monotonic() + self.options.idle_timeout
        while any(consumer.highwater(tp) is None for tp in tps):
            if time.monotonic() > deadline:
                raise ReplayError(f"the broker sent no high watermark of {tps[0].topic} in {self.options.idle_timeout:.0f}s")
            await consumer.getmany(*tps, timeout_ms=200, max_records=1)
        return {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in tps}

    def _limit_reached(self) -> bool:
        return self.options.limit is not None and self.counts.matched >= self.options.limit

    def _take(
        self, batch: dict[TopicPartition, list[object]], ends: dict[TopicPartition, int]
    ) -> tuple[list[DlqEntry], dict[TopicPartition, int]]:
        """The matching entries of a fetched batch, and the next offset of each partition scanned."""
        entries: list[DlqEntry] = []
        commits: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            for record in records:
                offset: int = record.offset  # type: ignore[attr-defined]
                if offset >= ends[tp] or self._limit_reached():
                    break
                commits[tp] = offset + 1
                entry = self._select(tp, offset, record.timestamp, record.value)  # type: ignore[attr-defined]
                if entry is not None:
                    entries.append(entry)
        return entries, commits
