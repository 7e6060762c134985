"""agent_logs at volume: `log` and `log.batch` records become rows of multi-row INSERTs.

De-duplication, twice over and without a processed_events row per line: by position, each (agent, source
topic, source partition) keeps the next offset of log records already written (table log_positions, locked
in the fold's transaction), for every consumer group alike, so a redelivered or replayed record is skipped
whole; and by event id, each line is stored with its `log` event's id under a unique key (agent_id,
event_id), so a line sent again as a new record (an agent retrying after a timeout, a batch produced twice)
is stored once (migrations/006_log_ids.sql; the key costs each insert one index probe). Lines whose task
is unknown keep their task id in metadata (`task_id`) with a NULL column, so an early line never blocks or dead-letters.

An agent speaks only for its own work: a line about a task assigned to another agent is refused
(`task_assignee.not_assignee`), the record's other lines are stored, and the refused lines go to the dlq as one
record (a `log.batch` of just those lines, so a replay re-drives only them) with the reason. A line about a
task that has no assignee (backlog) is stored: an agent's own task.started reaches its task on another path
(the task's partition) than its logs (the agent's), so its first lines may be folded before it. For the same
reason lines sent right after a reclaim (task.started on a task whose agent went offline) may be folded
before it and refused; they are in the dlq, to be re-driven once the reclaim is applied.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from app.agent_events import Log, LogBatch
from db import fold_store
from streams.cloudevents import dumps
from streams.machines import epoch_second
from streams.machines.task import TaskRow
from streams.machines.task_assignee import not_assignee
from streams.parking import WorkItem
from streams.route import Source
from streams.uow import UnitOfWork

Key = tuple[str, str, int]


class Counts(Protocol):
    logs: int
    replayed: int


@dataclass(frozen=True, slots=True)
class LogRefusal:
    """What of a log record goes to the dlq: `source` (its value: the whole record, or just the refused lines,
    then `part` makes the dlq record's id its own), and why."""

    source: Source
    reason: str
    part: str = ""


class LogWriter:
    def __init__(self, uow: UnitOfWork, positions: dict[Key, int], tasks: dict[str, str | None]) -> None:
        self.uow = uow
        self.positions = positions
        self._assignees = tasks
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
        await uow.preload("agents", {k[0] for k in keys}, share=True)  # a line only needs its agent to exist
        return cls(uow, positions, await _task_assignees(uow.cur, sorted(task_ids)))

    def _task(self, task_id: str) -> tuple[bool, str | None]:
        """Whether the task exists, and its assignee (a row of this transaction first: it may have just changed)."""
        row: TaskRow | None = self.uow.find("tasks", id=task_id)
        if row is not None:
            return True, row.assigned_agent_id
        return task_id in self._assignees, self._assignees.get(task_id)

    async def add(self, source: Source, item: Log | LogBatch, stats: Counts) -> LogRefusal | None:
        """Queue the lines of one record; what goes to the dlq (the record, or the lines it may not send), and why."""
        key = (item.agent_id, source.topic, source.partition)
        if source.offset < self.positions.get(key, 0):
            stats.replayed += 1
            return None
        if not await self.uow.exists("agents", item.agent_id):
            return LogRefusal(source, f"{item.type} names agent {item.agent_id!r}, which has not registered; register first")
        lines = item.logs if isinstance(item, LogBatch) else [item]
        seconds = [epoch_second(line.time) for line in lines]  # each within a TIMESTAMP (app/event_base.py `Time`)
        self.positions[key] = source.offset + 1
        self._advanced[key] = source.offset + 1
        refused: list[Log] = []
        reasons: dict[str, str] = {}
        for line, second in zip(lines, seconds, strict=True):
            task_id, metadata = line.task_id, line.metadata
            if task_id is not None:
                exists, assignee = self._task(task_id)
                if not exists:
                    metadata, task_id = {**(metadata or {}), "task_id": task_id}, None
                elif (why := not_assignee(task_id, assignee, item.agent_id, "a log line")) is not None:
                    refused.append(line)
                    reasons.setdefault(task_id, why)
                    continue
            encoded = orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS).decode() if metadata is not None else None
            self.uow.logs.append((item.agent_id, task_id, line.level, line.message, encoded, self._stamp(second), line.id))
            stats.logs += 1
        if not refused:
            return None
        why = f"{len(refused)} of {len(lines)} log line(s) refused: {'; '.join(reasons.values())}"
        if len(refused) == len(lines):
            return LogRefusal(source, why)
        only = LogBatch.model_validate({**item.model_dump(mode="json"), "logs": [r.model_dump(mode="json") for r in refused]})
        return LogRefusal(replace(source, value=dumps(only.model_dump(mode="json"))), why, "|refused-lines")

    def _stamp(self, second: int) -> str:
        """`created_at` as the text of `naive_utc(time)` (lines share seconds, and a string escapes faster)."""
        text = self._stamps.get(second)
        if text is None:
            text = self._stamps[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return text

    async def save(self, cur: Any) -> None:
        await fold_store.save_log_positions(cur, self._advanced)


async def _task_assignees(cur: Any, task_ids: Sequence[str]) -> dict[str, str | None]:
    """{task id: its assigned agent} of these tasks that exist (a plain read: tasks are never deleted by the fold)."""
    if not task_ids:
        return {}
    sql = f"SELECT id, assigned_agent_id FROM tasks WHERE id IN ({', '.join(['%s'] * len(task_ids))})"
    await cur.execute(sql, list(task_ids))
    return {row["id"]: row["assigned_agent_id"] for row in await cur.fetchall()}
