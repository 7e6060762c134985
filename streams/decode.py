"""Input records as events: contract events on agent.events / control.events, envelopes on gitea.webhooks.

What cannot be decoded is a reason (str) the fold sends to the dlq with the record and its position.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime

from pydantic import ValidationError

from app import jsonio, topics
from app.agent_events import LogBatch
from app.envelope import GiteaEnvelope
from app.event_base import STORABLE_SECONDS, Event
from app.events import AGENT_TYPES, CONTROL_TYPES, parse_event
from streams import cloudevents
from streams.machines import epoch_second
from streams.route import Source

DLQ_NAMESPACE = uuid.UUID("0b6f7f4e-3f0a-4b8e-8d2c-5a1e9c3b7d21")
SOURCE_TYPES = {topics.AGENT_EVENTS: AGENT_TYPES, topics.CONTROL_EVENTS: CONTROL_TYPES}
Decoded = Event | GiteaEnvelope | str
# What a TIMESTAMP column holds (app/event_base.py `Time`: the event models refuse other times, at the door and here): an
# envelope's received_at outside it would make the server refuse the whole transaction, so it is refused here.
TIMESTAMP_SECONDS = STORABLE_SECONDS


def time_out_of_range(moment: datetime, second: int | None = None) -> str | None:
    """Why the database cannot store `moment` (its `epoch_second`, when known), or None."""
    if (epoch_second(moment) if second is None else second) in TIMESTAMP_SECONDS:
        return None
    return f"time {moment.isoformat()} is outside what the database stores (1970-01-01T00:00:01Z to 2038-01-19T03:14:07Z)"


def _why(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    return f"{where}: {first['msg']} ({exc.error_count()} error(s))"


def decode(short_topic: str | None, source: Source) -> Decoded:
    """The event in a record of `short_topic`, or why it cannot be one."""
    if short_topic == topics.GITEA_WEBHOOKS:
        try:
            envelope = GiteaEnvelope.decode(source.value)
        except jsonio.JsonError as exc:
            return f"invalid gitea.webhooks envelope: the record is {exc}"
        except ValidationError as exc:
            return f"invalid gitea.webhooks envelope: {_why(exc)}"
        why = time_out_of_range(envelope.received_at)
        return envelope if why is None else f"invalid gitea.webhooks envelope: received_at: {why}"
    if short_topic not in SOURCE_TYPES:
        return f"records of topic {source.topic} are not folded by this worker"
    try:
        data, depth = jsonio.loads_measured(source.value, max_depth=jsonio.MAX_DEPTH + jsonio.BATCH_DEPTH)
    except jsonio.JsonError as exc:
        return f"record is not JSON: {exc}" if exc.path is None else f"record refused: {exc}"
    if not isinstance(data, dict):
        return f"record is a JSON {type(data).__name__}, not an event object"
    try:
        event = parse_event(data)
    except ValidationError as exc:
        return f"invalid event: {_why(exc)}"
    if depth > jsonio.MAX_DEPTH and not isinstance(event, LogBatch):
        return f"record refused: it nests {depth} levels deep; an event nests at most {jsonio.MAX_DEPTH} (app/jsonio.py)"
    return _checked(short_topic, source, event)


def _checked(short_topic: str, source: Source, event: Event) -> Decoded:
    """The event, or why it does not belong on its topic or holds a time the database cannot store."""
    if event.type not in SOURCE_TYPES[short_topic]:
        return f"{event.type} does not belong on {source.topic}"
    if (why := time_out_of_range(event.time)) is not None:  # a batch's lines: streams/logs.py, once per line
        return f"invalid event: {why}"
    return event


DLQ_VALUE_BYTES = 64 * 1024
"""At most this much of the original value is copied into its dlq record (a record of any size stays publishable)."""
DLQ_KEY_CHARS = 255
"""At most this much of the original key (the outbox's message_key column holds 255 characters)."""


def _text(data: bytes, *, cut: bool) -> str | None:
    """`data` as text, or None when it is not UTF-8 (`cut`: a prefix, which may end inside one character)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8")  # a prefix cut inside one character
        return None


def dlq_row(source: Source, reason: str, dlq_topic: str, *, part: str = "") -> tuple[str, str, str, bytes]:
    """(id, topic, key, value) of the dlq record of `source`; its id derives from the source position.

    The record carries the original value (text, else base64) when it is at most DLQ_VALUE_BYTES; a bigger one
    is cut to its first DLQ_VALUE_BYTES with `truncated: true`, `value_size` and `value_sha256` (the replay
    re-reads the original from the source position, app/replay.py). Likewise a key longer than DLQ_KEY_CHARS.
    """
    if source.scope is not None and source.scope != "task":
        part = f"|{source.scope}{part}"  # the agent half of an event (streams/route.py): a dlq record of its own
    dlq_id = str(uuid.uuid5(DLQ_NAMESPACE, f"{source.topic}|{source.partition}|{source.offset}{part}"))
    value = source.value[:DLQ_VALUE_BYTES]
    text = _text(value, cut=len(value) < len(source.value))
    full_key = source.key.decode("utf-8", "replace") if source.key is not None else ""
    key = full_key[:DLQ_KEY_CHARS]
    body: dict[str, object] = {
        "id": dlq_id,
        "reason": reason,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset},
        "key": key if source.key is not None else None,
        "value": text,
        "value_base64": None if text is not None else base64.b64encode(value).decode(),
    }
    if len(value) < len(source.value) or len(key) < len(full_key):
        body |= {
            "truncated": True,
            "value_size": len(source.value),
            "value_sha256": hashlib.sha256(source.value).hexdigest(),
            "key_size": len(source.key or b""),
        }
    return dlq_id, dlq_topic, key, cloudevents.dumps(body)
