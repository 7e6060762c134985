"""The events agents send (source "agent", on agent.events, keyed by their agent): agent.registered,
agent.heartbeat, agent.error, agent.stopped, task.started, task.question_asked, task.ready_for_review, log and
log.batch (app/events.py lists them in AGENT_TYPES and parses JSON into them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from app.event_base import AgentEvent, ColumnText, EntityId


class AgentRegistered(AgentEvent):
    type: Literal["agent.registered"]
    pod_name: Annotated[str, Field(min_length=1, max_length=253)]
    k8s_namespace: Annotated[str, Field(max_length=63)] = "agents"
    node_name: Annotated[str, Field(max_length=253)] | None = None
    capabilities: list[str] = Field(default_factory=list)
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=1000)] = 1


class AgentHeartbeat(AgentEvent):
    type: Literal["agent.heartbeat"]
    status: Literal["idle", "busy"]
    current_task_id: EntityId | None = None


class AgentError(AgentEvent):
    type: Literal["agent.error"]
    message: ColumnText


class AgentStopped(AgentEvent):
    type: Literal["agent.stopped"]


class TaskStarted(AgentEvent):
    type: Literal["task.started"]
    task_id: EntityId


class TaskQuestionAsked(AgentEvent):
    type: Literal["task.question_asked"]
    task_id: EntityId
    question_id: EntityId
    question: Annotated[ColumnText, Field(min_length=1)]
    context: ColumnText | None = None


class TaskReadyForReview(AgentEvent):
    type: Literal["task.ready_for_review"]
    task_id: EntityId
    branch_name: Annotated[str, Field(max_length=255)] | None = None
    pr_number: Annotated[int, Field(ge=1)] | None = None
    pr_url: Annotated[str, Field(max_length=512)] | None = None
    preview_namespace: Annotated[str, Field(max_length=63)] | None = None
    preview_url: Annotated[str, Field(max_length=512)] | None = None


class Log(AgentEvent):
    type: Literal["log"]
    level: Literal["debug", "info", "warn", "error"] = "info"
    message: ColumnText
    metadata: dict[str, Any] | None = None
    task_id: EntityId | None = None


class LogBatch(AgentEvent):
    """Log lines of one agent that travel as one record (the web side packs them; the fold unpacks them).

    Its `id` is derived from the ids of its lines; each line keeps its own id for de-duplication.
    """

    type: Literal["log.batch"]
    logs: Annotated[list[Log], Field(min_length=1, max_length=100_000)]

    @model_validator(mode="after")
    def _lines_of_its_agent(self) -> LogBatch:
        """Its lines are stored as its agent's: a line that claims another agent makes the batch invalid."""
        for index, line in enumerate(self.logs):
            if line.agent_id != self.agent_id:
                raise ValueError(
                    f"logs.{index}.agent_id is {line.agent_id!r}, not the batch's agent {self.agent_id!r}; "
                    "a batch holds the lines of one agent: send another agent's lines in a batch of its own"
                )
        return self
