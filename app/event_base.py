"""What every contract event model is built from: the base models `Event` (id, type, time; unknown fields kept)
and `AgentEvent` (an agent's), and the field types the models share: ids, text a TEXT column stores, times the
database stores. The models themselves are in app/agent_events.py and app/control_events.py; app/events.py
parses JSON into one of them."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

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


class Event(BaseModel):
    """Fields every input event carries; subclasses add their own. Unknown fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Id
    type: str
    time: Time

    @property
    def source(self) -> Literal["agent", "control"]:
        """Which input topic the event travels on: "agent" for an `AgentEvent`, "control" for the others."""
        return "control"

    def routing_key(self) -> str:
        """The Kafka key: the agent for agent-source events, the entity for control events."""
        raise NotImplementedError


class AgentEvent(Event):
    agent_id: EntityId

    @property
    def source(self) -> Literal["agent", "control"]:
        return "agent"

    def routing_key(self) -> str:
        return self.agent_id
