"""The record format of gitea.webhooks: one delivery, its payload text unchanged, keyed by repository full name."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_ZERO = timedelta(0)


class GiteaEnvelope(BaseModel):
    """A Gitea delivery as received: `payload` is the exact payload text the signature covered."""

    model_config = ConfigDict(extra="allow", frozen=True)

    delivery_id: str = Field(min_length=1, max_length=191)
    event_type: str = Field(max_length=100, description="X-Gitea-Event-Type, the exact type")
    event_group: str = Field("", max_length=100, description="X-Gitea-Event, the grouped name")
    received_at: AwareDatetime
    repository: str = Field("", max_length=255, description="repository full name (the record key)")
    payload: str = Field(description="the payload JSON text, byte for byte as signed (UTF-8)")

    @property
    def id(self) -> str:
        """The event id used for de-duplication: the delivery id."""
        return f"gitea:{self.delivery_id}"

    def payload_bytes(self) -> bytes:
        return self.payload.encode("utf-8")

    def payload_json(self) -> Any:
        return json.loads(self.payload)

    def encode(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def decode(cls, value: bytes) -> GiteaEnvelope:
        return cls.model_validate_json(value)


def make_envelope(
    *, delivery_id: str, event_type: str, event_group: str, received_at: datetime, repository: str, payload: bytes
) -> GiteaEnvelope:
    return GiteaEnvelope(
        delivery_id=delivery_id,
        event_type=event_type,
        event_group=event_group,
        received_at=received_at,
        repository=repository,
        payload=payload.decode("utf-8"),
    )


def encode_envelope(
    *, delivery_id: str, event_type: str, event_group: str, received_at: datetime, repository: str, payload: str
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
    )
    return model.encode()
