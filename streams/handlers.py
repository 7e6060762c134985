"""What each event type does to which rows: the machines of every entity it touches, all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.events import Event
from streams import cloudevents
from streams.machines import Changed, Outcome, Refused, Unchanged
from streams.machines import agent as agent_machine
from streams.machines import project as project_machine
from streams.machines import task as task_machine
from streams.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Effect:
    """`apply` of the row of `table` whose id `key` takes from the event."""

    table: str
    apply: Callable[[Any, Event], Outcome[Any]]
    key: Callable[[Event], str]


@dataclass(frozen=True, slots=True)
class Requires:
    """A row that must exist before the event can apply (else the event is refused)."""

    table: str
    key: Callable[[Event], str]
    what: str


def _attr(name: str) -> Callable[[Event], str]:
    return lambda event: str(getattr(event, name))


TASK = Effect("tasks", task_machine.apply, _attr("task_id"))
AGENT = Effect("agents", agent_machine.apply, _attr("agent_id"))
PROJECT = Effect("projects", project_machine.apply, _attr("project_id"))

EFFECTS: dict[str, tuple[Effect, ...]] = {
    "project.upserted": (PROJECT,),
    "task.created": (TASK,),
    "agent.registered": (AGENT,),
    "task.started": (TASK, AGENT),
}
REQUIRES: dict[str, tuple[Requires, ...]] = {
    "task.created": (Requires("projects", _attr("project_id"), "project"),),
}


@dataclass(frozen=True, slots=True)
class Handled:
    """What one event did: `refused` holds the reason when the machines did not allow it."""

    changed: bool
    refused: str | None = None
    note: str | None = None


async def handle(uow: UnitOfWork, event: Event, cause_source: str, topic_name: Callable[[str], str]) -> Handled:
    """Apply `event` to every row it touches, or to none; queue its transitions in the outbox."""
    for need in REQUIRES.get(event.type, ()):
        if await uow.get(need.table, need.key(event)) is None:
            return Handled(False, refused=f"{event.type} names {need.what} {need.key(event)!r}, which does not exist")
    effects = EFFECTS.get(event.type, ())
    if not effects:
        return Handled(False, note=f"{event.type} changes no rows yet")
    outcomes: list[tuple[Effect, Outcome[Any]]] = []
    for effect in effects:
        row = await uow.get(effect.table, effect.key(event))
        outcome = effect.apply(row, event)
        if isinstance(outcome, Refused):
            return Handled(False, refused=outcome.reason)
        outcomes.append((effect, outcome))
    changed = False
    for effect, outcome in outcomes:
        if isinstance(outcome, Unchanged):
            continue
        assert isinstance(outcome, Changed)
        changed = True
        uow.put(effect.table, outcome.row)
        for transition in outcome.transitions:
            topic, event_id, payload = cloudevents.transition_event(transition, outcome.row, event, cause_source)
            uow.outbox.append((event_id, topic_name(topic), transition.entity_id, payload))
    return Handled(changed)
