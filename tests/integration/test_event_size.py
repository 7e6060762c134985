"""Bounded by bytes at the door and on the topics: an event over AIWORKER_MAX_EVENT_BYTES is a 413 naming it and
publishes nothing; every topic is made with max.message.bytes above that limit, and a topic that takes less
stops start-up with a line naming it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.commands.cli import main
from app.settings import Settings
from app.topics import ALL_TOPICS, TopicLimitError, check_topic_limits, ensure_topics, topic_message_bytes
from tests.gitea_samples import load_sample, sign
from tests.webhooks.ingest_helpers import read_raw, web_client

LIMIT = 256 * 1024


# The bulk sits where no TEXT column limits it (65,535 bytes, a 422 of its own): an unknown field, which events keep,
# and a log line's metadata (a JSON column).
def agent_error(index: int, size: int) -> dict[str, Any]:
    return {"id": f"err-{index}", "type": "agent.error", "time": "2026-11-22T10:00:00Z", "agent_id": "agent-big",
            "message": "out of memory", "details": "é" * (size // 2)}  # fmt: skip


def log_line(index: int, size: int) -> dict[str, Any]:
    return {"id": f"log-{index}", "type": "log", "time": "2026-11-22T10:00:00Z", "agent_id": "agent-big",
            "level": "info", "message": "a big line", "metadata": {"dump": "\U0001f600" * (size // 4)}}  # fmt: skip


async def test_an_event_over_the_limit_is_413_naming_it_and_nothing_is_published(settings: Settings) -> None:
    small = settings.model_copy(update={"max_event_bytes": LIMIT})
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    async with web_client(small) as client:
        body = [agent_error(0, 1000), agent_error(1, LIMIT + 10), log_line(2, 1000), log_line(3, LIMIT - 100)]
        response = await client.post("/events", json=body, headers=service)
        assert response.status == 413, await response.text()
        problem = await response.json()
        assert "AIWORKER_MAX_EVENT_BYTES" in problem["detail"]
        assert [e["index"] for e in problem["errors"]] == [1, 3]  # the log line: its batch alone is over the limit
        fits = [agent_error(4, LIMIT - 1000), log_line(5, 60_000), log_line(6, 60_000), log_line(7, 60_000)]
        accepted = await client.post("/events", json=fits, headers=service)
        assert accepted.status == 202, await accepted.text()
    values = [json.loads(r.value) for r in await read_raw(settings.kafka_bootstrap, settings.topic("agent.events"), expect=3)]
    assert [v["id"] for v in values if v["type"] == "agent.error"] == ["err-4"]
    lines = [line["id"] for v in values if v["type"] == "log.batch" for line in v["logs"]]
    assert lines == ["log-5", "log-6", "log-7"]  # packed below the limit, nothing of the refused request
    assert all(len(json.dumps(v, ensure_ascii=False).encode()) <= LIMIT for v in values)


async def test_a_gitea_delivery_over_the_limit_is_413(settings: Settings) -> None:
    small = settings.model_copy(update={"max_event_bytes": LIMIT})
    sample = load_sample("push__main")
    payload = json.loads(sample.payload_bytes)
    payload["head_commit"]["message"] = "x" * LIMIT
    data = json.dumps(payload).encode()
    headers = {**sample.headers, **sign(data, settings.gitea_secret.get_secret_value())}
    async with web_client(small) as client:
        response = await client.post("/webhooks/gitea", data=data, headers=headers)
        assert response.status == 413, await response.text()
        assert "AIWORKER_MAX_EVENT_BYTES" in (await response.json())["detail"]
    assert await read_raw(settings.kafka_bootstrap, settings.topic("gitea.webhooks"), timeout=0.5) == []


async def described_limits(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    return {
        name: int(entry[1])
        for response in responses
        for _e, _m, _t, name, entries in response.resources
        for entry in entries
        if entry[0] == "max.message.bytes"
    }


async def test_every_topic_is_made_with_a_limit_above_the_event_limit(settings: Settings) -> None:
    names = [settings.topic(name) for name in ALL_TOPICS]
    limits = await described_limits(settings.kafka_bootstrap, names)  # the fixture made them with ensure_topics
    assert topic_message_bytes(settings) == settings.max_event_bytes + 64 * 1024
    assert limits == dict.fromkeys(names, topic_message_bytes(settings))
    await check_topic_limits(settings, settings.kafka_bootstrap)  # they pass the start-up check


async def test_a_topic_that_takes_less_than_the_door_accepts_stops_start_up(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    other = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "low."})
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        low = str(other.max_event_bytes)  # without the headroom: a framed record of a full-size event would not fit
        await admin.create_topics([NewTopic(other.topic("agent.events"), 1, 1, topic_configs={"max.message.bytes": low})])
    finally:
        await admin.close()
    await ensure_topics(other, settings.kafka_bootstrap)  # the others, right; the existing one is left alone
    with pytest.raises(TopicLimitError) as refused:
        await check_topic_limits(other, settings.kafka_bootstrap)
    message = str(refused.value)
    assert other.topic("agent.events") in message and "AIWORKER_MAX_EVENT_BYTES" in message
    assert other.topic("control.events") not in message
    flags = ["--kafka-bootstrap", settings.kafka_bootstrap, "--topic-prefix", other.topic_prefix]
    assert await asyncio.to_thread(main, ["topics", *flags]) == 1  # checks as the start-up of web and worker does
    assert other.topic("agent.events") in capsys.readouterr().err
