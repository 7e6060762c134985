"""The record format of gitea.webhooks: one delivery, its payload text unchanged, keyed by repository full name.

The web writes an envelope only after the delivery's signature held, and it carries the project the web
verified (`project_id`); the fold takes the project from there and never from the payload again.
`event_id` is what the fold de-duplicates on: for a delivery, a digest of its project, event type and payload,
so the same signed bytes sent again (Gitea's "redeliver", a replayed request) under a fresh
`X-Gitea-Delivery` change nothing; `delivery_id` stays as metadata. Records written before these fields
existed read as `origin="delivery"`, no project, and the id `gitea:<delivery id>`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app import jsonio

_ZERO = timedelta(0)
EVENT_NAMESPACE = uuid.UUID("5f2c7d1e-3b8a-4e6f-9c41-7a0d2e9b6c35")
"""Namespace of delivery event ids: uuid5(EVENT_NAMESPACE, f"{project_id}\n{event_type}\n{sha256(payload) hex}").
Never change it."""
Origin = Literal["delivery", "reconcile"]


SAME_EVENT_TYPES = {
    "pull_request_approved": "pull_request_review_approved", "pull_request_rejected": "pull_request_review_rejected",
    "issue_label": "issues",
}  # fmt: skip
"""Event type names under which the fold reads the same payload the same way (the grouped X-Gitea-Event name of
an exact one; streams/gitea_map.py HANDLERS): one event id for both, so that signed bytes replayed under the
other name are the same event. A name announcing another verdict is a refused delivery with an id of its own."""
REVIEW_EVENT_TYPES = ("pull_request_review_approved", "pull_request_review_rejected", "pull_request_review_comment")


def id_event_type(event_type: str, payload: Mapping[str, Any]) -> str:
    """The event type a delivery's id is made from: `SAME_EVENT_TYPES` as one, and a review under the family name
    `pull_request` (which the fold takes by the payload's `review.type`) as that review type."""
    kind = SAME_EVENT_TYPES.get(event_type, event_type)
    review = payload.get("review")
    if kind == "pull_request" and payload.get("action") == "reviewed" and isinstance(review, Mapping):
        review_type = review.get("type")
        if isinstance(review_type, str) and review_type in REVIEW_EVENT_TYPES:
            return review_type
    return kind


def delivery_event_id(project_id: str | None, event_type: str, payload: bytes) -> str:
    """The fold's id of a delivery: the same for the same project, event type (`SAME_EVENT_TYPES` counting as
    one; the web passes `id_event_type`) and payload bytes, whatever its delivery id. The project is part of it:
    the same bytes delivered to two projects' hooks are two events."""
    digest = hashlib.sha256(payload).hexdigest()
    kind = SAME_EVENT_TYPES.get(event_type, event_type)
    return "gitea:" + str(uuid.uuid5(EVENT_NAMESPACE, f"{project_id or ''}\n{kind}\n{digest}"))


class GiteaEnvelope(BaseModel):
    """A Gitea delivery as received: `payload` is the exact payload text the signature covered."""

    model_config = ConfigDict(extra="allow", frozen=True)

    delivery_id: str = Field(min_length=1, max_length=191)
    event_type: str = Field(max_length=100, description="X-Gitea-Event-Type, the exact type")
    event_group: str = Field("", max_length=100, description="X-Gitea-Event, the grouped name")
    received_at: AwareDatetime
    repository: str = Field("", max_length=255, description="repository full name (the record key)")
    payload: str = Field(description="the payload JSON text, byte for byte as signed (UTF-8)")
    project_id: str | None = Field(
        None, max_length=36, description="the project the web verified (per-project hook, or the repository's project)"
    )
    event_id: str | None = Field(
        None, min_length=1, max_length=191, description="the fold's de-duplication id (gitea:<uuid5 of type and payload>)"
    )
    origin: Origin = Field("delivery", description="delivery: a signed webhook; reconcile: read from Gitea's API")

    @property
    def id(self) -> str:
        """The event id used for de-duplication (`event_id`; records written before it: the delivery id)."""
        return self.event_id or f"gitea:{self.delivery_id}"

    def payload_bytes(self) -> bytes:
        return self.payload.encode("utf-8")

    def payload_json(self) -> Any:
        """The payload decoded as the web decoded it (app/jsonio.py); JsonError when it is not acceptable JSON."""
        return jsonio.loads(self.payload)

    def encode(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def decode(cls, value: bytes) -> GiteaEnvelope:
        """The envelope in a record value: JsonError when it is not acceptable JSON, ValidationError when it is not
        an envelope."""
        return cls.model_validate(jsonio.loads(value))


def make_envelope(
    *,
    delivery_id: str,
    event_type: str,
    event_group: str,
    received_at: datetime,
    repository: str,
    payload: bytes,
    project_id: str | None = None,
    event_id: str | None = None,
    origin: Origin = "delivery",
) -> GiteaEnvelope:
    """An envelope; `event_id` defaults to `delivery_event_id(project_id, event_type, payload)`."""
    return GiteaEnvelope(
        delivery_id=delivery_id,
        event_type=event_type,
        event_group=event_group,
        received_at=received_at,
        repository=repository,
        payload=payload.decode("utf-8"),
        project_id=project_id,
        event_id=event_id or delivery_event_id(project_id, event_type, payload),
        origin=origin,
    )


def encode_envelope(
    *,
    delivery_id: str,
    event_type: str,
    event_group: str,
    received_at: datetime,
    repository: str,
    payload: str,
    project_id: str | None,
    event_id: str,
    origin: Origin = "delivery",
) -> bytes:
    """The bytes of `make_envelope(...).encode()`, written without building the model (the ingest hot path).

    Values the model would refuse (or would write differently: a non-UTC time) take the model's path, so the
    same ValidationError is raised for them.
    """
    if (
        0 < len(delivery_id) <= 191
        and len(event_type) <= 100
        and len(event_group) <= 100
        and len(repository) <= 255
        and (project_id is None or len(project_id) <= 36)
        and 0 < len(event_id) <= 191
        and received_at.utcoffset() == _ZERO
    ):
        return orjson.dumps(
            {
                "delivery_id": delivery_id,
                "event_type": event_type,
                "event_group": event_group,
                "received_at": received_at,
                "repository": repository,
                "payload": payload,
                "project_id": project_id,
                "event_id": event_id,
                "origin": origin,
            },
            # as pydantic writes a UTC time: seconds, then microseconds only when not zero, then `Z`
            option=orjson.OPT_UTC_Z,
        )
    model = make_envelope(
        delivery_id=delivery_id,
        event_type=event_type,
        event_group=event_group,
        received_at=received_at,
        repository=repository,
        payload=payload.encode("utf-8"),
        project_id=project_id,
        event_id=event_id,
        origin=origin,
    )
    return model.encode()
