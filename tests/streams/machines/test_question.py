"""task_questions rows: asked → answered, and the pending count the task machine needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.agent_events import TaskQuestionAsked, TaskStarted
from app.control_events import TaskQuestionAnswered
from streams.machines import Changed, Refused, Unchanged, naive_utc
from streams.machines import task as task_machine
from streams.machines.question import QuestionRow, apply, pending_count

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def asked(question_id: str = "q1") -> TaskQuestionAsked:
    return TaskQuestionAsked(
        type="task.question_asked", id=f"ask-{question_id}", time=T0, agent_id="a1", task_id="t1",
        question_id=question_id, question="Which DB?", context="migrations",
    )  # fmt: skip


def answered(question_id: str = "q1", response: str = "MySQL", **extra: str) -> TaskQuestionAnswered:
    return TaskQuestionAnswered(
        type="task.question_answered", id=f"ans-{question_id}-{response}", time=T0 + timedelta(minutes=5),
        question_id=question_id, response=response, responded_by="u1", **extra,
    )  # fmt: skip


def test_asked_then_answered() -> None:
    created = apply(None, asked())
    assert isinstance(created, Changed) and created.transitions == ()
    assert created.row == QuestionRow("q1", "t1", "Which DB?", "migrations", asked_at=naive_utc(T0))
    assert isinstance(apply(created.row, asked()), Unchanged)
    done = apply(created.row, answered())
    assert isinstance(done, Changed)
    assert (done.row.status, done.row.response, done.row.responded_by, done.row.responded_at) == (
        "answered", "MySQL", "u1", naive_utc(T0 + timedelta(minutes=5)),
    )  # fmt: skip
    assert isinstance(apply(done.row, answered()), Unchanged)
    other = apply(done.row, answered(response="Postgres"))
    assert isinstance(other, Refused) and "answered already" in other.reason


def test_refusals() -> None:
    assert isinstance(apply(None, answered()), Refused)
    row = QuestionRow("q1", "t1", "?")
    wrong = apply(row, answered(task_id="t2"))
    assert isinstance(wrong, Refused) and "belongs to task t1" in wrong.reason
    skipped = apply(QuestionRow("q1", "t1", "?", status="skipped"), answered())
    assert isinstance(skipped, Refused) and "skipped" in skipped.reason
    started = TaskStarted(type="task.started", id="s", time=T0, agent_id="a1", task_id="t1")
    assert isinstance(apply(row, started), Unchanged)


def test_the_task_resumes_when_the_last_question_is_answered() -> None:
    questions = {q: apply(None, asked(q)) for q in ("q1", "q2")}
    rows = {q: o.row for q, o in questions.items() if isinstance(o, Changed)}
    task = task_machine.TaskRow(id="t1", project_id="p1", title="t", state="needs_input", assigned_agent_id="a1")
    for question_id, state in (("q1", "needs_input"), ("q2", "in_progress")):
        outcome = apply(rows[question_id], answered(question_id))
        assert isinstance(outcome, Changed)
        rows[question_id] = outcome.row
        moved = task_machine.apply(task, answered(question_id), pending_questions=pending_count(rows.values()))
        if isinstance(moved, Changed):
            task = moved.row
        assert task.state == state
