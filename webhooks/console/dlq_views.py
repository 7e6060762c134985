"""The dlq page and its re-drive: one record or a filtered set, confirmed, run as a job through the replay's code."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from app import topics
from app.replay import ReplayOptions
from app.replay_records import DlqEntry, Filters, parse_position, parse_time
from webhooks.console import CONSOLE_SETTINGS, JOBS, LOOK, render
from webhooks.console.kafka import BrokerLookError

PER_PARTITION = 200
SHOWN = 200
FIELDS = ("reason", "type", "entity", "source_topic", "since", "until", "at")


class FilterError(ValueError):
    """A filter of the dlq form is not valid; the message says which and why."""


def filters_of(form: Mapping[str, Any]) -> tuple[Filters, dict[str, str]]:
    """The replay's filters from the page's fields (the same meaning as the command's options of those names)."""
    given = {name: str(form.get(name, "")).strip()[:500] for name in FIELDS}
    try:
        filters = Filters(
            reason=given["reason"] or None,
            types=(given["type"],) if given["type"] else (),
            entities=(given["entity"],) if given["entity"] else (),
            source_topics=(given["source_topic"],) if given["source_topic"] else (),
            positions=tuple(parse_position(p) for p in re.split(r"[\s,]+", given["at"]) if p),
            since=parse_time(given["since"]) if given["since"] else None,
            until=parse_time(given["until"]) if given["until"] else None,
        )
    except ValueError as exc:
        raise FilterError(str(exc)) from exc
    return filters, given


def _row(entry: DlqEntry) -> dict[str, Any]:
    return {
        "position": f"{entry.dlq_partition}@{entry.dlq_offset}", "time": entry.time(), "reason": entry.reason,
        "type": entry.event_type, "event_id": entry.event_id, "key": entry.key,
        "source": f"{entry.topic}/{entry.partition}@{entry.offset}",
        "truncated": entry.truncated, "value": entry.value[:2000],
    }  # fmt: skip


async def _listing(request: web.Request, filters: Filters) -> tuple[list[DlqEntry], int, list[str]]:
    settings = request.app[CONSOLE_SETTINGS]
    try:
        entries, held = await request.app[LOOK].newest_dlq(settings.topic(topics.DLQ), PER_PARTITION)
    except BrokerLookError as exc:
        return [], 0, [f"dlq records: {exc}"]
    return [e for e in entries if filters.matches(e)], held, []


async def dlq(request: web.Request) -> web.StreamResponse:
    try:
        filters, given = filters_of(request.query)
    except FilterError as exc:
        data = {
            "records": [], "held": 0, "filter": dict.fromkeys(FIELDS, ""), "problems": [f"bad filter: {exc}"], "shown": 0,
            "matching": 0, "describe": "",
        }  # fmt: skip
        return render.page(request, "dlq.html", data, status=400)
    entries, held, problems = await _listing(request, filters)
    data = {
        "records": [_row(e) for e in entries[:SHOWN]], "matching": len(entries), "held": held, "filter": given,
        "describe": filters.describe(), "problems": problems, "shown": min(SHOWN, len(entries)),
    }  # fmt: skip
    return render.page(request, "dlq.html", data)


async def redrive(request: web.Request) -> web.StreamResponse:
    """Without `confirm=yes`: what would be re-driven, and the form to confirm it; with it: the job, started."""
    try:
        form = await request.post() if request.content_type != "application/json" else await request.json()
    except ValueError:
        form = None
    if not isinstance(form, Mapping):
        return render.page(request, "error.html", {"status": 400, "detail": "send the form, or a JSON object"}, status=400)
    try:
        filters, given = filters_of(form)
    except FilterError as exc:
        return render.page(request, "error.html", {"status": 400, "detail": f"bad filter: {exc}"}, status=400)
    if str(form.get("confirm", "")) != "yes":
        entries, held, problems = await _listing(request, filters)
        data = {
            "filter": given, "describe": filters.describe(), "records": [_row(e) for e in entries[:SHOWN]],
            "matching": len(entries), "held": held, "problems": problems,
        }  # fmt: skip
        return render.page(request, "confirm.html", data)
    job = request.app[JOBS].start(ReplayOptions(filters=filters))
    if render.wants_json(request):
        return web.json_response(job.view(), status=202, headers={"Location": f"/console/jobs/{job.id}"})
    raise web.HTTPSeeOther(f"/console/jobs/{job.id}")


async def job(request: web.Request) -> web.StreamResponse:
    found = request.app[JOBS].jobs.get(request.match_info["job_id"])
    if found is None:
        return render.not_found(request, "that re-drive job (jobs are kept by the web process that ran them)")
    view = found.view()
    if request.headers.get("HX-Request"):  # 286: htmx stops polling once the job is over
        return render.page(request, "_job.html", {"job": view}, status=200 if view["state"] == "running" else 286)
    return render.page(request, "job.html", {"job": view})


def routes() -> list[web.RouteDef]:
    return [web.get("/dlq", dlq), web.post("/dlq/redrive", redrive), web.get("/jobs/{job_id}", job)]
