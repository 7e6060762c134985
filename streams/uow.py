"""The unit of work of one fold transaction: rows read once and locked, changed in memory, written once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from db import fold_store
from streams.machines.agent import AgentRow
from streams.machines.project import ProjectRow
from streams.machines.task import TaskRow

ROW_TYPES: dict[str, type[Any]] = {"projects": ProjectRow, "agents": AgentRow, "tasks": TaskRow}
# Insert order follows the foreign keys; the tasks <-> agents cycle is closed by deferred updates.
INSERT_ORDER = ("projects", "agents", "tasks", "task_groups", "deployments", "task_questions")
DEFERRED_COLUMNS = {"agents": ("current_task_id",)}


def as_dict(row: Any) -> dict[str, Any]:
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


class UnitOfWork:
    """Rows of one transaction. `get` loads (FOR UPDATE) on first use; `put` marks a row to write."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self._rows: dict[str, dict[str, Any]] = {table: {} for table in ROW_TYPES}
        self._loaded: dict[str, dict[str, Any]] = {table: {} for table in ROW_TYPES}
        self._missing: dict[str, set[str]] = {table: set() for table in ROW_TYPES}
        self.logs: list[tuple[Any, ...]] = []
        self.outbox: list[tuple[str, str, str, bytes]] = []

    async def preload(self, table: str, ids: Iterable[str]) -> None:
        wanted = [i for i in dict.fromkeys(ids) if i not in self._rows[table] and i not in self._missing[table]]
        if not wanted:
            return
        row_type = ROW_TYPES[table]
        names = {f.name for f in dataclasses.fields(row_type)}
        for raw in await fold_store.load_rows(self.cur, table, wanted):
            row = row_type(**{k: v for k, v in raw.items() if k in names})
            self._rows[table][row.id] = row
            self._loaded[table][row.id] = row
        self._missing[table].update(i for i in wanted if i not in self._rows[table])

    async def get(self, table: str, row_id: str) -> Any | None:
        await self.preload(table, (row_id,))
        return self._rows[table].get(row_id)

    def put(self, table: str, row: Any) -> None:
        self._rows[table][row.id] = row
        self._missing[table].discard(row.id)

    async def flush(self) -> None:
        """Write new rows (one INSERT per table), changed columns of existing rows, logs and outbox."""
        deferred: list[tuple[str, str, dict[str, Any]]] = []
        for table in INSERT_ORDER:
            if table not in ROW_TYPES:
                continue
            new = [as_dict(row) for rid, row in self._rows[table].items() if rid not in self._loaded[table]]
            for values in new:
                for column in DEFERRED_COLUMNS.get(table, ()):
                    if values[column] is not None:
                        deferred.append((table, values["id"], {column: values[column]}))
                        values[column] = None
            await fold_store.insert_rows(self.cur, table, new)
        for table in INSERT_ORDER:
            if table not in ROW_TYPES:
                continue
            for rid, before in self._loaded[table].items():
                after = self._rows[table][rid]
                if after is not before:
                    old, now = as_dict(before), as_dict(after)
                    await fold_store.update_row(self.cur, table, rid, {k: v for k, v in now.items() if old[k] != v})
        for table, rid, changes in deferred:
            await fold_store.update_row(self.cur, table, rid, changes)
        await fold_store.insert_logs(self.cur, self.logs)
        await fold_store.insert_outbox(self.cur, self.outbox)
