"""One fold transaction: records (or one event parked earlier and now woken) folded into MySQL, exactly once.

Records become work items in streams/intake.py (from `fold.tasks`, or straight from an input topic).
Each transaction locks and advances the stored next offset of every partition it consumed, so a
redelivered record changes nothing; an event id already folded (applied or refused) changes nothing
either. Log lines are de-duplicated by the position of their record, per agent (log_positions), and
write no processed_events rows. An event whose prerequisite row is missing parks (streams/parking.py)
and is applied in the transaction that creates that row. Rows, positions, transitions (outbox) and dlq records commit together.
What to do when a transaction fails (record by record, the dlq, a hold) is streams/fold.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, overload

from asyncmy.cursors import DictCursor

from app import topics
from app.agent_events import Log, LogBatch
from app.envelope import GiteaEnvelope
from app.event_base import Event
from app.settings import Settings
from app.topics import scoped_id
from db import fold_store
from streams import StreamsError, liveness
from streams import decode as decoding
from streams.handlers import Context, handle
from streams.intake import ConsumedRecord, Intake
from streams.logs import LogWriter
from streams.outcomes import FoldStats, Refusal, label_of
from streams.parking import Parking, Wait, WorkItem
from streams.route import Source, source_order
from streams.tracing import outcome_row
from streams.uow import UnitOfWork

log = logging.getLogger(__name__)


# The row an event creates (table, field naming its id): the events parked for that row wait for this event,
# so it never parks behind them (it would wait for itself until the sweeper dead-letters them all).
CREATORS = {
    "project.upserted": ("projects", "project_id"), "agent.registered": ("agents", "agent_id"),
    "task.created": ("tasks", "task_id"), "task_group.created": ("task_groups", "task_group_id"),
    "task.question_asked": ("task_questions", "question_id"),
}  # fmt: skip


def creates(item: Event | GiteaEnvelope, wait: tuple[str, str]) -> bool:
    """Whether `item` may create the row `wait` (a Gitea delivery keyed by a task may be its opened issue)."""
    if isinstance(item, GiteaEnvelope):
        return wait[0] == "tasks"
    table, field_name = CREATORS.get(item.type, ("", ""))
    return table == wait[0] and str(getattr(item, field_name, None) or item.id) == wait[1]


class FaultInjectedError(StreamsError):
    """Raised for the event AIWORKER_FAULT_EVENT_ID names: a test's stand-in for any error a handler may raise."""


