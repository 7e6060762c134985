"""POST /events authenticates from the header alone and limits each caller (issue 11, points 4 and 7), on the real
broker: a bad token costs no body read, one agent over its rate is refused while another's events keep flowing.

Before: the body (up to 10 MiB) was read and parsed before the token was checked, against the agent ids the body
named; and one agent token could send 65,000 heartbeats in one request, as often as it liked.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from app.settings import Settings
from tests.webhooks.ingest_helpers import read_raw, web_client
from webhooks.auth import agent_mac, agent_token

T0 = "2026-11-22T10:00:00Z"
HANG = 30.0  # a guard against a server that waits for the body: the test fails instead of hanging


def heartbeat(agent: str, number: int) -> dict[str, Any]:
    return {"id": f"{agent}-hb-{number}", "type": "agent.heartbeat", "time": T0, "agent_id": agent, "status": "idle"}


async def raw_post(host: str, port: int, token: str, announced: int, sent: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """POST /events announcing `announced` body bytes and sending only `sent`: (status, headers, body, what follows)."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/x-ndjson\r\nContent-Length: {announced}\r\n\r\n"
    )
    writer.write(head.encode() + sent)
    await writer.drain()
    try:
        status_line, *lines = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)).decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), HANG)
        after = b"(kept open)"
        if headers.get("connection") == "close":
            try:
                after = await asyncio.wait_for(reader.read(), HANG)  # the server closes the connection
            except ConnectionResetError:
                after = b""
        return int(status_line.split()[1]), headers, body, after
    finally:
        writer.close()


async def test_a_bad_token_with_a_10_mb_body_is_answered_401_without_reading_it(settings: Settings) -> None:
    async with web_client(settings) as client:
        host, port = str(client.host), int(client.port or 0)
        for token, why in [
            ("nonsense", "neither the service token nor an agent token (<agent_id>.<hex HMAC-SHA256"),
            (agent_mac(settings.agent_token_key.get_secret_value(), "a1"), "without their agent id are no longer accepted"),
            (agent_token("not-the-key", "a1"), "not a valid token of agent 'a1'"),
        ]:
            # 10 MB announced, 10 bytes sent: the answer comes while 9,999,990 bytes were never sent.
            status, headers, body, after = await raw_post(host, port, token, 10_000_000, b'{"id":"x",')
            assert status == 401, body
            assert headers["content-type"] == "application/problem+json" and headers["connection"] == "close"
            assert why in json.loads(body)["detail"]
            assert after == b""  # and then the connection is closed, the body left unread
        # The same server still answers a good token, on a new connection.
        status, _, body, _ = await raw_post(host, port, agent_token(settings.agent_token_key.get_secret_value(), "a1"),
                                            len(line := json.dumps(heartbeat("a1", 0)).encode()), line)  # fmt: skip
        assert status == 202, body
        metrics = await (await client.get("/metrics")).text()
    assert 'aiworker_http_requests_total{method="POST",route="/events",status="401"} 3.0' in metrics
    assert len(await read_raw(settings.kafka_bootstrap, settings.topic("agent.events"), expect=1)) == 1


async def test_one_agent_over_its_rate_is_refused_while_another_agents_events_keep_flowing(settings: Settings) -> None:
    # A budget of 5 events per agent that (practically) does not refill within the test: the 6th is over it.
    limited = settings.model_copy(update={"agent_events_per_second": 0.001, "agent_events_burst": 5})
    key = settings.agent_token_key.get_secret_value()
    a1 = {"Authorization": f"Bearer {agent_token(key, 'a1')}"}
    a2 = {"Authorization": f"Bearer {agent_token(key, 'a2')}"}
    async with web_client(limited) as client:
        response = await client.post("/events", json=[heartbeat("a1", n) for n in range(5)], headers=a1)
        assert response.status == 202, await response.text()
        over = await client.post("/events", json=[heartbeat("a1", 5)], headers=a1)
        assert over.status == 429, await over.text()  # before: 202, no limit
        assert over.content_type == "application/problem+json"
        assert int(over.headers["Retry-After"]) >= 900  # 1 event at 0.001 events/s: 1,000 s
        answer = await over.json()
        assert "agent a1 is over its rate of events (AIWORKER_AGENT_EVENTS_PER_SECOND)" in answer["detail"]
        for n in range(5):  # another agent's events keep flowing
            response = await client.post("/events", json=[heartbeat("a2", n)], headers=a2)
            assert response.status == 202, await response.text()
        assert (await client.post("/events", json=[heartbeat("a2", 9)], headers=a2)).status == 429
        service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
        response = await client.post("/events", json=[heartbeat("a1", 6)], headers=service)
        assert response.status == 202, await response.text()  # the service token has a budget of its own
        metrics = await (await client.get("/metrics")).text()
    assert 'aiworker_rate_limited_requests_total{budget="events",caller="agent"} 2.0' in metrics
    assert 'aiworker_http_requests_total{method="POST",route="/events",status="429"} 2.0' in metrics
    assert "aiworker_rate_limit_callers 3.0" in metrics
    records = await read_raw(settings.kafka_bootstrap, settings.topic("agent.events"), expect=11)
    assert sorted(json.loads(r.value)["id"] for r in records) == sorted(
        [f"a1-hb-{n}" for n in range(5)] + [f"a2-hb-{n}" for n in range(5)] + ["a1-hb-6"]
    )


async def test_a_caller_over_its_budget_is_refused_before_its_body_is_read(settings: Settings) -> None:
    limited = settings.model_copy(update={"agent_bytes_per_second": 1.0, "agent_bytes_burst": 4096})
    token = agent_token(settings.agent_token_key.get_secret_value(), "a1")
    async with web_client(limited) as client:
        host, port = str(client.host), int(client.port or 0)
        status, headers, body, _ = await raw_post(host, port, token, 10_000, b"{")  # over the burst: never fits
        assert (status, headers["connection"]) == (413, "close"), body
        assert "over the bytes burst of agent a1 (AIWORKER_AGENT_BYTES_BURST)" in json.loads(body)["detail"]
        line = json.dumps(heartbeat("a1", 0)).encode() + b"\n"
        status, _, body, _ = await raw_post(host, port, token, 4000, line * (4000 // len(line)) + b" " * (4000 % len(line)))
        assert status == 202, body
        status, headers, body, _ = await raw_post(host, port, token, 1000, b"{")  # over the rate, 999 bytes unsent
        assert (status, headers["retry-after"]) == (429, str(int(headers["retry-after"]))), body
        assert int(headers["retry-after"]) >= 900


async def test_more_events_than_a_request_may_hold(settings: Settings) -> None:
    capped = settings.model_copy(update={"max_events_per_request": 3})
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    async with web_client(capped) as client:
        body = "\n".join(json.dumps(heartbeat("a1", n)) for n in range(4))
        response = await client.post("/events", data=body, headers={**service, "Content-Type": "application/x-ndjson"})
        assert response.status == 413, await response.text()
        assert (await response.json())["detail"] == (
            "the body holds 4 events; at most 3 are accepted per request (AIWORKER_MAX_EVENTS_PER_REQUEST): split it, "
            "nothing was accepted"
        )
        response = await client.post("/events", json=[heartbeat("a1", n) for n in range(4)], headers=service)
        assert response.status == 413
        response = await client.post("/events", json=[heartbeat("a1", n) for n in range(3)], headers=service)
        assert response.status == 202
