"""The operator console under /console: a sub-application of the web process (see README, Console).

Off (every /console path a 404) unless AIWORKER_CONSOLE_TOKEN is set. Read-only except the dlq re-drive.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from asyncmy.errors import MySQLError

from app.settings import Settings
from db.pool import describe_error
from webhooks.console import render
from webhooks.console.jobs import Jobs
from webhooks.console.kafka import BrokerLook
from webhooks.console.session import COOKIE, Session, SessionKeys
from webhooks.problems import problem

HERE = Path(__file__).parent
KEYS = web.AppKey("console_keys", SessionKeys)
LOOK = web.AppKey("console_look", BrokerLook)
JOBS = web.AppKey("console_jobs", Jobs)
CONSOLE_SETTINGS = web.AppKey("console_settings", Settings)
OPEN_PATHS = ("/console/login", "/console/static/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def over_tls(request: web.Request) -> bool:
    """Whether the browser reached us over TLS: directly, or through a proxy that says so."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The session (or, for scripts, `Authorization: Bearer <console token>`), CSRF on every POST of a
    session, and the security headers on every answer."""
    try:
        response = await _guarded(request, handler)
    except (MySQLError, OSError, TimeoutError) as exc:  # the page's database read; nothing a client did
        detail = f"the database did not answer ({describe_error(exc)}); the page works again once it does"
        response = problem(503, detail, headers={"Retry-After": "5"})
    response.headers.update(render.HEADERS)
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    keys = request.app[KEYS]
    if request.path.startswith(OPEN_PATHS):
        return await handler(request)
    session = keys.check(request.cookies.get(COOKIE), time.time())
    if session is None:
        if keys.token_matches(_bearer(request)):
            return await handler(request)  # a script: no cookie, so no CSRF to fear
        if render.wants_json(request) or request.method != "GET":
            return problem(401, "log in to the console (POST /console/login) or send Authorization: Bearer <console token>")
        raise web.HTTPSeeOther("/console/login")
    request["console_csrf"] = session.csrf
    if request.method == "POST" and not await _csrf_ok(request, keys, session):
        return problem(403, "the form's CSRF token is missing or stale; reload the page and submit it again")
    return await handler(request)


async def _csrf_ok(request: web.Request, keys: SessionKeys, session: Session) -> bool:
    given = request.headers.get("X-CSRF-Token", "")
    if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = str((await request.post()).get("csrf", ""))
    return keys.csrf_matches(session, given)


async def login_form(request: web.Request) -> web.StreamResponse:
    return render.page(request, "login.html", {"error": ""})


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    keys, settings = request.app[KEYS], request.app[CONSOLE_SETTINGS]
    if not keys.token_matches(str(form.get("token", ""))):
        return render.page(request, "login.html", {"error": "that is not the console token"}, status=401)
    cookie, _ = keys.issue(time.time(), settings.console_session_seconds)
    response = web.HTTPSeeOther("/console/")
    response.set_cookie(
        COOKIE, cookie, max_age=settings.console_session_seconds, path="/console", httponly=True, samesite="Strict",
        secure=over_tls(request),
    )  # fmt: skip
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/console/login")
    response.del_cookie(COOKIE, path="/console")
    raise response


async def _jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[JOBS].stop()
    await app[LOOK].close()


def console_app(settings: Settings, bootstrap: str) -> web.Application:
    """The sub-application to mount at /console (only when a console token is set)."""
    from webhooks.console import deliveries, dlq_views, views

    app = web.Application(middlewares=[console_middleware])
    app[KEYS] = SessionKeys(settings.console_token.get_secret_value())
    app[CONSOLE_SETTINGS] = settings
    app[LOOK] = BrokerLook(bootstrap)
    app[JOBS] = Jobs(settings, bootstrap)
    app.cleanup_ctx.append(_jobs_ctx)
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.globals["age"] = render.age
    env.filters["http_url"] = render.http_url
    app.router.add_static("/static", HERE / "static", append_version=False)
    app.add_routes([
        web.get("/login", login_form), web.post("/login", login), web.post("/logout", logout),
        *views.routes(), *dlq_views.routes(), *deliveries.routes(),
    ])  # fmt: skip
    return app
