"""The aiohttp application: `init(settings, bootstrap) -> web.Application` with an explicit route list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from app.settings import Settings
from db.pool import create_pool
from webhooks.events_api import post_events
from webhooks.health import healthz, readyz
from webhooks.problems import problem
from webhooks.publisher import KafkaPublisher
from webhooks.state import BOOTSTRAP, DB_POOL, PUBLISHER, SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Size limit before reading the body; aiohttp's own HTTP errors as problem+json."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return problem(413, f"the body has {request.content_length} bytes; the limit is {limit} (AIWORKER_MAX_BODY_BYTES)")
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return problem(413, f"the body is over the limit of {limit} bytes (AIWORKER_MAX_BODY_BYTES)")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return problem(exc.status, exc.reason)
        raise


async def publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    publisher = KafkaPublisher(app[SETTINGS], app[BOOTSTRAP])
    await publisher.start()
    app[PUBLISHER] = publisher
    yield
    await publisher.stop()


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = await create_pool(app[SETTINGS].database_url, minsize=1, maxsize=4)
    app[DB_POOL] = pool
    yield
    pool.close()
    await pool.wait_closed()


def init(settings: Settings, bootstrap: str) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[problems_middleware])
    app[SETTINGS] = settings
    app[BOOTSTRAP] = bootstrap
    app.cleanup_ctx.extend([pool_ctx, publisher_ctx])
    app.add_routes(
        [
            web.post("/events", post_events),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
        ]
    )
    return app
