"""The contract's input events as pydantic models: one flat JSON object each, unknown fields kept."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

Id = Annotated[str, Field(min_length=1, max_length=191)]
EntityId = Annotated[str, Field(min_length=1, max_length=36)]
TEXT_BYTES = 65_535
"""What a TEXT column holds: 65,535 bytes (of UTF-8, utf8mb4), whatever the number of characters."""


def _fits_text(value: str) -> str:
    if len(value) > TEXT_BYTES // 4 and len(value.encode("utf-8")) > TEXT_BYTES:  # 4 bytes a character at most
        raise ValueError(f"String should have at most {TEXT_BYTES} bytes in UTF-8 (the database column's size)")
    return value


ColumnText = Annotated[str, Field(max_length=TEXT_BYTES), AfterValidator(_fits_text)]
"""Text that a TEXT column stores: what the door accepts, the fold can write."""
_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_text(value: Any) -> Any:
    """Only RFC 3339 text (or a datetime, from code): pydantic alone also takes 0, "0" or "1700000000" as POSIX
    seconds, which the contract (and schemas/) do not allow and which would fold as 1970."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339_START.match(value)):
        return value
    raise ValueError("time is RFC 3339 text with its offset (2026-11-22T10:00:00Z), not a number")


STORABLE_SECONDS = range(1, 2**31)
"""What a TIMESTAMP column holds (MySQL and MariaDB), at the second the fold stores, as POSIX seconds
(1970-01-01T00:00:01Z to 2038-01-19T03:14:07Z): an event time outside it is refused at the door and by the fold."""


def _storable(value: datetime) -> datetime:
    try:
        second = math.floor(value.timestamp())
    except (OverflowError, ValueError):  # year 1 or 9999 with an offset
        second = -1
    if second not in STORABLE_SECONDS:
        raise ValueError(
            f"time {value.isoformat()} is outside what the database stores (1970-01-01T00:00:01Z to 2038-01-19T03:14:07Z)"
        )
    return value


Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_storable)]


def _names_or_short_id(field: str) -> dict[str, Any]:
    """JSON Schema of a model validator: `field` is given, or the event id (its default) fits in 36 characters."""
    return {"anyOf": [{"required": [field], "properties": {field: {"type": "string"}}},
                      {"properties": {"id": {"maxLength": 36}}}]}  # fmt: skip


SECRET_FIELDS = ("gitea_webhook_secret", "gitea_webhook_secret_previous", "gitea_webhook_secret_rotated_at")
"""Project columns no event may carry: secrets never travel on topics (README, "Project webhook secrets")."""


