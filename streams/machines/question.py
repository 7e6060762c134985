"""Rows of `task_questions`: pending (task.question_asked) → answered (task.question_answered).

Questions emit no transitions (CONTRACT.md has no question topic); their changes ride with the task's.
The fold answers the question first, then passes the task machine `pending_questions`: the number of
the task's questions still pending after the answer (`pending_count` over the task's rows, this one
included as changed). The question row knows its task, so `task.question_answered` need not name it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from app.agent_events import TaskQuestionAsked
from app.control_events import TaskQuestionAnswered
from streams.machines import Changed, Outcome, Refused, Unchanged, naive_utc
from streams.machines.domain import Input

STATES = ("pending", "answered", "skipped")


@dataclass(frozen=True, slots=True)
class QuestionRow:
    """A row of `task_questions`."""

    id: str
    task_id: str
    question: str
    context: str | None = None
    asked_at: datetime | None = None
    response: str | None = None
    responded_at: datetime | None = None
    responded_by: str | None = None
    status: str = "pending"


def apply(row: QuestionRow | None, event: Input) -> Outcome[QuestionRow]:
    """The question after `event`, or why nothing changes."""
    if isinstance(event, TaskQuestionAsked):
        if row is not None:
            return Unchanged(f"question {row.id} was asked already")
        at = naive_utc(event.time)
        asked = QuestionRow(event.question_id, event.task_id, event.question, event.context, asked_at=at)
        return Changed(asked)
    if not isinstance(event, TaskQuestionAnswered):
        return Unchanged(f"{event.type} does not change questions")
    if row is None:
        return Refused(f"{event.type} names question {event.question_id!r}, which was never asked")
    if event.task_id is not None and event.task_id != row.task_id:
        return Refused(f"question {row.id} belongs to task {row.task_id}, not {event.task_id}")
    if row.status == "answered":
        if (row.response, row.responded_by) == (event.response, event.responded_by):
            return Unchanged(f"question {row.id} has this answer already")
        return Refused(f"question {row.id} was answered already at {row.responded_at}")
    if row.status != "pending":
        return Refused(f"question {row.id} is {row.status}; only a pending question can be answered")
    at = naive_utc(event.time)
    return Changed(replace(row, status="answered", response=event.response, responded_by=event.responded_by, responded_at=at))


def pending_count(questions: Iterable[QuestionRow]) -> int:
    """How many of `questions` (a task's rows, after this event) are still pending."""
    return sum(1 for question in questions if question.status == "pending")
