"""The broker goes away while clients keep sending; the web process is killed with events in its spool.

Each test runs its own embedded broker (Tansu). Tansu keeps its data in memory, so the restarted broker is
EMPTY: the records the broker acknowledged before it was stopped are gone with it (a real Kafka keeps them),
and what these tests check is what the spool re-delivers: every event answered 202 "spool" reaches the
recreated topics, nothing answered 503 does, and 503 comes only when the spool is full.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app import topics
from app.commands.broker import EmbeddedBroker
from app.settings import Settings
from app.topics import ensure_topics
from tests.faults.workload import T0
from tests.harness import WebProcess, eventually, read_records

pytestmark = pytest.mark.faults


def batch(tag: str, n: int, size: int = 40) -> list[dict[str, Any]]:
    agent = f"{tag}-agent"
    return [{"id": f"{tag}-{n}-{i}", "type": "log", "time": T0, "agent_id": agent, "message": "m" * 200} for i in range(size)]


async def post(session: aiohttp.ClientSession, web: WebProcess, token: str, events: list[dict[str, Any]]) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{web.url}/events", json=events, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as r:
        assert r.status in (202, 503), (r.status, await r.text())
        return r.status, await r.json(content_type=None)


async def published_ids(settings: Settings) -> set[str]:
    ids: set[str] = set()
    for name in (topics.AGENT_EVENTS, topics.CONTROL_EVENTS):
        for record in await read_records(settings.kafka_bootstrap, settings.topic(name), timeout=5.0):
            value = json.loads(record.value)
            ids.update(line["id"] for line in value["logs"]) if value.get("type") == "log.batch" else ids.add(value["id"])
    return ids


def table(name: str, sent: int, spooled: set[str], refused: set[str], delivered: set[str]) -> str:
    lost = len(spooled - delivered)
    head = f"{'run':>24} | sent | accepted (spool) | 503 | delivered | lost"
    row = f"{name:>24} | {sent:>4} | {len(spooled):>16} | {len(refused):>3} | {len(spooled & delivered):>9} | {lost:>4}"
    return f"{head}\n{'-' * len(head)}\n{row}"


async def test_broker_down_spools_until_full_then_503_and_the_spool_drains(
    settings: Settings, own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    run = settings.model_copy(update={"kafka_bootstrap": own_broker.bootstrap, "spool_max_bytes": 200_000,
                                      "kafka_send_timeout": 1.0, "spool_dir": str(tmp_path / "spool")})  # fmt: skip
    await ensure_topics(run, own_broker.bootstrap)
    web = WebProcess(run, tmp_path / "web.log").start()
    spooled: set[str] = set()
    refused: set[str] = set()
    sent = 0
    try:
        async with aiohttp.ClientSession() as session:
            status, _ = await post(session, web, run.service_token.get_secret_value(), batch("up", 0))
            assert status == 202
            own_broker.kill()  # the broker dies; clients keep sending
            full_reasons = []
            for n in range(200):
                events = batch("down", n)
                sent += len(events)
                status, body = await post(session, web, run.service_token.get_secret_value(), events)
                if status == 202:
                    assert body["durable"] == "spool", body
                    assert not refused, "a 202 after the spool was full, before the broker returned"
                    spooled.update(body["ids"])
                else:
                    refused.update(e["id"] for e in events)
                    full_reasons.append(body.get("detail", ""))
                    if len(refused) >= 3 * len(events):
                        break
            assert spooled and refused, "expected both spooled 202s and 503s once the spool was full"
            assert all("full" in reason or "room" in reason for reason in full_reasons), full_reasons[:2]
            # EMPTY: Tansu keeps nothing across a restart; the topics are created again. Tansu only: a connected
            # producer that reaches the empty broker before they exist auto-creates them, and records then land hidden
            # below batches already read (test_ingest_durability.py says more; seen here about one run in five on a
            # loaded machine). So the web waits, stopped, until the topics exist; Kafka keeps its topics.
            assert web.process is not None
            web.process.send_signal(signal.SIGSTOP)
            try:
                own_broker.start()
                await ensure_topics(run, own_broker.bootstrap)
            finally:
                web.process.send_signal(signal.SIGCONT)

            async def drained() -> set[str] | None:
                ids = await published_ids(run)
                return ids if spooled <= ids else None

            delivered = await eventually(drained, timeout=90, what="every spooled event on the recreated topics")
        print("\n" + table("broker down, spool full", sent, spooled, refused, delivered))
        assert not refused & delivered, "an event answered 503 was published"
        assert web.process is not None and web.process.poll() is None
    finally:
        web.stop()
        print("---- web log (tail) ----\n" + web.log()[-2000:])


async def test_web_killed_with_events_in_its_spool_drains_after_restart(
    settings: Settings, own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    run = settings.model_copy(update={"kafka_bootstrap": own_broker.bootstrap, "kafka_send_timeout": 1.0,
                                      "spool_dir": str(tmp_path / "spool")})  # fmt: skip
    await ensure_topics(run, own_broker.bootstrap)
    web = WebProcess(run, tmp_path / "web.log").start()
    spooled: set[str] = set()
    sent = 0
    try:
        async with aiohttp.ClientSession() as session:
            own_broker.kill()
            for n in range(20):
                events = batch("spooled", n)
                sent += len(events)
                status, body = await post(session, web, run.service_token.get_secret_value(), events)
                assert status == 202 and body["durable"] == "spool", body
                spooled.update(body["ids"])
        web.kill()  # kill -9 with everything still in the spool
        started = time.monotonic()
        # Restarted while the broker is still down, on the same spool directory. With create_topics (the default)
        # the web process refuses to start without a broker (see the report), so as with Strimzi-owned topics:
        web.settings = web.settings.model_copy(update={"create_topics": False})
        web.start()
        own_broker.start()  # EMPTY (see the module docstring)
        await ensure_topics(run, own_broker.bootstrap)

        async def drained() -> set[str] | None:
            ids = await published_ids(run)
            return ids if spooled <= ids else None

        delivered = await eventually(drained, timeout=90, what="the restarted web process to drain its spool")
        print("\n" + table("web kill -9, spool drains", sent, spooled, set(), delivered))
        print(f"  drained {time.monotonic() - started:.1f}s after the restart")
    finally:
        web.stop()
        print("---- web log (tail) ----\n" + web.log()[-2000:])
