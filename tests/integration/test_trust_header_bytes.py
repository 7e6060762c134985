"""Header bytes that are not UTF-8 text, as a buggy client or a hostile one sends them on the wire: each gets a 4xx
problem+json that says which header, and nothing is published (before: 500 from a UnicodeEncodeError, for an
Authorization header of POST /events and, on a signed delivery, for X-Gitea-Delivery and X-Gitea-Event)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from app.settings import Settings
from tests.gitea_samples import sign
from tests.webhooks.ingest_helpers import insert_project, read_raw, unique_repo_id, web_client

HANG = 30.0


async def exchange(host: str, port: int, head: bytes, body: bytes) -> tuple[int, bytes]:
    """One request written byte for byte (header values that no client library would send): (status, body)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), HANG)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_an_authorization_header_that_is_not_utf8_is_a_401(settings: Settings) -> None:
    line = json.dumps({"id": "hb-1", "type": "agent.heartbeat", "time": "2026-11-22T10:00:00Z", "agent_id": "a1",
                       "status": "idle"}).encode()  # fmt: skip
    async with web_client(settings) as client:
        host, port = str(client.host), int(client.port or 0)
        for token in [b"\xff\xfe", b"a\xff." + b"0" * 64, b"a1." + b"\xe9" * 64]:
            head = b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nAuthorization: Bearer " + token
            status, body = await exchange(host, port, head + b"\r\n", line)
            assert status == 401, body
            assert "the bearer token is neither the service token nor an agent token" in json.loads(body)["detail"]
    assert await read_raw(settings.kafka_bootstrap, settings.topic("agent.events"), timeout=0.5) == []


async def test_a_signed_delivery_whose_delivery_or_event_header_is_not_utf8_is_a_400(settings: Settings, pool: Any) -> None:
    repo, secret = unique_repo_id(), f"secret-{uuid.uuid4().hex}"
    project_id = await insert_project(pool, repo_id=repo, owner="o", name="n", secret=secret)
    payload = json.dumps({"ref": "refs/heads/main", "repository": {"id": repo, "name": "n", "full_name": "o/n"}}).encode()
    signature = sign(payload, secret)["X-Gitea-Signature"]
    async with web_client(settings) as client:
        host, port = str(client.host), int(client.port or 0)
        for name, value in [(b"X-Gitea-Delivery", b"\xff\xfe"), (b"X-Gitea-Event", b"pu\xffsh")]:
            head = (b"POST /webhooks/gitea/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"X-Gitea-Event-Type: push\r\nX-Gitea-Signature: %s\r\n%s: %s\r\n") % (
                        project_id.encode(), signature.encode(), name, value)  # fmt: skip
            status, body = await exchange(host, port, head, payload)
            assert status == 400, body
            assert json.loads(body)["detail"].startswith(f"the {name.decode()} header is not UTF-8 text"), body
        # The same delivery with readable headers is accepted: the refusals were the headers'.
        head = (b"POST /webhooks/gitea/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-Gitea-Event-Type: push\r\nX-Gitea-Signature: %s\r\nX-Gitea-Delivery: d-1\r\n") % (
                    project_id.encode(), signature.encode())  # fmt: skip
        status, body = await exchange(host, port, head, payload)
        assert status == 202, body
    records = await read_raw(settings.kafka_bootstrap, settings.topic("gitea.webhooks"), expect=1)
    assert [json.loads(r.value)["delivery_id"] for r in records] == ["d-1"]
