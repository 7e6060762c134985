"""2xx means durable: the broker killed mid-test (events spooled, then drained in order, byte for byte, into a
new broker on the same port), a web restart with a non-empty spool, and 503 when the spool cannot help.

Each test runs its own Tansu broker: killing the session's broker would break the other tests. Tansu keeps data
in memory, so a restarted broker is empty: the topics are created again and only what the spool held is there.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from app.commands.broker import EmbeddedBroker
from app.envelope import GiteaEnvelope
from app.settings import Settings
from app.topics import ensure_topics
from tests.gitea_samples import load_samples
from tests.harness import eventually
from tests.webhooks.ingest_helpers import read_raw, web_client
from webhooks.state import PUBLISHER, SINK

SAMPLES = load_samples()


async def restart(broker: EmbeddedBroker, settings: Settings) -> None:
    broker.start()
    await ensure_topics(settings, broker.bootstrap)


def gitea_request(settings: Settings, index: int) -> tuple[bytes, dict[str, str], str]:
    sample = SAMPLES[index % len(SAMPLES)]
    delivery = f"delivery-{index:05d}"
    return (
        sample.payload_bytes,
        {**sample.signed_headers(settings.gitea_secret.get_secret_value()), "X-Gitea-Delivery": delivery},
        delivery,
    )


def event(index: int, agent: str = "agent-d") -> dict[str, Any]:
    return {"id": f"hb-{index}", "type": "agent.heartbeat", "time": "2026-11-22T10:00:00Z", "agent_id": agent,
            "status": "busy" if index % 2 else "idle", "seq": index}  # fmt: skip


def first_copies(values: list[Any]) -> list[Any]:
    """The values without repeats (at least once allows a record twice when an acknowledgement was lost)."""
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    assert len(values) <= 2 * len(seen), "more than one extra copy"
    return seen


async def test_broker_killed_mid_test_spooled_events_are_drained_in_order_exactly_as_sent(
    settings: Settings, own_broker: EmbeddedBroker
) -> None:
    settings = settings.model_copy(update={"kafka_bootstrap": own_broker.bootstrap})
    await ensure_topics(settings, own_broker.bootstrap)
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    spooled: dict[str, bytes] = {}
    async with web_client(settings) as client:
        for index in range(3):
            body, headers, _ = gitea_request(settings, index)
            response = await client.post("/webhooks/gitea", data=body, headers=headers)
            assert response.status == 202  # "broker", or "spool" when a loaded machine made the broker slow
        own_broker.kill()
        for index in range(3, 40):
            body, headers, delivery = gitea_request(settings, index)
            started = time.monotonic()
            response = await client.post("/webhooks/gitea", data=body, headers=headers)
            assert response.status == 202, await response.text()
            assert time.monotonic() - started < 4.0  # inside Gitea's 5 s
            assert (await response.json())["durable"] == "spool"
            spooled[delivery] = body
            response = await client.post("/events", json=event(index), headers=service)
            assert response.status == 202 and (await response.json())["durable"] == "spool"
        sink = client.server.app[SINK]
        assert sink.spool.records == 2 * 37
        ready = await client.get("/readyz")
        assert ready.status == 200 and "unreachable" in (await ready.json())["checks"]["broker"]
        metrics = await (await client.get("/metrics")).text()
        assert "aiworker_spool_records 74.0" in metrics
        # Tansu only: a restarted (empty) Tansu that a connected producer reaches before the topics are created
        # again auto-creates them, and creating them then resets its offsets while the batches stay: later
        # produces fail with AlreadyExists or land hidden below batches already read (seen here about one run in
        # four). So the web's producer restarts with the broker, once the topics exist, as DEVELOPERS.md advises;
        # Kafka keeps its topics across a restart. The drain waits meanwhile, and starts the producer again.
        await sink.stop()
        await client.server.app[PUBLISHER].stop()
        await restart(own_broker, settings)
        await sink.start()

        async def drained() -> bool:
            return sink.spool.empty

        await eventually(drained, timeout=60, what="the spool to drain into the restarted broker")
        body, headers, delivery = gitea_request(settings, 99)
        response = await client.post("/webhooks/gitea", data=body, headers=headers)
        assert response.status == 202
        await eventually(drained, timeout=60, what="the spool to be empty again")
    # No early stop at a count: at least once may repeat a record, and a count that includes the repeat
    # would stop before the last delivery is read.
    gitea = await read_raw(own_broker.bootstrap, settings.topic("gitea.webhooks"), timeout=3.0)
    envelopes = [GiteaEnvelope.decode(r.value) for r in gitea]
    got = {e.delivery_id: e.payload_bytes() for e in envelopes}
    assert {d: got.get(d) for d in spooled} == spooled  # every spooled delivery, byte for byte
    assert set(got) - {"delivery-00000", "delivery-00001", "delivery-00002"} == {*spooled, "delivery-00099"}
    for partition in {r.partition for r in gitea}:
        ids = first_copies([e.delivery_id for r, e in zip(gitea, envelopes, strict=True) if r.partition == partition])
        assert ids == sorted(ids)  # in the order they were accepted
    events = await read_raw(own_broker.bootstrap, settings.topic("agent.events"), timeout=3.0)
    assert first_copies([json.loads(r.value) for r in events]) == [event(i) for i in range(3, 40)]


async def test_a_restarted_web_process_drains_what_the_previous_one_spooled(
    settings: Settings, own_broker: EmbeddedBroker
) -> None:
    settings = settings.model_copy(update={"kafka_bootstrap": own_broker.bootstrap})
    await ensure_topics(settings, own_broker.bootstrap)
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    own_broker.kill()
    async with web_client(settings) as client:
        for index in range(10):
            response = await client.post("/events", json=event(index), headers=service)
            assert response.status == 202 and (await response.json())["durable"] == "spool"
    assert os.listdir(settings.spool_dir)
    await restart(own_broker, settings)
    async with web_client(settings) as client:
        sink = client.server.app[SINK]

        async def drained() -> bool:
            return sink.spool.empty

        await eventually(drained, timeout=60, what="the new process to drain the old spool")
    events = await read_raw(own_broker.bootstrap, settings.topic("agent.events"), expect=10)
    assert first_copies([json.loads(r.value) for r in events]) == [event(i) for i in range(10)]


@pytest.mark.parametrize("spool_max_bytes", [0, 15000])
async def test_no_room_in_the_spool_is_503_with_retry_after_and_nothing_is_published(
    settings: Settings, own_broker: EmbeddedBroker, spool_max_bytes: int
) -> None:
    settings = settings.model_copy(update={"kafka_bootstrap": own_broker.bootstrap, "spool_max_bytes": spool_max_bytes})
    await ensure_topics(settings, own_broker.bootstrap)
    own_broker.kill()
    statuses = []
    async with web_client(settings) as client:
        for index in range(6):
            body, headers, _ = gitea_request(settings, 12 + index)  # ~5 KB pull request payloads
            response = await client.post("/webhooks/gitea", data=body, headers=headers)
            statuses.append(response.status)
            if response.status == 503:
                assert response.headers["Retry-After"] == "5"
                assert "spool" in (await response.json())["detail"]
        ready = await client.get("/readyz")
        assert ready.status == 503, await ready.text()
        assert "nothing can be made durable" in (await ready.json())["reason"]
    assert statuses[-1] == 503 and (spool_max_bytes == 0) == (statuses[0] == 503)
    await restart(own_broker, settings)
    async with web_client(settings) as client:
        sink = client.server.app[SINK]

        async def drained() -> bool:
            return sink.spool.empty

        await eventually(drained, timeout=60, what="the spool to drain")
    records = await read_raw(own_broker.bootstrap, settings.topic("gitea.webhooks"), timeout=1.0)
    assert len(first_copies([r.value for r in records])) == statuses.count(202)
