"""Events waiting for a row that another partition has not delivered yet.

A task.created may arrive before its project.upserted, a task.started before its task.created: they
travel on different partitions, so no order between them is given. Such an event parks (table
`parked_events`, written in the fold's transaction) with the (table, id) it waits for, and is applied
in the transaction that creates that row, right after it. A later event of the same entity (task,
agent, ...) parks behind the earlier one, so an entity's events still apply in their order.

Why parking and not a bounded retry: the row may come minutes later (a backlog on one partition),
retrying would block the partition or reorder the entity, and the transaction that creates the row
knows exactly when to wake the waiters. No race with a concurrent creator: the fold looked for the
row with SELECT ... FOR UPDATE (a gap lock on its id under REPEATABLE READ) before parking, and the
creator reads parked_events with a locking read after inserting, so one of them sees the other.
Events parked longer than AIWORKER_PARK_SECONDS go to the dlq (streams/sweeper.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.topics import scoped_id
from db import parking as sql
from streams.decode import Decoded
from streams.route import Source
from streams.uow import UnitOfWork

Wait = tuple[str, str]


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One record to fold: its source, what it decoded to, and its ordering entity."""

    source: Source
    item: Decoded
    entity: str


class Parking:
    def __init__(self, cur: Any, waits: dict[str, Wait]) -> None:
        self.cur = cur
        self._waits = waits
        self._woken = 0

    @classmethod
    async def load(cls, cur: Any, entities: Sequence[str]) -> Parking:
        return cls(cur, await sql.waits_of_entities(cur, sorted(set(entities))))

    def release(self, entity: str, wait: Wait) -> None:
        """`wait` is over for `entity` (its row exists): later events of the entity no longer park behind it."""
        if self._waits.get(entity) == wait:
            del self._waits[entity]

    def waits_for(self, entity: str) -> Wait | None:
        return self._waits.get(entity) if entity else None

    async def still_waits(self, uow: UnitOfWork, entity: str) -> Wait | None:
        """What `entity` waits for now: the row its oldest parked event waits for, when that row is still missing.

        `load` reads without locks, so another worker may have created the awaited row and woken the parked
        events since: parking behind them would wait for a row that exists, forever. The awaited row is read
        with a lock (the latest committed version; the creator commits first), and when it exists, the
        entity's parked events are read again, locked.
        """
        wait = self.waits_for(entity)
        while wait is not None and await uow.get(*wait) is not None:
            self.release(entity, wait)
            fresh = (await sql.waits_of_entities(self.cur, [entity], lock=True)).get(entity)
            if fresh is None:
                return None
            self._waits[entity] = fresh
            if fresh == wait:
                return wait  # parked in this transaction, for a row it created since: woken after this round, in order
            wait = fresh
        return wait

    async def park(self, work: WorkItem, wait: Wait, reason: str) -> None:
        item = work.item
        assert not isinstance(item, str)
        source = work.source
        event_id = scoped_id(item.id, source.scope)
        parked = sql.ParkedEvent(
            wait[0], wait[1], work.entity or f"{wait[0]}:{wait[1]}", event_id, source.topic, source.partition,
            source.offset, source.key, source.value, reason, source.scope,
        )  # fmt: skip
        await sql.park(self.cur, [parked])
        if work.entity:
            self._waits.setdefault(work.entity, wait)

    async def take_first(self, wait: Wait, decode: Callable[[Source], Decoded]) -> WorkItem | None:
        """The oldest event waiting for the row `wait` (removed from the parked events), or None."""
        parked = await sql.take_first_waiting(self.cur, *wait)
        if parked is None:
            return None
        self.release(parked.entity, wait)
        return _work(parked, decode)

    async def wake(self, uow: UnitOfWork, decode: Callable[[Source], Decoded]) -> list[WorkItem]:
        """The parked events waiting for rows created since the last call, in parking order."""
        created = uow.created[self._woken :]
        self._woken = len(uow.created)
        by_table: dict[str, list[str]] = {}
        for table, row_id in created:
            by_table.setdefault(table, []).append(row_id)
        woken: list[WorkItem] = []
        for table, ids in by_table.items():
            for parked in await sql.take_waiting(self.cur, table, ids):
                self.release(parked.entity, (parked.waits_table, parked.waits_id))
                woken.append(_work(parked, decode))
        return woken


def _work(parked: sql.ParkedEvent, decode: Callable[[Source], Decoded]) -> WorkItem:
    source = Source(
        parked.source_topic, parked.source_partition, parked.source_offset, parked.source_key, parked.payload,
        scope=parked.scope,
    )  # fmt: skip
    return WorkItem(source, decode(source), parked.entity)
