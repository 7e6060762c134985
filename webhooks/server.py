"""The aiohttp application: `init(settings, bootstrap) -> web.Application` with an explicit route list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from app.settings import Settings
from db.pool import create_pool
from webhooks.durable import DurableSink
from webhooks.events_api import post_events
from webhooks.gitea_api import get_gitea, post_gitea
from webhooks.health import healthz, metrics, readyz
from webhooks.metrics import Metrics
from webhooks.problems import problem
from webhooks.publisher import KafkaPublisher
from webhooks.secrets import SecretResolver
from webhooks.spool import Spool
from webhooks.state import BOOTSTRAP, DB_POOL, METRICS, PUBLISHER, SECRETS, SETTINGS, SINK

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Size limit before reading the body; every error a client can cause as problem+json, never a 5xx."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return problem(413, f"the body has {request.content_length} bytes; the limit is {limit} (AIWORKER_MAX_BODY_BYTES)")
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return problem(413, f"the body is over the limit of {limit} bytes (AIWORKER_MAX_BODY_BYTES); send less per request")
    except web.HTTPException as exc:
        if exc.status >= 400:
            detail = exc.text if exc.status not in (404, 405) else f"{request.method} {request.path} is not served here"
            return problem(exc.status, detail or exc.reason, headers={k: v for k, v in exc.headers.items() if k == "Allow"})
        raise
    except HttpProcessingError as exc:
        return problem(400, f"the request body could not be read: {exc.message}; check its framing (chunked encoding)")


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
        request.app[METRICS].requests.labels(route, request.method if route != "unmatched" else "-", str(status)).inc()


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    # minsize=0: the web process starts (and /events works) while the database is down.
    pool = await create_pool(app[SETTINGS].database_url, minsize=0, maxsize=4)
    app[DB_POOL] = pool
    yield
    pool.close()
    await pool.wait_closed()


async def publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    publisher = KafkaPublisher(app[SETTINGS], app[BOOTSTRAP])
    await publisher.start()
    app[PUBLISHER] = publisher
    yield
    await publisher.stop()  # after the in-flight requests finished (aiohttp's shutdown): flushes the producer


async def sink_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    sink = DurableSink(app[PUBLISHER], spool, app[METRICS], send_timeout=settings.kafka_send_timeout)
    await sink.start()
    app[METRICS].watch_spool(lambda: (spool.records, spool.disk_bytes))
    app[SINK] = sink
    app[SECRETS] = SecretResolver(settings, lambda: app[DB_POOL])
    yield
    await sink.stop()


def init(settings: Settings, bootstrap: str) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[problems_middleware])
    app[SETTINGS] = settings
    app[BOOTSTRAP] = bootstrap
    app[METRICS] = Metrics()
    app.cleanup_ctx.extend([pool_ctx, publisher_ctx, sink_ctx])
    app.add_routes(
        [
            web.post("/events", post_events),
            web.post("/webhooks/gitea", post_gitea),
            web.get("/webhooks/gitea", get_gitea, allow_head=False),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics),
        ]
    )
    return app
