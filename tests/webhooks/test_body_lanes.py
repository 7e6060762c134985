"""The bounded body reader's two lanes: big (or unannounced) bodies wait behind each other, never in front of the
small ones that ordinary Gitea deliveries are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from app.settings import Settings
from tests.gitea_samples import load_sample, sign
from tests.harness import eventually
from tests.webhooks.ingest_helpers import web_client
from webhooks.body import LARGE_LANE_BYTES_PER_SECOND, SMALL_BODY_BYTES, BodyReader, BodyTimeoutError
from webhooks.state import BODIES


async def test_big_and_unannounced_bodies_have_a_lane_of_their_own() -> None:
    reader = BodyReader(at_once=8, seconds=0.2)
    async with AsyncExitStack() as held:
        await held.enter_async_context(reader.turn(SMALL_BODY_BYTES + 1))  # the large lane's one turn
        for size in (SMALL_BODY_BYTES + 1, None):
            with pytest.raises(BodyTimeoutError):
                async with reader.turn(size):
                    pass
        for _ in range(8):  # every small turn is still there
            await held.enter_async_context(reader.turn(SMALL_BODY_BYTES))
        assert reader.reading == 9
        with pytest.raises(BodyTimeoutError):
            async with reader.turn(4096):
                pass
    async with reader.turn(None), reader.turn(0):
        assert reader.reading == 2


@asynccontextmanager
async def slow_big_delivery(host: str, port: int) -> AsyncIterator[None]:
    """A delivery announcing a 1 MiB body that sends only its first KiB: it holds a turn while its bytes trickle."""
    _reader, writer = await asyncio.open_connection(host, port)
    head = (
        "POST /webhooks/gitea HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Gitea-Event-Type: push\r\n"
        f"X-Gitea-Signature: {'0' * 64}\r\nContent-Length: {1 << 20}\r\n\r\n"
    )
    writer.write(head.encode() + b"{" + b" " * 1023)
    await writer.drain()
    try:
        yield
    finally:
        writer.close()


async def test_a_signed_delivery_gets_its_turn_while_big_bodies_hold_every_big_turn(settings: Settings) -> None:
    limited = settings.model_copy(update={"unauthenticated_bodies": 8, "body_read_seconds": 30.0})
    sample = load_sample("push__main")
    headers = {**sample.headers, **sign(sample.payload_bytes, settings.gitea_secret.get_secret_value())}
    async with web_client(limited) as client, AsyncExitStack() as slow:
        host, port = str(client.server.host), int(client.server.port or 0)
        for _ in range(8):  # as many as all turns of one lane: before the lanes, these took every turn
            await slow.enter_async_context(slow_big_delivery(host, port))
        bodies = client.server.app[BODIES]

        async def all_in() -> bool:
            return bodies.reading + bodies.waiting == 8

        await eventually(all_in, timeout=10, what="the server to take in the slow deliveries")
        response = await client.post("/webhooks/gitea", data=sample.payload_bytes, headers=headers)
        assert response.status == 202, await response.text()
        # answered while the big ones still hold their turns (without the lanes: only once they timed out)
        assert bodies.reading + bodies.waiting == 8


async def test_the_large_lane_is_paced_by_announced_size_and_the_small_one_is_not() -> None:
    reader = BodyReader(at_once=8, seconds=0.1)
    async with reader.turn(LARGE_LANE_BYTES_PER_SECOND * 30):  # given back 30 s after it started
        pass
    assert reader.reading == 0
    with pytest.raises(BodyTimeoutError):
        async with reader.turn(SMALL_BODY_BYTES + 1):
            pass
    for _ in range(20):  # small turns come back at once
        async with reader.turn(SMALL_BODY_BYTES):
            pass
