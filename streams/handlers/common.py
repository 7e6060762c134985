"""What every handler shares: the transaction context, the result of one event, transitions into the outbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams import cloudevents
from streams.machines import Changed, Outcome, Refused, Unchanged
from streams.machines.domain import Input
from streams.tracing import transition_row
from streams.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Handled:
    """What one event did.

    `refused`: the machines did not allow it (dlq). `parked`: the (table, id) of a row it needs that does
    not exist yet (the event waits for it). `ignored`: why nothing applies, counted under `kind`
    (Gitea types, unknown repositories or tasks). `warnings`: parts refused after the main row changed.
    """

    changed: bool
    refused: str | None = None
    parked: tuple[str, str] | None = None
    ignored: str | None = None
    kind: str | None = None
    warnings: tuple[str, ...] = field(default=())


UNCHANGED = Handled(False)


@dataclass(frozen=True, slots=True)
class Context:
    uow: UnitOfWork
    source: str
    """Full name of the topic the cause came from (the CloudEvent's data.cause.source)."""
    topic_name: Callable[[str], str]
    heartbeat_granularity: float = 0.0
    """AIWORKER_HEARTBEAT_GRANULARITY_SECONDS: see streams/machines/agent.py `within_granularity`."""


def emit(ctx: Context, table: str, outcome: Changed[Any], cause: Input) -> None:
    """Keep the changed row and queue its transitions (ids derived from the cause) in the outbox."""
    ctx.uow.put(table, outcome.row)
    for transition in outcome.transitions:
        topic, event_id, payload = cloudevents.transition_event(transition, outcome.row, cause, ctx.source)
        ctx.uow.outbox.append((event_id, ctx.topic_name(topic), transition.entity_id, payload))
        ctx.uow.transitions.append(transition_row(event_id, cause.id, transition))


async def missing(ctx: Context, needs: Sequence[tuple[str, str | None]]) -> tuple[str, str] | None:
    """The first (table, id) of `needs` whose row does not exist (ids that are None are not needed); rows only
    needed are locked in share mode (`UnitOfWork.exists`)."""
    for table, row_id in needs:
        if row_id is not None and not await ctx.uow.exists(table, row_id):
            return table, row_id
    return None


def commit_all(ctx: Context, outcomes: Sequence[tuple[str, Outcome[Any]]], cause: Input) -> Handled:
    """All outcomes, or none when one refuses: the event's rows change together."""
    for _, outcome in outcomes:
        if isinstance(outcome, Refused):
            return Handled(False, refused=outcome.reason)
    changed = False
    for table, outcome in outcomes:
        if isinstance(outcome, Unchanged):
            continue
        assert isinstance(outcome, Changed)
        changed = True
        emit(ctx, table, outcome, cause)
    return Handled(changed)
