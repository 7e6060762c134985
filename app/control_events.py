"""The control events (source "control", on control.events, keyed by the entity they name): project.upserted,
task.created, task.question_answered, task.approved, task.cancelled, task_group.created and the deployment.*
events (app/events.py lists them in CONTROL_TYPES and parses JSON into them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from app.event_base import ColumnText, EntityId, Event


def _names_or_short_id(field: str) -> dict[str, Any]:
    """JSON Schema of a model validator: `field` is given, or the event id (its default) fits in 36 characters."""
    return {"anyOf": [{"required": [field], "properties": {field: {"type": "string"}}},
                      {"properties": {"id": {"maxLength": 36}}}]}  # fmt: skip


SECRET_FIELDS = ("gitea_webhook_secret", "gitea_webhook_secret_previous", "gitea_webhook_secret_rotated_at")
"""Project columns no event may carry: secrets never travel on topics (README, "Project webhook secrets")."""


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
