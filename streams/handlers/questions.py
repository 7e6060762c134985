"""task.question_asked and task.question_answered: the question row first, then its task."""

from __future__ import annotations

from typing import Any

from app.agent_events import TaskQuestionAsked
from app.control_events import TaskQuestionAnswered
from streams.handlers.common import Context, Handled, commit_all, missing
from streams.machines import Changed, Outcome, Refused, Unchanged
from streams.machines import question as question_machine
from streams.machines import task as task_machine


async def asked(ctx: Context, event: TaskQuestionAsked) -> Handled:
    """A pending question row and the task to needs_input, together or not at all."""
    if (wait := await missing(ctx, [("tasks", event.task_id)])) is not None:
        return Handled(False, parked=wait)
    question = await ctx.uow.get("task_questions", event.question_id)
    task = await ctx.uow.get("tasks", event.task_id)
    outcomes: list[tuple[str, Outcome[Any]]] = [
        ("tasks", task_machine.apply(task, event)),
        ("task_questions", question_machine.apply(question, event)),
    ]
    return commit_all(ctx, outcomes, event)


async def answered(ctx: Context, event: TaskQuestionAnswered) -> Handled:
    """The answer on the question row; the task resumes once none of its questions is pending."""
    if (wait := await missing(ctx, [("task_questions", event.question_id)])) is not None:
        return Handled(False, parked=wait)
    question = await ctx.uow.get("task_questions", event.question_id)
    answer = question_machine.apply(question, event)
    if isinstance(answer, Refused | Unchanged):
        return commit_all(ctx, [("task_questions", answer)], event)
    assert isinstance(answer, Changed)
    task_id = answer.row.task_id
    siblings = [q for q in await ctx.uow.children("task_questions", "task_id", task_id) if q.id != answer.row.id]
    pending = question_machine.pending_count([*siblings, answer.row])
    task = await ctx.uow.get("tasks", task_id)
    resumed = task_machine.apply(task, event, pending_questions=pending)
    return commit_all(ctx, [("task_questions", answer), ("tasks", resumed)], event)
