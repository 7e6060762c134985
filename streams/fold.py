"""The fold engine: a batch of input records becomes one MySQL transaction, exactly once.

Each transaction locks and advances the stored next offset of every input partition it consumed,
so a redelivered record (offset below the stored position) changes nothing; an event id already
applied changes nothing either. Rows, transitions (outbox) and dlq records commit together.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncmy.cursors import DictCursor
from asyncmy.errors import DataError, IntegrityError
from pydantic import ValidationError

from app import topics
from app.events import AGENT_TYPES, CONTROL_TYPES, Event, parse_event
from app.settings import Settings
from db import fold_store
from streams import cloudevents
from streams.handlers import handle
from streams.uow import UnitOfWork

log = logging.getLogger(__name__)
DLQ_NAMESPACE = uuid.UUID("0b6f7f4e-3f0a-4b8e-8d2c-5a1e9c3b7d21")
SOURCE_TYPES = {topics.AGENT_EVENTS: AGENT_TYPES, topics.CONTROL_EVENTS: CONTROL_TYPES}


@dataclass(frozen=True, slots=True)
class InputRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class FoldStats:
    applied: int = 0
    unchanged: int = 0
    refused: int = 0
    invalid: int = 0
    duplicates: int = 0
    replayed: int = 0
    ignored: dict[str, int] = field(default_factory=dict)

    def add(self, other: FoldStats) -> None:
        for name in ("applied", "unchanged", "refused", "invalid", "duplicates", "replayed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, count in other.ignored.items():
            self.ignored[key] = self.ignored.get(key, 0) + count


class Fold:
    """Folds batches of input records into the database; see the module docstring."""

    def __init__(self, pool: Any, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self.consumer = settings.worker_id
        self._short = {settings.topic(name): name for name in topics.ALL_TOPICS}

    def decode(self, record: InputRecord) -> Event | str:
        """The event in a record, or why it cannot be one."""
        short = self._short.get(record.topic)
        if short not in SOURCE_TYPES:
            return f"records of topic {record.topic} are not folded by this worker"
        try:
            data = json.loads(record.value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"record is not JSON: {exc}"
        if not isinstance(data, dict):
            return f"record is a JSON {type(data).__name__}, not an event object"
        try:
            event = parse_event(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            return f"invalid event: {where}: {first['msg']} ({exc.error_count()} error(s))"
        if event.type not in SOURCE_TYPES[short]:
            return f"{event.type} does not belong on {record.topic}"
        return event

    def dlq_row(self, record: InputRecord, reason: str) -> tuple[str, str, str, bytes]:
        dlq_id = str(uuid.uuid5(DLQ_NAMESPACE, f"{record.topic}|{record.partition}|{record.offset}"))
        try:
            text: str | None = record.value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        body = {
            "id": dlq_id,
            "reason": reason,
            "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            "value": text,
            "value_base64": None if text is not None else base64.b64encode(record.value).decode(),
        }
        key = record.key.decode("utf-8", "replace") if record.key is not None else ""
        return dlq_id, self.settings.topic(topics.DLQ), key, cloudevents.dumps(body)

    async def apply_batch(self, records: Sequence[InputRecord]) -> FoldStats:
        """Fold the batch in one transaction; on a data error, record by record. DB trouble raises."""
        try:
            return await self._transaction(records)
        except (IntegrityError, DataError) as exc:
            log.warning("batch of %d hit %r; folding it record by record", len(records), exc)
        stats = FoldStats()
        for record in records:
            try:
                stats.add(await self._transaction([record]))
            except (IntegrityError, DataError) as exc:
                stats.add(await self._transaction([record], refuse=f"database refused the change: {exc.args[-1]}"))
        return stats

    async def _transaction(self, records: Sequence[InputRecord], refuse: str | None = None) -> FoldStats:
        stats = FoldStats()
        async with self.pool.acquire() as conn:
            try:
                await conn.begin()
                async with conn.cursor(DictCursor) as cur:
                    await self._fold(cur, records, stats, refuse)
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
        return stats

    async def _fold(self, cur: Any, records: Sequence[InputRecord], stats: FoldStats, refuse: str | None) -> None:
        positions = await fold_store.lock_positions(cur, self.consumer, ((r.topic, r.partition) for r in records))
        fresh = [r for r in records if r.offset >= positions[(r.topic, r.partition)]]
        stats.replayed += len(records) - len(fresh)
        decoded = [(r, self.decode(r)) for r in fresh]
        ids = [e.id for _, e in decoded if isinstance(e, Event)]
        seen = await fold_store.seen_event_ids(cur, ids)
        uow = UnitOfWork(cur)
        await uow.preload("tasks", {str(getattr(e, "task_id", "")) for _, e in decoded if getattr(e, "task_id", None)})
        await uow.preload("agents", {e.agent_id for _, e in decoded if hasattr(e, "agent_id")})
        applied: list[tuple[str, str, int, int]] = []
        for record, event in decoded:
            positions[(record.topic, record.partition)] = record.offset + 1
            if isinstance(event, str) or refuse is not None:
                stats.invalid += isinstance(event, str)
                stats.refused += not isinstance(event, str)
                uow.outbox.append(self.dlq_row(record, event if isinstance(event, str) else str(refuse)))
                continue
            if event.id in seen:
                stats.duplicates += 1
                continue
            seen.add(event.id)
            result = await handle(uow, event, record.topic, self.settings.topic)
            if result.refused is not None:
                stats.refused += 1
                uow.outbox.append(self.dlq_row(record, result.refused))
                continue
            applied.append((event.id, record.topic, record.partition, record.offset))
            if result.changed:
                stats.applied += 1
            elif result.note is not None:
                stats.ignored[event.type] = stats.ignored.get(event.type, 0) + 1
            else:
                stats.unchanged += 1
        await uow.flush()
        await fold_store.record_event_ids(cur, applied)
        await fold_store.save_positions(cur, self.consumer, positions)
