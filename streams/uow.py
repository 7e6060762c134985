"""The unit of work of one fold transaction: rows read once and locked, changed in memory, written once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from db import fold_store, trace
from streams.machines.agent import AgentRow
from streams.machines.deployment import DeploymentRow
from streams.machines.project import ProjectRow
from streams.machines.question import QuestionRow
from streams.machines.task import TaskRow
from streams.machines.task_group import TaskGroupRow

ROW_TYPES: dict[str, type[Any]] = {
    "projects": ProjectRow,
    "agents": AgentRow,
    "tasks": TaskRow,
    "task_groups": TaskGroupRow,
    "deployments": DeploymentRow,
    "task_questions": QuestionRow,
}
# Insert order follows the foreign keys; the tasks <-> agents cycle is closed by deferred updates.
INSERT_ORDER = ("projects", "agents", "tasks", "task_groups", "deployments", "task_questions")
DEFERRED_COLUMNS = {"agents": ("current_task_id",)}


FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {t: tuple(f.name for f in dataclasses.fields(t)) for t in ROW_TYPES.values()}


def field_names(row_type: type[Any]) -> tuple[str, ...]:
    names = FIELD_NAMES.get(row_type)
    return names if names is not None else tuple(f.name for f in dataclasses.fields(row_type))


def as_dict(row: Any) -> dict[str, Any]:
    """The columns of a row dataclass (shallow: values are shared, not copied)."""
    return {name: getattr(row, name) for name in field_names(type(row))}


class UnitOfWork:
    """Rows of one transaction. `get` loads (FOR UPDATE) on first use; `put` marks a row to write. `exists` loads in
    share mode: a row an event only needs to exist (the project of a task.created) is then not a lock that the
    other worker's transactions wait for (every task.created of a project locked its row for update, so the two
    workers' fold transactions took turns on it); a later `get` of it upgrades the lock.

    `created` lists the (table, id) of rows this transaction inserts, in the order they appeared,
    so the fold can wake the events parked for them.
    """

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self._rows: dict[str, dict[str, Any]] = {table: {} for table in ROW_TYPES}
        self._loaded: dict[str, dict[str, Any]] = {table: {} for table in ROW_TYPES}
        self._missing: dict[str, set[str]] = {table: set() for table in ROW_TYPES}
        self._shared: dict[str, set[str]] = {table: set() for table in ROW_TYPES}
        """Ids (with a row or without) locked in share mode only, so far."""
        self._children: set[tuple[str, str, str]] = set()
        self.created: list[tuple[str, str]] = []
        self.logs: list[tuple[Any, ...]] = []
        self.outbox: list[tuple[str, str, str, bytes]] = []
        self.outcomes: list[trace.OutcomeRow] = []
        """What became of each work item (streams/tracing.py), for `aiworker-events trace`."""
        self.transitions: list[trace.TransitionRow] = []
        self.record_trace = True
        """False: the trace rows are not written (TRACE_RETENTION_SECONDS=0)."""

    def _make(self, table: str, raw: dict[str, Any]) -> Any:
        row_type = ROW_TYPES[table]
        names = field_names(row_type)
        return row_type(**{k: v for k, v in raw.items() if k in names})

    async def preload(self, table: str, ids: Iterable[str], *, share: bool = False) -> None:
        """Load (and lock) the rows of these ids not loaded yet; without `share`, upgrade those locked in share mode."""
        shared = self._shared[table]
        wanted = [
            i for i in dict.fromkeys(ids)
            if (i not in self._rows[table] and i not in self._missing[table]) or (not share and i in shared)
        ]  # fmt: skip
        if not wanted:
            return
        for raw in await fold_store.load_rows(self.cur, table, wanted, share=share):
            if raw["id"] in self._rows[table]:
                continue  # an upgrade: the share lock kept the row as it was loaded
            row = self._make(table, raw)
            self._rows[table][row.id] = row
            self._loaded[table][row.id] = row
        self._missing[table].update(i for i in wanted if i not in self._rows[table])
        if share:
            shared.update(wanted)
        else:
            shared.difference_update(wanted)

    async def exists(self, table: str, row_id: str) -> bool:
        """Whether the row exists (in this transaction), locked in share mode unless it is locked already."""
        await self.preload(table, (row_id,), share=True)
        return row_id in self._rows[table]

    async def get(self, table: str, row_id: str) -> Any | None:
        await self.preload(table, (row_id,))
        return self._rows[table].get(row_id)

    async def children(self, table: str, column: str, parent_id: str) -> list[Any]:
        """Every row of `table` whose `column` is `parent_id` (e.g. a task's questions), loaded once, locked."""
        if (table, column, parent_id) not in self._children:
            self._children.add((table, column, parent_id))
            for raw in await fold_store.load_children(self.cur, table, column, parent_id):
                if raw["id"] not in self._rows[table]:
                    row = self._make(table, raw)
                    self._rows[table][row.id] = row
                    self._loaded[table][row.id] = row
                    self._missing[table].discard(row.id)
        return [row for row in self._rows[table].values() if getattr(row, column) == parent_id]

    def find(self, table: str, **match: Any) -> Any | None:
        """A row of this transaction (loaded or new) with these column values, or None."""
        for row in self._rows[table].values():
            if all(getattr(row, column) == value for column, value in match.items()):
                return row
        return None

    def writes(self, table: str, row_id: str) -> bool:
        """Whether this transaction writes the row: new, or put after it was loaded."""
        row = self._rows[table].get(row_id)
        return row is not None and row is not self._loaded[table].get(row_id)

    def put(self, table: str, row: Any) -> None:
        if row.id not in self._rows[table]:
            self.created.append((table, row.id))
        self._rows[table][row.id] = row
        self._missing[table].discard(row.id)

    async def flush(self) -> None:
        """Write new rows (one INSERT per table), changed columns of existing rows, logs, outbox and trace rows."""
        deferred: list[tuple[str, str, dict[str, Any]]] = []
        for table in INSERT_ORDER:
            new = [as_dict(row) for rid, row in self._rows[table].items() if rid not in self._loaded[table]]
            for values in new:
                for column in DEFERRED_COLUMNS.get(table, ()):
                    if values[column] is not None:
                        deferred.append((table, values["id"], {column: values[column]}))
                        values[column] = None
            await fold_store.insert_rows(self.cur, table, new)
        for table in INSERT_ORDER:
            updates: list[tuple[str, dict[str, Any]]] = []
            for rid, before in self._loaded[table].items():
                after = self._rows[table][rid]
                if after is not before:
                    old, now = as_dict(before), as_dict(after)
                    # updated_at always: unset, the server's ON UPDATE would stamp the wall clock (not replayable).
                    updates.append((rid, {k: v for k, v in now.items() if old[k] != v or k == "updated_at"}))
            await fold_store.update_rows(self.cur, table, updates)
        for table in INSERT_ORDER:
            await fold_store.update_rows(self.cur, table, [(rid, changes) for t, rid, changes in deferred if t == table])
        await fold_store.insert_logs(self.cur, self.logs)
        await fold_store.insert_outbox(self.cur, self.outbox)
        if self.record_trace:
            await trace.insert_outcomes(self.cur, self.outcomes)
            await trace.insert_transitions(self.cur, self.transitions)
