"""Answers of the console: a page (Jinja2, autoescaped) or its JSON twin, and the headers every answer carries.

A request whose Accept names application/json and not text/html gets the page's data as JSON (the same data
the template renders); any other gets HTML. Every answer carries a Content-Security-Policy that allows
scripts and styles from the console's own origin only (no inline script, no inline event handler, no eval),
and headers that keep it out of frames, caches and referrers.
"""

from __future__ import annotations

import base64
import decimal
import json
from datetime import UTC, date, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(data: Any) -> str:
    return json.dumps(data, default=_plain, ensure_ascii=False)


def page(request: web.Request, template: str, data: dict[str, Any], *, status: int = 200) -> web.Response:
    """The page `template` rendered with `data`, or `data` as JSON (see the module docstring)."""
    if wants_json(request):
        return web.json_response(data, status=status, dumps=dumps)
    context = {**data, "csrf": request.get("console_csrf", ""), "path": request.path, "query": request.query_string}
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def not_found(request: web.Request, what: str) -> web.Response:
    return page(request, "error.html", {"status": 404, "detail": f"{what} is not here"}, status=404)


def http_url(value: Any) -> str:
    """A link target only when it is an http(s) URL (a javascript: or data: URL from a row is no link)."""
    text = str(value or "")
    return text if text.lower().startswith(("http://", "https://")) else ""


def age(since: Any, now: datetime | None = None) -> str:
    """A short age ("42s", "5m", "3h", "2d") from a time to now; '' when there is none."""
    if not isinstance(since, datetime):
        return ""
    moment = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
