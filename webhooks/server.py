"""The aiohttp application: `init(settings, bootstrap) -> web.Application` with an explicit route list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from app import topics
from app.settings import Settings
from db.pool import create_pool
from webhooks.body import BodyReader, defer_continue
from webhooks.durable import DurableSink
from webhooks.events_api import post_events
from webhooks.gitea_api import get_gitea, post_gitea_project, post_gitea_shared
from webhooks.health import healthz, metrics, readyz
from webhooks.limits import RateLimiter, budgets
from webhooks.metrics import Metrics
from webhooks.problems import problem
from webhooks.project_secrets import put_webhook_secret
from webhooks.publisher import KafkaPublisher
from webhooks.secrets import ProjectDirectory
from webhooks.spool import Spool
from webhooks.state import BODIES, BOOTSTRAP, DB_POOL, LIMITER, METRICS, PUBLISHER, SECRETS, SETTINGS, SINK

STOP_DRAIN_SECONDS = 10.0  # after the in-flight requests (10 s): within the pod's 30 s grace (deploy/k8s/base/web.yaml)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Size limit before reading the body; every error a client can cause as problem+json, never a 5xx.

    Bodies are read by the handlers, once the headers authenticated what they can (webhooks/body.py)."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _closing(413, f"the body has {request.content_length} bytes; the limit is {limit} (AIWORKER_MAX_BODY_BYTES)")
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return _closing(413, f"the body is over the limit of {limit} bytes (AIWORKER_MAX_BODY_BYTES); send less per request")
    except web.HTTPException as exc:
        if exc.status >= 400:
            detail = exc.text if exc.status not in (404, 405) else f"{request.method} {request.path} is not served here"
            return problem(exc.status, detail or exc.reason, headers={k: v for k, v in exc.headers.items() if k == "Allow"})
        raise
    except ConnectionResetError:
        if request.transport is not None and not request.transport.is_closing():
            raise  # not the client's connection
        return _closing(400, "the connection closed before the body was complete")  # nobody reads it: counted
    except (HttpProcessingError, RequestPayloadError) as exc:
        cause = exc.message if isinstance(exc, HttpProcessingError) else str(exc.__cause__ or exc)
        cause = " ".join((cause or type(exc).__name__).split())
        return _closing(400, f"the request body could not be read ({cause}); check its framing and Content-Encoding")


def _closing(status: int, detail: str) -> web.Response:
    """A problem answer that also closes the connection: the rest of the body is not read (or not readable)."""
    response = problem(status, detail)
    response.force_close()
    return response


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every request by route and status, around `_answer`."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await _answer(request, handler)
        status = response.status
        return response
    finally:
        request.app[METRICS].request_done(route, request.method if route != "unmatched" else "-", status)


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    # minsize=0: the web process starts (and /events works) while the database is down.
    pool = await create_pool(app[SETTINGS].database_url.get_secret_value(), minsize=0, maxsize=4)
    app[DB_POOL] = pool
    yield
    pool.close()
    await pool.wait_closed()


async def publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    publisher = KafkaPublisher(app[SETTINGS], app[BOOTSTRAP])
    await publisher.start()
    app[PUBLISHER] = publisher
    counts = publisher.counts
    app[METRICS].watch_produce(lambda: counts.acknowledged)
    yield
    await publisher.stop()  # after the in-flight requests finished (aiohttp's shutdown): flushes the producer


async def sink_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    sink = DurableSink(
        app[PUBLISHER], spool, app[METRICS], send_timeout=settings.kafka_send_timeout, dlq_topic=settings.topic(topics.DLQ)
    )
    await sink.start()
    app[METRICS].watch_spool(lambda: (spool.records, spool.disk_bytes))
    app[SINK] = sink
    app[SECRETS] = ProjectDirectory(settings, lambda: app[DB_POOL])
    yield
    await sink.stop(drain_seconds=STOP_DRAIN_SECONDS)


def init(settings: Settings, bootstrap: str) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[problems_middleware])
    app[SETTINGS] = settings
    app[BOOTSTRAP] = bootstrap
    app[METRICS] = Metrics()
    app[BODIES] = BodyReader(at_once=settings.unauthenticated_bodies, seconds=settings.body_read_seconds)
    app[LIMITER] = limiter = RateLimiter(budgets(settings))
    app[METRICS].watch_limiter(lambda: len(limiter))
    app.cleanup_ctx.extend([pool_ctx, publisher_ctx, sink_ctx])
    app.add_routes(
        [
            web.post("/events", post_events, expect_handler=defer_continue),
            web.post("/webhooks/gitea/{project_id}", post_gitea_project, expect_handler=defer_continue),
            web.get("/webhooks/gitea/{project_id}", get_gitea, allow_head=False),
            web.post("/webhooks/gitea", post_gitea_shared, expect_handler=defer_continue),
            web.get("/webhooks/gitea", get_gitea, allow_head=False),
            web.put("/projects/{project_id}/webhook-secret", put_webhook_secret, expect_handler=defer_continue),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics),
        ]
    )
    if settings.console_token.get_secret_value():  # the console is off (404) without its token
        from webhooks.console import console_app

        app.router.add_get("/console", _to_console, allow_head=False)
        app.add_subapp("/console", console_app(settings, bootstrap))
    return app


async def _to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/console/")