class FoldTransactions:
    """Folds records in one transaction (`_transaction`); streams/fold.py's `Fold` adds what to do when one fails."""

    def __init__(self, pool: Any, settings: Settings, *, direct: bool = False) -> None:
        self.pool = pool
        self.settings = settings
        self.intake = Intake(settings, direct=direct)
        self.consumer = settings.worker_id
        self.dlq_topic = settings.topic(topics.DLQ)
        self._short = {settings.topic(name): name for name in topics.ALL_TOPICS}
        self.fault_event_id = settings.fault_event_id

    def decode(self, source: Source) -> decoding.Decoded:
        return self.intake.decode(source)

    @overload
    async def _transaction(
        self, records: Sequence[ConsumedRecord], refuse: str | None = None, *, wake: bool = True,
        created: list[tuple[str, str]] | None = None, woken: None = None, poison: bool = False,
    ) -> FoldStats: ...  # fmt: skip

    @overload
    async def _transaction(
        self, records: Sequence[ConsumedRecord], refuse: str | None = None, *, wake: bool = True,
        created: list[tuple[str, str]] | None = None, woken: Wait, poison: bool = False,
    ) -> FoldStats | None: ...  # fmt: skip

    async def _transaction(
        self, records: Sequence[ConsumedRecord], refuse: str | None = None, *, wake: bool = True,
        created: list[tuple[str, str]] | None = None, woken: Wait | None = None, poison: bool = False,
    ) -> FoldStats | None:  # fmt: skip
        """Fold `records` in one transaction (with `woken`: the oldest event parked for that row instead;
        None when there is none). `wake=False` leaves parked events parked and lists the created rows."""
        stats = FoldStats()
        async with self.pool.acquire() as conn:
            try:
                await conn.begin()
                async with conn.cursor(DictCursor) as cur:
                    first = None
                    if woken is not None:
                        first = await Parking(cur, {}).take_first(woken, self.decode)
                        if first is None:
                            await conn.rollback()
                            return None
                    rows = await self._fold(cur, records, stats, refuse, wake=wake, first=first, woken=woken)
                    if poison and "refused" in stats.dlq:
                        stats.dlq["poison"] = stats.dlq.pop("refused")
                    if created is not None:
                        created += rows
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
        return stats

    async def _fold(
        self, cur: Any, records: Sequence[ConsumedRecord], stats: FoldStats, refuse: str | None, *, wake: bool = True,
        first: WorkItem | None = None, woken: Wait | None = None,
    ) -> list[tuple[str, str]]:  # fmt: skip
        """Fold the records (after `first`, an event taken from the parked ones); the rows created."""
        positions = await fold_store.lock_positions(cur, self.consumer, ((r.topic, r.partition) for r in records))
        fresh = [r for r in records if r.offset >= positions[(r.topic, r.partition)]]
        stats.replayed += len(records) - len(fresh)
        for r in fresh:
            positions[(r.topic, r.partition)] = r.offset + 1
        items = self.intake.work_items(fresh)
        items = source_order(items, lambda w: w.source)
        if first is not None:
            items.insert(0, first)
        uow = UnitOfWork(cur)
        uow.record_trace = self.settings.trace_retention_seconds > 0
        granularity = self.settings.heartbeat_granularity_seconds
        ctx_of = {topic: Context(uow, topic, self.settings.topic, granularity) for topic in {i.source.topic for i in items}}
        events = [i.item for i in items if isinstance(i.item, Event | GiteaEnvelope) and not isinstance(i.item, Log | LogBatch)]
        scoped = [scoped_id(i.item.id, i.source.scope) for i in items if isinstance(i.item, Event | GiteaEnvelope)]
        seen = await fold_store.seen_event_ids(cur, scoped)
        parking = await Parking.load(cur, [i.entity for i in items if i.entity])
        if first is not None and woken is not None:
            parking.release(first.entity, woken)  # its row exists: the events parked behind it follow it, one by one
        # Agents before tasks: every fold transaction locks its rows in that order (key order within a statement), so
        # the agent partitions' (agents, then tasks by the foreign keys of logs and current_task_id) and fold.tasks'
        # (tasks of split events name their agents) never wait for each other in a cycle (1213). The agents an item
        # may change are locked for update; those it only needs to exist (a log line's, a task half's) in share mode,
        # so that the other worker's task halves do not wait for a whole batch of an agent's log lines.
        changed: set[str] = set()
        needed: set[str] = set()
        for i in items:
            agent = getattr(i.item, "agent_id", None)
            if not isinstance(agent, str) or not isinstance(i.item, Event):
                continue
            only_needed = isinstance(i.item, Log | LogBatch) or i.source.scope == "task"
            (needed if only_needed else changed).add(agent)
        await uow.preload("agents", changed)
        await uow.preload("agents", needed - changed, share=True)
        logs = await LogWriter.load(uow, [i for i in items if isinstance(i.item, Log | LogBatch)])
        await uow.preload("tasks", {str(getattr(e, "task_id", "")) for e in events if getattr(e, "task_id", None)})
        done: list[tuple[str, str, int, int, str]] = []
        queue = items
        while queue:
            for item in queue:
                before = len(uow.outbox)
                outcome, reason = await self._one(item, refuse, ctx_of, seen, parking, logs, done, stats)
                key = (*label_of(item, self._short), outcome)
                stats.events[key] = stats.events.get(key, 0) + 1
                dlq_id = next((row[0] for row in uow.outbox[before:] if row[1] == self.dlq_topic), None)
                uow.outcomes.append(outcome_row(item, outcome, reason, dlq_id))
            queue = await parking.wake(uow, self.decode) if wake else []
            for item in queue:
                ctx_of.setdefault(item.source.topic, Context(uow, item.source.topic, self.settings.topic, granularity))
        await uow.flush()
        await fold_store.record_event_ids(cur, done)
        await fold_store.save_positions(cur, self.consumer, positions)
        await logs.save(cur)
        return list(uow.created)

    async def _one(
        self, work: WorkItem, refuse: str | None, ctx_of: dict[str, Context], seen: set[str], parking: Parking,
        logs: LogWriter, done: list[tuple[str, str, int, int, str]], stats: FoldStats,
    ) -> tuple[str, str | None]:  # fmt: skip
        """Fold one work item; what became of it (one of OUTCOMES) and why, where there is a why."""
        source, item = work.source, work.item
        uow = ctx_of[source.topic].uow
        if isinstance(item, str) or refuse is not None:
            stats.invalid += isinstance(item, str)
            stats.refused += not isinstance(item, str)
            why = item if isinstance(item, str) else str(refuse)
            self._dead_letter(uow, work, why, stats)
            return ("invalid" if isinstance(item, str) else "refused"), why
        if isinstance(item, Log | LogBatch):
            refusal = await logs.add(source, item, stats)
            if refusal is not None:
                stats.refused += 1
                self._dead_letter(uow, work, refusal.reason, stats, source=refusal.source, part=refusal.part)
                return "refused", refusal.reason
            return "applied", None
        event_id = scoped_id(item.id, source.scope)
        position = (event_id, source.topic, source.partition, source.offset)
        if event_id in seen:
            stats.duplicates += 1
            return "duplicate", "this event id was folded before"
        wait = parking.waits_for(work.entity)
        if wait is not None and not creates(item, wait):
            wait = await parking.still_waits(uow, work.entity)
        if wait is not None and not creates(item, wait):
            why = f"behind an earlier event of {work.entity} waiting for {wait[0]} {wait[1]}"
            await parking.park(work, wait, why)
            stats.parked += 1
            return "parked", why
        if self.fault_event_id and item.id == self.fault_event_id:
            raise FaultInjectedError(f"AIWORKER_FAULT_EVENT_ID names event {item.id} (a test's fault)")
        result = await handle(ctx_of[source.topic], item, source.scope)
        if result.parked is not None:
            why = f"{result.parked[0]} {result.parked[1]} does not exist yet"
            await parking.park(work, result.parked, why)
            stats.parked += 1
            return "parked", why
        seen.add(event_id)
        await liveness.received(uow, item, source, self.settings.heartbeat_granularity_seconds)
        if result.refused is not None:
            stats.refused += 1
            self._dead_letter(uow, work, result.refused, stats)
            done.append((*position, "refused"))
            return "refused", result.refused
        done.append((*position, "applied"))
        note = None
        if result.warnings:
            note = " ".join(result.warnings)
            uow.outbox.append(decoding.dlq_row(source, note, self.dlq_topic, part="|partial"))
            stats.dlq["partial"] = stats.dlq.get("partial", 0) + 1
        if result.changed:
            stats.applied += 1
            return "applied", note
        if result.kind is not None:
            stats.ignored[result.kind] = stats.ignored.get(result.kind, 0) + 1
            return "ignored", result.ignored or result.kind
        stats.unchanged += 1
        return "unchanged", note

    def _dead_letter(
        self, uow: UnitOfWork, work: WorkItem, reason: str, stats: FoldStats, *, source: Source | None = None, part: str = ""
    ) -> None:
        """`work` (or a part of it: `source`, `part`) goes to the dlq with `reason` (in the outbox of this transaction),
        counted and noted for the log."""
        source = source or work.source
        uow.outbox.append(decoding.dlq_row(source, reason, self.dlq_topic, part=part))
        item = work.item
        kind = "invalid" if isinstance(item, str) else "refused"
        stats.dlq[kind] = stats.dlq.get(kind, 0) + 1
        if isinstance(item, str):
            stats.refusals.append(Refusal("unknown", "", reason, source))
            return
        event_type = item.event_type if isinstance(item, GiteaEnvelope) else item.type
        task = getattr(item, "task_id", None)
        agent = getattr(item, "agent_id", None)
        stats.refusals.append(Refusal(
            event_type, item.id, reason, source, str(task) if task else None, str(agent) if agent else None,
            item.delivery_id if isinstance(item, GiteaEnvelope) else None,
        ))  # fmt: skip
