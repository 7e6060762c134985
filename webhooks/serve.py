"""Serving the application: aiohttp's runner, with aiohttp's own error answers as problem+json too.

What aiohttp refuses before any handler runs (a bad request line or method, a header line too long, bad
header characters, a malformed Content-Length or Transfer-Encoding) it answers itself from
`RequestHandler.handle_error`, as text/plain, and no middleware sees it. Here `handle_error` keeps aiohttp's
logging and connection handling and gives the same status with an RFC 9457 body, as every other error answer
of this service (webhooks/problems.py). Errors while a handler reads a body (bad chunked framing, a bad
Content-Encoding) reach the middleware (webhooks/server.py) and are answered there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import uvloop
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from webhooks.problems import problem

DETAIL_CHARS = 300
"""At most this much of aiohttp's message is echoed (it may quote the request's bytes)."""
log = logging.getLogger(__name__)


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, whose own error answers are problem+json."""

    __slots__ = ()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """A request aiohttp could not parse (a 4xx its parser raised: the client's fault, while reading the head or
        draining a body already answered) is one warning line naming the error, not an ERROR with a traceback,
        and without aiohttp's message: it quotes the request's bytes (an Authorization line among them)."""
        exc = kw.get("exc_info")
        if isinstance(exc, RequestPayloadError) or (isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500):
            remote = self.transport.get_extra_info("peername") if self.transport is not None else None
            code = getattr(exc, "code", 400)
            log.warning("refused a request it could not parse (%d %s) from %s", code, type(exc).__name__, remote)
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs; raises when an answer was sent already
        if status >= 500:
            detail = "the server failed to answer this request; it is logged, send it again later"
        else:
            cause = " ".join((message or (str(exc) if exc else "") or plain.reason).split())[:DETAIL_CHARS]
            detail = f"the request could not be parsed as HTTP/1.1 ({cause}); check the request line and headers"
        response = problem(status, detail)
        response.force_close()
        return response


class ProblemServer(web.Server):
    """aiohttp's low-level server, making `ProblemRequestHandler`s."""

    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """`web.AppRunner` whose server makes `ProblemRequestHandler`s."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = ProblemServer  # the same object, only its handler factory differs
        return server


async def serve(app: web.Application, host: str, port: int, *, shutdown_timeout: float, **kwargs: Any) -> None:
    """Serve `app` until SIGTERM or SIGINT, then shut down as `web.run_app` does (in-flight requests may finish
    within `shutdown_timeout`, then the cleanup contexts run)."""
    runner = ProblemAppRunner(app, handle_signals=True, shutdown_timeout=shutdown_timeout, **kwargs)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(app: web.Application, host: str, port: int, *, shutdown_timeout: float, **kwargs: Any) -> None:
    """`serve` on a uvloop event loop, in the foreground (the web process)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner, contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        runner.run(serve(app, host, port, shutdown_timeout=shutdown_timeout, **kwargs))
