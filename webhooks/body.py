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
- Turns come in two lanes by the body's announced size: bodies of at most `SMALL_BODY_BYTES` (Content-Length)
  take the `UNAUTHENTICATED_BODIES` turns; larger ones and those of unknown length (chunked) have a lane of
  their own with a thirty-second as many (at least 1: with the default 32, one at a time). Junk with big bodies
  then waits behind itself: it cannot take the turns of ordinary deliveries (a few KB; a push of many commits
  some hundred KB), and only one of its megabytes is read and hashed at a time, so that it takes a small share
  of the loop (bench/junk.py: with 4 big turns, signed deliveries under 1 MB junk still timed out; with 1, none
  did). The large lane is also paced: a turn is given back only once its announced size at
  `LARGE_LANE_BYTES_PER_SECOND` has passed (the answer is not delayed), so that big junk costs at most that
  many bytes read and hashed per second (bench junk: p99 under junk about a third of the unpaced lane's). The
  price: under such a flood a big delivery may wait past BODY_READ_SECONDS and get a 503 (reconcile repairs
  what it carried).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.http import HttpVersion11

from webhooks import WebhooksError

SMALL_BODY_BYTES = 256 * 1024
"""Largest announced body that reads in the small lane; above it (or without Content-Length): the large lane."""
LARGE_LANE_BYTES_PER_SECOND = 32 * 1024 * 1024
"""Pace of the large lane: a big body's turn is given back only after its announced size at this rate."""


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
        self._small = asyncio.Semaphore(at_once)
        self._large = asyncio.Semaphore(max(1, at_once // 32))
        self.seconds = seconds
        self.waiting = 0
        self.reading = 0

    @asynccontextmanager
    async def turn(self, content_length: int | None) -> AsyncIterator[None]:
        """A slot for reading and checking one body of `content_length` bytes (None: unknown) in its lane;
        BodyTimeoutError when none frees up in time."""
        small = content_length is not None and content_length <= SMALL_BODY_BYTES
        slots = self._small if small else self._large
        self.waiting += 1
        try:
            async with asyncio.timeout(self.seconds):
                await slots.acquire()
        except TimeoutError:
            raise BodyTimeoutError(f"too many requests are being read at once (no turn within {self.seconds:g} s)") from None
        finally:
            self.waiting -= 1
        self.reading += 1
        started = asyncio.get_running_loop().time()
        try:
            yield
        finally:
            self.reading -= 1
            if small:
                slots.release()
            else:  # paced, without delaying this request's answer
                pace = (content_length or SMALL_BODY_BYTES) / LARGE_LANE_BYTES_PER_SECOND
                rest = pace - (asyncio.get_running_loop().time() - started)
                if rest > 0:
                    asyncio.get_running_loop().call_later(rest, slots.release)
                else:
                    slots.release()

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
