"""agent_logs at volume: `log` and `log.batch` records become rows of multi-row INSERTs.

De-duplication is by position, not by event id: each (agent, source topic, source partition) keeps
the next offset of log records already written (table log_positions, locked in the fold's
transaction), for every consumer group alike, so a redelivered or replayed record writes no line
twice and agent_logs costs no processed_events row per line. A producer that re-sends the same line
as a new record (a new offset) stores it again: log lines are diagnostics, and a unique key on
agent_logs would cost every insert an index probe. Lines whose task is unknown keep their task id in
metadata (`task_id`) with a NULL column, so an early line never blocks or dead-letters.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Protocol

from app.events import Log, LogBatch
from db import fold_store
from streams.decode import time_out_of_range
from streams.machines import epoch_second
from streams.parking import WorkItem
from streams.route import Source
from streams.uow import UnitOfWork

Key = tuple[str, str, int]


class Counts(Protocol):
    logs: int
    replayed: int


class LogWriter:
    def __init__(self, uow: UnitOfWork, positions: dict[Key, int], tasks: set[str]) -> None:
        self.uow = uow
        self.positions = positions
        self._known_tasks = tasks
        self._advanced: dict[Key, int] = {}
        self._stamps: dict[int, str] = {}

    @classmethod
    async def load(cls, uow: UnitOfWork, items: Sequence[WorkItem]) -> LogWriter:
        keys: list[Key] = []
        task_ids: set[str] = set()
        for work in items:
            item = work.item
            assert isinstance(item, Log | LogBatch)
            keys.append((item.agent_id, work.source.topic, work.source.partition))
            lines = item.logs if isinstance(item, LogBatch) else [item]
            task_ids.update(line.task_id for line in lines if line.task_id)
        positions = await fold_store.lock_log_positions(uow.cur, keys)
        await uow.preload("agents", {k[0] for k in keys})
        return cls(uow, positions, await _existing_tasks(uow.cur, sorted(task_ids)))

    async def add(self, source: Source, item: Log | LogBatch, stats: Counts) -> str | None:
        """Queue the lines of one record; the reason when they cannot be stored."""
        key = (item.agent_id, source.topic, source.partition)
        if source.offset < self.positions.get(key, 0):
            stats.replayed += 1
            return None
        if await self.uow.get("agents", item.agent_id) is None:
            return f"{item.type} names agent {item.agent_id!r}, which has not registered; register first"
        lines = item.logs if isinstance(item, LogBatch) else [item]
        seconds = [epoch_second(line.time) for line in lines]
        if isinstance(item, LogBatch):  # a batch's line times are checked here, once per line (decode checks `time`)
            for index, (line, second) in enumerate(zip(lines, seconds, strict=True)):
                if (why := time_out_of_range(line.time, second)) is not None:
                    return f"invalid event: logs.{index}.time: {why}"
        self.positions[key] = source.offset + 1
        self._advanced[key] = source.offset + 1
        for line, second in zip(lines, seconds, strict=True):
            task_id, metadata = line.task_id, line.metadata
            if task_id is not None and task_id not in self._known_tasks and self.uow.find("tasks", id=task_id) is None:
                metadata, task_id = {**(metadata or {}), "task_id": task_id}, None
            encoded = json.dumps(metadata, separators=(",", ":"), sort_keys=True) if metadata is not None else None
            self.uow.logs.append((item.agent_id, task_id, line.level, line.message, encoded, self._stamp(second)))
            stats.logs += 1
        return None

    def _stamp(self, second: int) -> str:
        """`created_at` as the text of `naive_utc(time)` (lines share seconds, and a string escapes faster)."""
        text = self._stamps.get(second)
        if text is None:
            text = self._stamps[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return text

    async def save(self, cur: Any) -> None:
        await fold_store.save_log_positions(cur, self._advanced)


async def _existing_tasks(cur: Any, task_ids: Sequence[str]) -> set[str]:
    """Which of these tasks exist (a plain read: tasks are never deleted by the fold)."""
    if not task_ids:
        return set()
    await cur.execute(f"SELECT id FROM tasks WHERE id IN ({', '.join(['%s'] * len(task_ids))})", list(task_ids))
    return {row["id"] for row in await cur.fetchall()}
