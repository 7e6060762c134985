"""Pure state machines: `apply(row, event) -> Outcome`, no I/O.

A machine receives the current row (None when it does not exist) and one event, and answers with
`Changed` (the row after the event and the transitions it caused), `Unchanged` (an idempotent
repeat or an event with nothing to do for this row) or `Refused` (the machine does not allow it;
the fold sends the event to the dlq with the reason).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar

Entity = Literal["task", "agent", "deployment", "task_group"]
RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class Reclaim:
    """Who held a task that another agent took over, and why it could: its status was offline or error."""

    agent_id: str
    status: str


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of one entity; `from_state` is None when the entity was created.

    `reclaimed_from`: a task that another agent took over (from_state may equal to_state); the CloudEvent's
    data carries it as `reclaimed_from` {agent_id, status}."""

    entity: Entity
    entity_id: str
    from_state: str | None
    to_state: str
    reclaimed_from: Reclaim | None = None


@dataclass(frozen=True, slots=True)
class Changed(Generic[RowT]):
    row: RowT
    transitions: tuple[Transition, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Unchanged:
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


Outcome = Changed[RowT] | Unchanged | Refused


def epoch_second(moment: datetime) -> int:
    """The POSIX second of `moment` (naive: UTC), rounded down: the second `naive_utc` keeps, as a number."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())


def naive_utc(moment: datetime) -> datetime:
    """The UTC wall time of an aware datetime, as stored in TIMESTAMP columns (sessions run in UTC)."""
    if moment.tzinfo is None:
        return moment.replace(microsecond=0)
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)
