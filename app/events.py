"""The contract's input events: the union of every event model (app/agent_events.py, app/control_events.py, built
on app/event_base.py), the type names of each source, and parsing JSON into one event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from app.agent_events import (
    AgentError,
    AgentHeartbeat,
    AgentRegistered,
    AgentStopped,
    Log,
    LogBatch,
    TaskQuestionAsked,
    TaskReadyForReview,
    TaskStarted,
)
from app.control_events import (
    DeploymentEvent,
    ProjectUpserted,
    TaskApproved,
    TaskCancelled,
    TaskCreated,
    TaskGroupCreated,
    TaskQuestionAnswered,
)
from app.event_base import Event

AnyAgentEvent = Annotated[
    AgentRegistered
    | AgentHeartbeat
    | AgentError
    | AgentStopped
    | TaskStarted
    | TaskQuestionAsked
    | TaskReadyForReview
    | Log
    | LogBatch,
    Field(discriminator="type"),
]
AnyControlEvent = Annotated[
    ProjectUpserted | TaskCreated | TaskQuestionAnswered | TaskApproved | TaskCancelled | TaskGroupCreated | DeploymentEvent,
    Field(discriminator="type"),
]
AnyEvent = Annotated[AnyAgentEvent | AnyControlEvent, Field(discriminator="type")]

AGENT_TYPES = frozenset(
    {"agent.registered", "agent.heartbeat", "agent.error", "agent.stopped", "task.started",
     "task.question_asked", "task.ready_for_review", "log", "log.batch"}
)  # fmt: skip
DEPLOYMENT_TYPES = frozenset(
    {"deployment.requested", "deployment.started", "deployment.succeeded", "deployment.failed",
     "deployment.rolled_back"}
)  # fmt: skip
CONTROL_TYPES = frozenset(
    {"project.upserted", "task.created", "task.question_answered", "task.approved", "task.cancelled",
     "task_group.created"}
) | DEPLOYMENT_TYPES  # fmt: skip
ALL_TYPES = AGENT_TYPES | CONTROL_TYPES

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)


def parse_event(data: Any) -> Event:
    """Validate one decoded JSON value as a contract event (raises pydantic.ValidationError)."""
    return EVENT_ADAPTER.validate_python(data)


def parse_event_json(raw: bytes) -> Event:
    """Validate JSON text as a contract event in one pass, no intermediate objects (a log batch is kilobytes);
    the same event as `parse_event(json.loads(raw))` (raises pydantic.ValidationError)."""
    return EVENT_ADAPTER.validate_json(raw)


def event_time(event: Event) -> datetime:
    return event.time
