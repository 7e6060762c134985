"""Contract events that touch rows through one machine each (no extra context): the EFFECTS table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from streams.handlers.common import UNCHANGED, Context, Handled, commit_all, missing
from streams.machines import Outcome
from streams.machines import agent as agent_machine
from streams.machines import project as project_machine
from streams.machines import task as task_machine
from streams.machines import task_group as group_machine
from streams.machines.domain import Input
from streams.machines.task_assignee import holder_to_ask


@dataclass(frozen=True, slots=True)
class Effect:
    """`apply` of the row of `table` whose id `key` takes from the event; `context`: the keyword arguments the
    machine needs beside the row and the event, read in the fold's transaction."""

    table: str
    apply: Callable[..., Outcome[Any]]
    key: Callable[[Input], str]
    context: Callable[[Context, Any, Input], Awaitable[dict[str, Any]]] | None = None


def attr(name: str) -> Callable[[Input], str]:
    return lambda event: str(getattr(event, name))


def _project_apply(row: Any, event: Input) -> Outcome[Any]:
    return project_machine.apply(row, event)  # type: ignore[arg-type]  # only contract events reach it


async def _assignee_status(ctx: Context, row: Any, event: Input) -> dict[str, Any]:
    """task.started on a task another agent holds: that agent's status (a reclaim needs it offline or in error)."""
    holder = holder_to_ask(row, event)
    if holder is None:
        return {}
    agent = await ctx.uow.get("agents", holder)
    # The foreign key keeps a task's agent row (ON DELETE SET NULL); a row that is gone holds nothing.
    return {"assignee_status": agent.status if agent is not None else "offline"}


TASK = Effect("tasks", task_machine.apply, attr("task_id"))
TASK_START = Effect("tasks", task_machine.apply, attr("task_id"), _assignee_status)


async def _granularity(ctx: Context, row: Any, event: Input) -> dict[str, Any]:
    return {"granularity": ctx.heartbeat_granularity} if ctx.heartbeat_granularity else {}


AGENT = Effect("agents", agent_machine.apply, attr("agent_id"), _granularity)
PROJECT = Effect("projects", _project_apply, attr("project_id"))
GROUP = Effect("task_groups", group_machine.apply, attr("task_group_id"))

EFFECTS: dict[str, tuple[Effect, ...]] = {
    "project.upserted": (PROJECT,),
    "task.created": (TASK,),
    "agent.registered": (AGENT,),
    "agent.heartbeat": (AGENT,),
    "agent.error": (AGENT,),
    "agent.stopped": (AGENT,),
    "task.started": (TASK_START, AGENT),
    "task.ready_for_review": (TASK, AGENT),
    "task.approved": (TASK,),
    "task.cancelled": (TASK,),
    "task_group.created": (GROUP,),
    # Domain events (Gitea deliveries, the stale-agent sweeper).
    "gitea.issue_opened": (TASK,),
    "gitea.issue_closed": (TASK,),
    "gitea.pull_request_opened": (TASK,),
    "gitea.pull_request_closed": (TASK,),
    "gitea.pull_request_reviewed": (TASK,),
    "agent.stale": (AGENT,),
}
# Rows that must exist before the event can apply: missing, the event parks until they exist (they
# travel on other partitions). An agent's own events are in order on its partition: an unknown agent
# there is refused by the machine instead.
NEEDS: dict[str, tuple[tuple[str, Callable[[Input], str | None]], ...]] = {
    "task.created": (("projects", attr("project_id")),),
    "task_group.created": (("projects", attr("project_id")),),
    "gitea.issue_opened": (("projects", attr("project_id")),),
    "task.started": (("tasks", attr("task_id")), ("agents", attr("agent_id"))),
    "task.ready_for_review": (("tasks", attr("task_id")), ("agents", attr("agent_id"))),
    "task.approved": (("tasks", attr("task_id")),),
    "task.cancelled": (("tasks", attr("task_id")),),
}


def scoped(effects: tuple[Effect, ...], scope: str | None) -> tuple[Effect, ...]:
    """The effects of one half of a split event: the agent row ("agent"), or every other row ("task")."""
    if scope is None:
        return effects
    return tuple(e for e in effects if (e.table == "agents") == (scope == "agent"))


async def apply_effects(ctx: Context, event: Input, scope: str | None = None) -> Handled:
    """Apply `event` to every row it touches (of its `scope`), or to none.

    Both halves need every row of NEEDS (the task row names its agent, the agent row its task: foreign keys)."""
    effects = EFFECTS.get(event.type)
    if effects is None:
        return Handled(False, ignored=f"{event.type} changes no rows", kind=event.type)
    effects = scoped(effects, scope)
    needs = [(table, key(event)) for table, key in NEEDS.get(event.type, ())]
    if (wait := await missing(ctx, needs)) is not None:
        return Handled(False, parked=wait)
    outcomes = []
    for effect in effects:
        row = await ctx.uow.get(effect.table, effect.key(event))
        extra = await effect.context(ctx, row, event) if effect.context is not None else {}
        outcomes.append((effect.table, effect.apply(row, event, **extra)))
    handled = commit_all(ctx, outcomes, event)
    return handled if handled.changed or handled.refused else UNCHANGED
