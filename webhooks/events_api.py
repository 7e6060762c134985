"""POST /events: one event, a JSON array or NDJSON; all valid and authorized, or nothing is published."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from app import jsonio, topics
from app.event_base import Event
from app.events import AGENT_TYPES, parse_event
from app.settings import Settings
from webhooks.auth import Unauthenticated, caller_of
from webhooks.body import BodyTimeoutError, ExpectationError, refusal
from webhooks.durable import UnavailableError
from webhooks.limits import limited_problem
from webhooks.log_batches import MAX_BYTES, dumps, pack
from webhooks.problems import problem
from webhooks.publisher import OutRecord
from webhooks.state import BODIES, LIMITER, METRICS, SETTINGS, SINK

JSON_TYPES = {"application/json", "text/json"}
NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq"}


class BodyError(ValueError):
    """The body is not JSON of the accepted shapes."""


class TooManyEventsError(BodyError):
    """The body holds more events than one request may (MAX_EVENTS_PER_REQUEST): 413."""


def _too_many(count: int, limit: int) -> TooManyEventsError:
    return TooManyEventsError(
        f"the body holds {count} events; at most {limit} are accepted per request (AIWORKER_MAX_EVENTS_PER_REQUEST): "
        "split it, nothing was accepted"
    )


def decode_body(content_type: str, body: bytes, max_events: int = 1_000_000) -> list[Any]:
    """The items of a JSON object, JSON array or NDJSON body (app/jsonio.py decides what is JSON; NDJSON is split on
    `\n` only, and not decoded past `max_events` lines). The limits of each item (nesting, number range) are checked
    by `validate`, per item."""
    if content_type in NDJSON_TYPES:
        items = []
        separator = b"\x1e" if content_type == "application/json-seq" else b"\n"  # RFC 7464: RS before each text
        lines = list(jsonio.split_lines(body, separator))
        if len(lines) > max_events:
            raise _too_many(len(lines), max_events)
        for number, line in lines:
            try:
                items.append(jsonio.parse(line))
            except jsonio.JsonError as exc:
                raise BodyError(f"line {number} is {exc}") from None
        return items
    try:
        data = jsonio.parse(body)
    except jsonio.JsonError as exc:
        raise BodyError(f"the body is {exc}") from None
    found: list[Any] = data if isinstance(data, list) else [data]
    if len(found) > max_events:
        raise _too_many(len(found), max_events)
    return found


RESERVED_ID_PREFIX = "gitea:"
RESERVED_ID_REASON = (
    "ids beginning 'gitea:' (in any case) are the fold's ids of Gitea deliveries and reconcile records; an event of "
    "ours with one would make the fold skip that delivery as seen: choose another id (a UUID)"
)


def validate(items: list[Any]) -> tuple[list[Event], list[dict[str, Any]]]:
    """The events, and every problem as {index, field, reason}."""
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            jsonio.check(item)
        except jsonio.JsonError as exc:
            errors.append({"index": index, "field": exc.path or "", "reason": str(exc)})
            continue
        if not isinstance(item, dict):
            errors.append({"index": index, "field": "", "reason": f"an event is a JSON object, not {type(item).__name__}"})
            continue
        try:
            event = parse_event(item)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                field = ".".join(str(part) for part in error["loc"])
                errors.append({"index": index, "field": field, "reason": error["msg"]})
            continue
        if event.id[: len(RESERVED_ID_PREFIX)].lower() == RESERVED_ID_PREFIX:  # the fold's ids compare case-insensitively
            errors.append({"index": index, "field": "id", "reason": RESERVED_ID_REASON})
            continue
        events.append(event)
    return events, errors


def route(settings: Settings, event: Event, raw: dict[str, Any]) -> OutRecord:
    topic = topics.AGENT_EVENTS if event.type in AGENT_TYPES else topics.CONTROL_EVENTS
    return OutRecord(settings.topic(topic), event.routing_key().encode(), dumps(raw))


def oversized(
    items: list[Any], packed: list[tuple[Event | None, dict[str, Any]]], records: list[OutRecord], limit: int
) -> list[dict[str, Any]]:
    """{index, field, reason} of each event whose record is over `limit` bytes (of a log batch: its lines; a batch is
    packed to at most half the limit, so only one line over that is a batch alone, and too big)."""
    position = {id(item): index for index, item in enumerate(items)}
    return [
        {"index": position[id(line)], "field": "", "reason": f"its record has {len(record.value)} bytes"}
        for (event, item), record in zip(packed, records, strict=True)
        if len(record.value) > limit
        for line in (item["logs"] if event is None else [item])
    ]


def batch_record(settings: Settings, batch: dict[str, Any]) -> OutRecord:
    return OutRecord(settings.topic(topics.AGENT_EVENTS), str(batch["agent_id"]).encode(), dumps(batch))


async def post_events(request: web.Request) -> web.Response:
    """Authenticated, and checked against the caller's rate limits, from the headers alone before the body is read."""
    settings = request.app[SETTINGS]
    try:
        caller = caller_of(request.headers.get("Authorization"), settings)
    except Unauthenticated as exc:
        return refusal(request, problem(401, str(exc)))
    content_type = request.content_type
    if content_type not in JSON_TYPES | NDJSON_TYPES:
        return refusal(request, problem(415, f"Content-Type {content_type!r} is not accepted; use application/json or "
                                             "application/x-ndjson"))  # fmt: skip
    limiter, metrics = request.app[LIMITER], request.app[METRICS]
    announced = request.content_length or 0
    if (why := limiter.check(caller, 1, announced, take=False)) is not None:
        metrics.rate_limited(caller.service, why.budget)
        return refusal(request, limited_problem(why, caller, 1, announced))
    try:
        body = await request.app[BODIES].read(request)
    except BodyTimeoutError as exc:
        return problem(503, f"{exc}; nothing was accepted, send again", headers={"Retry-After": "1"})
    except ExpectationError as exc:
        return refusal(request, problem(417, str(exc)))
    try:
        items = decode_body(content_type, body, settings.max_events_per_request)
    except TooManyEventsError as exc:
        return problem(413, str(exc))
    except BodyError as exc:
        return problem(400, str(exc))
    if not items:
        return problem(422, "the body holds no events", errors=[])
    if (why := limiter.check(caller, len(items), len(body), take=True)) is not None:
        metrics.rate_limited(caller.service, why.budget)
        return limited_problem(why, caller, len(items), len(body))
    events, errors = validate(items)
    if errors:
        return problem(422, f"{len(errors)} problem(s) in {len(items)} event(s); nothing was accepted", errors=errors)
    if not caller.service:
        foreign = [
            i for i, e in enumerate(events) if e.type not in AGENT_TYPES or getattr(e, "agent_id", None) != caller.agent_id
        ]
        if foreign:
            return problem(
                403,
                f"the token of agent {caller.agent_id} may send only its own agent events; items {foreign} are not",
                errors=[{"index": i, "field": "agent_id", "reason": "not this token's agent"} for i in foreign],
            )
    limit = settings.max_event_bytes
    packed = pack(events, items, max_bytes=min(MAX_BYTES, limit // 2))
    records = [route(settings, event, item) if event is not None else batch_record(settings, item) for event, item in packed]
    too_big = oversized(items, packed, records, limit)
    if too_big:
        return problem(413, f"{len(too_big)} event(s) are over the limit of {limit} bytes per event (AIWORKER_MAX_EVENT_BYTES); "
                       "nothing was accepted: send less per event", errors=too_big)  # fmt: skip
    try:
        via = await request.app[SINK].accept(records)
    except UnavailableError as exc:
        return problem(503, f"{exc}; nothing was accepted, send again later", headers={"Retry-After": str(exc.retry_after)})
    for event in events:
        metrics.accepted.labels(event.source, event.type).inc()
    return web.json_response({"accepted": len(events), "records": len(records), "durable": via,
                              "ids": [e.id for e in events]}, status=202)  # fmt: skip
