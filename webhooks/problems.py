"""RFC 9457 problem details: every error answer is application/problem+json with a message to act on."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

PROBLEM_TYPE = "application/problem+json"
TITLES = {
    400: "Malformed request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    417: "Expectation failed",
    422: "Invalid events",
    429: "Too many requests",
    503: "Service unavailable",
}


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail, **extra}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=PROBLEM_TYPE, headers=headers or {})
