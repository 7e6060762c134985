"""The shapes of the web's answers as pydantic models: the one source of schemas/openapi.json (app/commands/openapi.py).

The handlers write these bodies (webhooks/problems.py, events_api.py, gitea_api.py, health.py); the test suite
runs schemathesis against a live web to hold them to what is published here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Durable = Literal["broker", "spool"]


class Problem(BaseModel):
    """RFC 9457 problem details: every error answer (application/problem+json)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="always about:blank: the status says what kind of problem")
    title: str = Field(description="the status's short name")
    status: int = Field(ge=400, le=599, description="the HTTP status, repeated")
    detail: str = Field(description="what went wrong and what to do about it")


class ItemProblem(BaseModel):
    """One refused item of a POST /events body."""

    index: int = Field(ge=0, description="position of the item in the body (0-based; NDJSON: among the non-empty lines)")
    field: str = Field(description="dotted path of the field ('' for the item as a whole)")
    reason: str


class ItemsProblem(Problem):
    """A refusal naming the items at fault (422: invalid; 403: not this agent token's)."""

    errors: list[ItemProblem]


class EventsAccepted(BaseModel):
    """202 of POST /events: every event is durable."""

    accepted: int = Field(ge=1, description="events accepted")
    records: int = Field(ge=1, description="records written (one agent's consecutive log lines share one log.batch)")
    durable: Durable = Field(description="broker: acknowledged by the broker; spool: fsync'd to the local spool")
    ids: list[str] = Field(description="the accepted events' ids, in body order")


class GiteaAccepted(BaseModel):
    """202 of a Gitea delivery: the envelope is durable."""

    delivery_id: str = Field(description="X-Gitea-Delivery, else a UUIDv5 of the event type and payload")
    event_id: str = Field(description="what the fold de-duplicates on and `trace` finds: the same signed bytes, one id")
    event_type: str = Field(description="the exact event type (X-Gitea-Event-Type)")
    project_id: str | None = Field(description="the project verified at the door (None: the repository has none)")
    durable: Durable


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """GET /readyz: 200 ready, 503 unready (the broker does not answer and the spool cannot take records)."""

    status: Literal["ready", "unready"]
    reason: str | None = Field(None, description="why unready")
    checks: dict[str, str] = Field(description="broker, spool, database: 'ok' or what is wrong")
