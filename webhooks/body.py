"""Request bodies are read only once the sender is authenticated as far as its headers allow, and through one
bounded reader, so that junk cannot starve signed deliveries (Gitea waits 5 s and sends once).

- Handlers decide from headers first (a bearer token, a per-project hook that has a secret, the content
  type) and answer at once when that fails (`refusal`), before any body byte is read or parsed.
- `Expect: 100-continue` is answered only when the body is wanted: the routes' expect handler
  (`defer_continue`) does nothing, and `BodyReader.read` sends "100 Continue" just before reading. A client
  that waits for it (curl does, for bodies over 1 MiB) never sends the body of a refused request.
- `BodyReader.read` lets at most `UNAUTHENTICATED_BODIES` bodies be read (and checked: the HMAC of a Gitea
  delivery) at once per process, each within `BODY_READ_SECONDS` (waiting for a turn included); past that
  the request is answered 503 with Retry-After, having cost a slot-wait and nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.http import HttpVersion11

from webhooks import WebhooksError


class BodyTimeoutError(WebhooksError):
    """No turn to read the body, or the body did not arrive, within BODY_READ_SECONDS: 503."""


class ExpectationError(WebhooksError):
    """An `Expect` header other than 100-continue: 417."""


async def defer_continue(request: web.Request) -> None:
    """The routes' expect handler: "100 Continue" is sent by `BodyReader.read`, once the body is wanted."""
    return None


UNREAD_GRACE_SECONDS = 2.0
"""How long a refused request's connection stays open after the answer, for the client to read it."""


def refusal(request: web.Request, response: web.Response) -> web.Response:
    """`response`, answered without reading the request's body, on a connection that closes after it.

    A client waiting for 100 Continue sends nothing more. What a client sent anyway is not read: the connection
    stops reading at once (a refused 10 MB body costs no read and no parse) and closes UNREAD_GRACE_SECONDS after
    (closing at once, with data unread, would reset the connection and could lose the answer on the client's side)."""
    if not request.body_exists:
        return response
    response.force_close()
    transport = request.transport
    if not request.content.is_eof() and transport is not None and not transport.is_closing():
        transport.pause_reading()
        asyncio.get_running_loop().call_later(UNREAD_GRACE_SECONDS, transport.close)
    return response


class BodyReader:
    """The one way handlers read bodies (per process; `UNAUTHENTICATED_BODIES`, `BODY_READ_SECONDS`)."""

    def __init__(self, *, at_once: int, seconds: float) -> None:
        self._slots = asyncio.Semaphore(at_once)
        self.seconds = seconds
        self.waiting = 0
        self.reading = 0

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """A slot for reading and checking one body; BodyTimeoutError when none frees up in time."""
        self.waiting += 1
        try:
            async with asyncio.timeout(self.seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise BodyTimeoutError(f"too many requests are being read at once (no turn within {self.seconds:g} s)") from None
        finally:
            self.waiting -= 1
        self.reading += 1
        try:
            yield
        finally:
            self.reading -= 1
            self._slots.release()

    async def read(self, request: web.Request) -> bytes:
        """The whole body (within MAX_BODY_BYTES, aiohttp's client_max_size), sending 100 Continue first when the
        client waits for it. Call it inside `turn()` when the sender is not authenticated yet."""
        expect = request.headers.get("Expect")
        if expect is not None and request.version == HttpVersion11:
            if expect.lower() != "100-continue":
                raise ExpectationError(f"Expect: {expect[:60]!r} is not supported; send no Expect or 100-continue")
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer's own size starts after the interim response
        try:
            async with asyncio.timeout(self.seconds):
                return await request.read()
        except TimeoutError:
            raise BodyTimeoutError(f"the body did not arrive within {self.seconds:g} s") from None