class Event(BaseModel):
    """Fields every input event carries; subclasses add their own. Unknown fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Id
    type: str
    time: Time

    @property
    def source(self) -> Literal["agent", "control"]:
        return "agent" if self.type in AGENT_TYPES else "control"

    def routing_key(self) -> str:
        """The Kafka key: the agent for agent-source events, the entity for control events."""
        raise NotImplementedError


class AgentEvent(Event):
    agent_id: EntityId

    def routing_key(self) -> str:
        return self.agent_id


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


class ProjectUpserted(Event):
    type: Literal["project.upserted"]
    project_id: EntityId
    name: Annotated[str, Field(min_length=1, max_length=255)]
    k8s_namespace: Annotated[str, Field(min_length=1, max_length=63)]
    description: ColumnText | None = None
    gitea_repo_id: int | None = None
    gitea_repo_url: Annotated[str, Field(max_length=512)] | None = None
    gitea_owner: Annotated[str, Field(max_length=100)] | None = None
    gitea_repo_name: Annotated[str, Field(max_length=100)] | None = None
    default_branch: Annotated[str, Field(max_length=100)] = "main"
    docker_image: Annotated[str, Field(max_length=512)] | None = None
    env_vars: dict[str, str] | None = None
    replicas: int = 1
    cpu_limit: Annotated[str, Field(max_length=20)] = "500m"
    memory_limit: Annotated[str, Field(max_length=20)] = "512Mi"
    mcp_tools: list[str] | None = None
    mcp_permissions: dict[str, Any] | None = None
    status: Literal["active", "paused", "archived"] = "active"

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(name in data for name in SECRET_FIELDS):
            raise ValueError(
                "a project's webhook secret is not an event field (events are kept on topics, secrets must not be): "
                "set it with PUT /projects/{project_id}/webhook-secret (service token)"
            )
        return data

    def routing_key(self) -> str:
        return self.project_id


class TaskCreated(Event):
    """`task_id` names the new task; when absent, the event id is the task id."""

    model_config = ConfigDict(json_schema_extra=_names_or_short_id("task_id"))

    type: Literal["task.created"]
    task_id: EntityId | None = None
    project_id: EntityId
    title: Annotated[str, Field(min_length=1, max_length=255)]
    description: ColumnText | None = None
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    estimated_complexity: Literal["trivial", "simple", "medium", "complex"] = "medium"

    @model_validator(mode="after")
    def _default_task_id(self) -> TaskCreated:
        if self.task_id is None:
            if len(self.id) > 36:
                raise ValueError("task_id is required when the event id is longer than 36 characters")
            object.__setattr__(self, "task_id", self.id)
        return self

    def routing_key(self) -> str:
        return self.task_id or self.id


class TaskQuestionAnswered(Event):
    type: Literal["task.question_answered"]
    question_id: EntityId
    response: ColumnText
    responded_by: EntityId | None = None
    task_id: EntityId | None = None

    def routing_key(self) -> str:
        return self.task_id or self.question_id


class TaskApproved(Event):
    type: Literal["task.approved"]
    task_id: EntityId

    def routing_key(self) -> str:
        return self.task_id


class TaskCancelled(Event):
    type: Literal["task.cancelled"]
    task_id: EntityId
    reason: str | None = None

    def routing_key(self) -> str:
        return self.task_id


class TaskGroupCreated(Event):
    """`task_group_id` names the new group; when absent, the event id is the group id."""

    model_config = ConfigDict(json_schema_extra=_names_or_short_id("task_group_id"))

    type: Literal["task_group.created"]
    task_group_id: EntityId | None = None
    project_id: EntityId
    task_ids: Annotated[list[EntityId], Field(min_length=1)]
    staging_branch: Annotated[str, Field(max_length=255)] | None = None
    created_by: EntityId | None = None
    notes: ColumnText | None = None

    @model_validator(mode="after")
    def _default_group_id(self) -> TaskGroupCreated:
        if self.task_group_id is None:
            if len(self.id) > 36:
                raise ValueError("task_group_id is required when the event id is longer than 36 characters")
            object.__setattr__(self, "task_group_id", self.id)
        return self

    def routing_key(self) -> str:
        return self.task_group_id or self.id


class DeploymentEvent(Event):
    model_config = ConfigDict(json_schema_extra={"anyOf": [  # a preview's deployment.requested names its task
        {"properties": {"environment": {"enum": ["staging", "production"]}}},
        {"properties": {"type": {"not": {"const": "deployment.requested"}}}},
        {"required": ["task_id"], "properties": {"task_id": {"type": "string"}}},
    ]})  # fmt: skip

    type: Literal[
        "deployment.requested", "deployment.started", "deployment.succeeded", "deployment.failed",
        "deployment.rolled_back",
    ]  # fmt: skip
    deployment_id: EntityId
    project_id: EntityId
    environment: Literal["preview", "staging", "production"]
    task_group_id: EntityId | None = None
    task_id: EntityId | None = None
    deployment_type: Literal["manual", "automatic", "rollback"] = "manual"
    branch: Annotated[str, Field(max_length=255)] | None = None
    commit_hash: Annotated[str, Field(max_length=40)] | None = None
    k8s_namespace: Annotated[str, Field(max_length=63)] | None = None
    k8s_deployment_name: Annotated[str, Field(max_length=253)] | None = None
    image_tag: Annotated[str, Field(max_length=255)] | None = None
    url: Annotated[str, Field(max_length=512)] | None = None
    error_message: ColumnText | None = None
    logs: ColumnText | None = None
    triggered_by: EntityId | None = None

    @model_validator(mode="after")
    def _preview_names_task(self) -> DeploymentEvent:
        if self.environment == "preview" and self.task_id is None and self.type == "deployment.requested":
            raise ValueError("a preview deployment names its task_id")
        return self

    def routing_key(self) -> str:
        return self.deployment_id


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
