"""The dlq record format as the replay tool reads it, and the filters that pick records to re-drive.

A dlq record (JSON on <prefix>dlq, key = original key): {"id", "reason", "source": {"topic",
"partition", "offset"}, "key", "value" (original text) or "value_base64"}; the fold may add fields.
A big original is copied cut (`truncated: true`, with `value_size` and `value_sha256`): the replay
re-reads it from its source position and checks its digest (see app/replay.py).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app import jsonio

# Fields of an event that name an entity, for --entity.
ENTITY_FIELDS = (
    "id", "agent_id", "task_id", "project_id", "question_id", "task_group_id", "deployment_id", "delivery_id",
    "repository",
)  # fmt: skip


class DlqFormatError(ValueError):
    """A record on the dlq topic that is not a dlq record."""


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """One dlq record: where it sits on the dlq, why it is there, and the original record."""

    dlq_partition: int
    dlq_offset: int
    timestamp_ms: int
    dlq_id: str
    reason: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    event: dict[str, Any] | None = field(default=None, compare=False)
    truncated: bool = False
    """`value` (and maybe `key`) is only the start of the original: re-read it from the source position."""
    value_sha256: str | None = None

    @property
    def event_type(self) -> str:
        """The event's `type` (a Gitea envelope: gitea:<event type>); '?' when the value is no event."""
        if self.event is None:
            return "?"
        if isinstance(self.event.get("type"), str):
            return str(self.event["type"])
        if isinstance(self.event.get("event_type"), str):
            return f"gitea:{self.event['event_type']}"
        return "?"

    @property
    def event_id(self) -> str | None:
        """The id the fold de-duplicates on (a Gitea envelope: gitea:<delivery id>)."""
        if self.event is None:
            return None
        if isinstance(self.event.get("delivery_id"), str) and "event_type" in self.event:
            return f"gitea:{self.event['delivery_id']}"
        value = self.event.get("id")
        return value if isinstance(value, str) else None

    def entities(self) -> set[str]:
        found = {self.key.decode("utf-8", "replace")} if self.key is not None else set()
        if self.event is not None:
            found.update(str(self.event[name]) for name in ENTITY_FIELDS if isinstance(self.event.get(name), (str, int)))
        return found

    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


def parse_dlq_record(partition: int, offset: int, timestamp_ms: int, value: bytes | None) -> DlqEntry:
    """The entry of one dlq record, or DlqFormatError saying what is missing."""
    try:
        body = jsonio.loads(value or b"")
    except jsonio.JsonError as exc:
        raise DlqFormatError(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise DlqFormatError("not a JSON object")
    source = body.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("topic"), str):
        raise DlqFormatError("no source.topic")
    if body.get("value") is not None:
        original = str(body["value"]).encode("utf-8")
    elif body.get("value_base64") is not None:
        try:
            original = base64.b64decode(str(body["value_base64"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DlqFormatError(f"value_base64 is not base64: {exc}") from exc
    else:
        raise DlqFormatError("neither value nor value_base64")
    key = body.get("key")
    truncated = body.get("truncated") is True
    digest = body.get("value_sha256")
    if truncated and not isinstance(digest, str):
        raise DlqFormatError("truncated, but no value_sha256")
    return DlqEntry(
        dlq_partition=partition,
        dlq_offset=offset,
        timestamp_ms=timestamp_ms,
        dlq_id=str(body.get("id", "")),
        reason=str(body.get("reason", "")),
        topic=source["topic"],
        partition=int(source.get("partition", -1)),
        offset=int(source.get("offset", -1)),
        key=key.encode("utf-8") if isinstance(key, str) else None,
        value=original,
        event=event_of(original),
        truncated=truncated,
        value_sha256=digest if isinstance(digest, str) else None,
    )


def event_of(value: bytes | None) -> dict[str, Any] | None:
    """The JSON object of an original record (decoded as the fold decodes it), or None when it is none."""
    try:
        event = jsonio.loads(value or b"", max_depth=jsonio.MAX_DEPTH + jsonio.BATCH_DEPTH)
    except jsonio.JsonError:
        return None
    return event if isinstance(event, dict) else None


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (no zone: UTC)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_position(text: str) -> tuple[int, int]:
    """A dlq record's position PARTITION@OFFSET (as the replay and the console print it)."""
    partition, at, offset = text.strip().partition("@")
    if not (at and partition.isdigit() and offset.isdigit()):
        raise ValueError(f"position {text!r} is not PARTITION@OFFSET, e.g. 0@42")
    return int(partition), int(offset)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which dlq records to re-drive; every given filter must match (a list: any of its values)."""

    reason: str | None = None
    reason_regex: re.Pattern[str] | None = None
    types: Sequence[str] = ()
    entities: Sequence[str] = ()
    source_topics: Sequence[str] = ()
    positions: Sequence[tuple[int, int]] = ()
    """dlq positions (partition, offset): only the records there."""
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: DlqEntry) -> bool:
        if self.positions and (entry.dlq_partition, entry.dlq_offset) not in self.positions:
            return False
        if self.reason is not None and self.reason.lower() not in entry.reason.lower():
            return False
        if self.reason_regex is not None and not self.reason_regex.search(entry.reason):
            return False
        if self.types and not any(fnmatch.fnmatchcase(entry.event_type, glob) for glob in self.types):
            return False
        if self.entities and not entry.entities() & set(self.entities):
            return False
        if self.source_topics and not any(entry.topic == t or entry.topic.endswith(f".{t}") for t in self.source_topics):
            return False
        if self.since is not None and entry.time() < self.since:
            return False
        return self.until is None or entry.time() < self.until

    def describe(self) -> str:
        parts = [
            f"reason~{self.reason!r}" if self.reason is not None else "",
            f"reason=/{self.reason_regex.pattern}/" if self.reason_regex is not None else "",
            f"type in {list(self.types)}" if self.types else "",
            f"entity in {list(self.entities)}" if self.entities else "",
            f"topic in {list(self.source_topics)}" if self.source_topics else "",
            f"at {', '.join(f'{p}@{o}' for p, o in self.positions)}" if self.positions else "",
            f"since {self.since.isoformat()}" if self.since else "",
            f"until {self.until.isoformat()}" if self.until else "",
        ]
        return ", ".join(p for p in parts if p) or "every record"
