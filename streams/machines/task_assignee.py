"""Which agent may speak for a task (CONTRACT.md, "State machines": Task): the rules of the task machine about agents.

An agent speaks only for its own work. task.started on an in_progress/needs_input task that another agent holds
is refused unless that agent is offline or in error (`agent.RECLAIMABLE`): then it is a reclaim (`take_over` answers
a `Reclaim`; the task machine changes assignee and assigned_at, keeps state and started_at, and its transition, to
the same state, carries `reclaimed_from`). task.question_asked and task.ready_for_review from another agent than the
assignee (or on a started task with no assignee) are refused, naming both agents and the task (`not_assignee`;
streams/logs.py applies it to log lines).

The holder's status is not the task's to know: the agent row is ordered by its agent, not by the task. The fold asks
for the agent `holder_to_ask` names and passes its status (`assignee_status` of `task.apply`): the verdict is what
that row said when the task's event was folded (the transition records it), not a function of the task's own events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.agent_events import TaskQuestionAsked, TaskReadyForReview, TaskStarted
from streams.machines import Reclaim, Refused, Unchanged
from streams.machines.agent import RECLAIMABLE
from streams.machines.domain import Input

if TYPE_CHECKING:
    from streams.machines.task import TaskRow


def holder_to_ask(row: TaskRow | None, event: Input) -> str | None:
    """The agent whose status `apply` needs for `event` (task.started on a task another agent holds), or None."""
    if not isinstance(event, TaskStarted) or row is None or row.state not in ("in_progress", "needs_input"):
        return None
    holder = row.assigned_agent_id
    return holder if holder is not None and holder != event.agent_id else None


def take_over(row: TaskRow, event: TaskStarted, holder_status: str | None) -> Unchanged | Refused | Reclaim | None:
    """May agent `event.agent_id` take a started (in_progress/needs_input) task: Unchanged when it holds it already,
    Refused while another agent holds it and is not RECLAIMABLE, a Reclaim from that agent, or None (nobody holds it)."""
    holder = row.assigned_agent_id
    if holder == event.agent_id:
        return Unchanged(f"task {row.id} was started by agent {event.agent_id} already")
    if holder is None:  # its agent row was deleted, so nobody holds it
        return None
    if holder_status is None:
        raise TypeError("task.apply needs assignee_status for task.started on a task another agent holds")
    if holder_status not in RECLAIMABLE:
        return Refused(
            f"task {row.id} is {row.state} with agent {holder}, which is {holder_status}; agent {event.agent_id} "
            f"may take it over only once agent {holder} is {' or '.join(RECLAIMABLE)}"
        )
    return Reclaim(holder, holder_status)


def not_assignee(task_id: str, assignee: str | None, agent_id: str, what: str) -> str | None:
    """Why agent `agent_id` may not send `what` about a task whose assignee is `assignee` (another agent), or None."""
    if assignee is None or assignee == agent_id:
        return None
    who = f"agent {agent_id} is not the assignee of task {task_id} (agent {assignee} is)"
    return f"{who}; {what} about a task comes only from its assignee"


def wrong_agent(row: TaskRow, event: TaskQuestionAsked | TaskReadyForReview) -> Refused | None:
    """Why the sender of `event` may not speak for the task (not its assignee, or nobody is), or None."""
    if row.state == "backlog":
        return None  # the state's own refusal says more: the task is not started
    if row.assigned_agent_id is None:
        return Refused(
            f"task {row.id} is {row.state} with no assigned agent; {event.type} from agent {event.agent_id} is refused "
            "(the agent takes the task with task.started first)"
        )
    why = not_assignee(row.id, row.assigned_agent_id, event.agent_id, event.type)
    return Refused(why) if why is not None else None
