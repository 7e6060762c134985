"""The two processes of a real deployment: `web` and `worker`."""

from __future__ import annotations

import asyncio
import gc
import logging

from aiohttp import web
from asyncmy.errors import MySQLError

from app import AiworkerError
from app.settings import Settings
from app.topics import TopicError, TopicLimitError, check_topic_limits, ensure_topics, topic_message_bytes
from db.packets import STATEMENT_MARGIN
from db.pool import connect, max_packet

log = logging.getLogger(__name__)
GC_GEN0_THRESHOLD = 20_000  # objects; the default 700 means a young collection every few requests


class PacketLimitError(AiworkerError):
    """The database's max_allowed_packet is too small for one event's rows."""


def packet_needed(settings: Settings) -> int:
    """The smallest max_allowed_packet the fold needs: a parked record's value, escaped (up to twice as long)."""
    return 2 * topic_message_bytes(settings) + STATEMENT_MARGIN


async def _server_packet(url: str) -> int:
    conn = await connect(url)
    try:
        async with conn.cursor() as cur:
            return await max_packet(cur)
    finally:
        conn.close()


def check_packet(settings: Settings) -> None:
    """Stop the worker's start-up (PacketLimitError) when the database's max_allowed_packet cannot take the rows of
    one event of AIWORKER_MAX_EVENT_BYTES; a database that does not answer is only logged (the worker waits)."""
    try:
        packet = asyncio.run(_server_packet(settings.database_url.get_secret_value()))
    except (MySQLError, OSError) as exc:
        log.warning("max_allowed_packet not checked, the database is unreachable: %s", type(exc).__name__)
        return
    if packet < packet_needed(settings):
        raise PacketLimitError(
            f"the database's max_allowed_packet is {packet} bytes, below the {packet_needed(settings)} that the rows of "
            "one event need (2 x (AIWORKER_MAX_EVENT_BYTES + 64 KiB) + 64 KiB); raise max_allowed_packet on the server "
            "or lower AIWORKER_MAX_EVENT_BYTES"
        )


def check_topics(settings: Settings, bootstrap: str) -> None:
    """Stop start-up (TopicLimitError) when a topic takes smaller records than the web accepts; a broker that does
    not answer is only logged (the web spools, the worker waits for it)."""
    try:
        asyncio.run(check_topic_limits(settings, bootstrap, timeout=5.0))
    except TopicLimitError:
        raise
    except TopicError as exc:
        log.warning("topic size limits not checked: %s", exc)


def run_web(settings: Settings, bootstrap: str) -> int:
    from webhooks.serve import run
    from webhooks.server import init

    if settings.create_topics:
        try:
            asyncio.run(ensure_topics(settings, bootstrap, timeout=5.0))
        except TopicError as exc:
            # The web process must come up while the broker is down: it spools what it accepts (and drains a
            # spool left by its previous run) until the broker is back. Missing topics are created by the worker.
            log.warning("topics not checked, the broker is unreachable: %s", exc)
    check_topics(settings, bootstrap)
    print(f"aiworker-events web: listening on http://{settings.http_host}:{settings.http_port}", flush=True)
    app = init(settings, bootstrap)
    app.on_startup.append(_settle_gc_on_startup)
    # as web.run_app would, with aiohttp's own error answers (a bad request line, ...) as problem+json
    run(app, settings.http_host, settings.http_port, shutdown_timeout=10.0, access_log=None)
    return 0


async def _settle_gc_on_startup(app: web.Application) -> None:
    settle_gc()


def settle_gc() -> None:
    """After start-up (the web's, a worker's): what was loaded so far (modules, settings, producers, Faust's app)
    moves out of the collector's way, so that full collections under load walk only the objects of the work in
    flight; young collections run less often. Under the fleet load a worker spent about 9 % of its time in the
    collector with the defaults (full collections of 150-210 ms every few seconds), the web 5-8 %."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def run_worker(settings: Settings, bootstrap: str) -> int:
    import faust

    from streams.worker import create_app

    if settings.create_topics:
        asyncio.run(ensure_topics(settings, bootstrap))
    check_topics(settings, bootstrap)
    check_packet(settings)
    app, _runtime = create_app(settings, bootstrap)

    class Worker(faust.Worker):
        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            settle_gc()

    worker = Worker(app, loglevel=settings.log_level.upper(), quiet=True, override_logging=False)
    worker.spinner = None  # its terminal spinner writes control codes among the log lines (app/commands/logs.py owns logging)
    worker.execute_from_commandline()
    return 0
