"""The deliveries page: the fold's outcome of each Gitea delivery (the trace's record, migrations 008 and 010)."""

from __future__ import annotations

from aiohttp import web

from db import console as sql
from webhooks.console import render
from webhooks.state import DB_POOL

PAGE = 50
ORIGINS = ("delivery", "reconcile")
OUTCOMES = ("applied", "unchanged", "ignored", "refused", "invalid", "duplicate", "parked", "expired")


async def deliveries(request: web.Request) -> web.StreamResponse:
    q = request.query
    origin = q.get("origin", "delivery")
    where = sql.DeliveryFilter(
        origin=origin if origin in ORIGINS else "delivery",
        delivery_id=q.get("delivery_id", "").strip()[:191],
        repository=q.get("repository", "").strip()[:255],
        event_type=q.get("event_type", "").strip()[:100],
        outcome=q.get("outcome", "") if q.get("outcome", "") in OUTCOMES else "",
    )
    before_text = q.get("before", "")
    before = int(before_text) if before_text.isdigit() else None
    async with request.config_dict[DB_POOL].acquire() as conn:  # type: ignore[attr-defined]
        rows, floor = await sql.deliveries(conn, where, PAGE + 1, before)
        await conn.rollback()
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    following = rows[-1]["id"] if more else floor or None  # a window's floor: the search goes on below it
    data = {
        "deliveries": rows, "next": following, "searched_down_to": floor, "window": sql.SCAN_IDS, "origins": ORIGINS,
        "outcomes": OUTCOMES,
        "filter": {"origin": where.origin, "delivery_id": where.delivery_id, "repository": where.repository,
                   "event_type": where.event_type, "outcome": where.outcome},
    }  # fmt: skip
    return render.page(request, "deliveries.html", data)


def routes() -> list[web.RouteDef]:
    return [web.get("/deliveries", deliveries)]
