"""The spool in trouble, through the real web app: a disk that fills while the broker is down (no 202 without the
record on disk, 503 instead, and 202 again once there is room), and spooled records the broker refuses for good
(dead-lettered with their reason; the records behind them are not held up)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from app.commands.broker import EmbeddedBroker, free_port
from app.settings import Settings
from app.topics import ensure_topics
from tests.harness import eventually
from tests.webhooks.ingest_helpers import read_raw, web_client
from tests.webhooks.small_disk import small_disk
from webhooks.publisher import OutRecord
from webhooks.spool import Spool
from webhooks.state import SINK


def log_line(index: int) -> dict[str, Any]:
    return {"id": f"line-{index}", "type": "log", "time": "2026-11-22T10:00:00Z", "agent_id": "agent-disk",
            "level": "info", "message": f"{index}:" + "x" * 3000}  # fmt: skip


def spooled_ids(directory: Path) -> list[str]:
    spool = Spool(directory, 1 << 30)
    spool.open()
    try:
        entries = spool.read(1 << 30)
    finally:
        spool.close()
    return [line["id"] for e in entries for r in e.records for line in json.loads(r.value)["logs"]]


async def test_a_full_disk_answers_503_never_202_without_the_record_and_202_again_once_freed(
    settings: Settings, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", 64 * 1024) as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\1" * 16 * 1024)  # someone else's file on the same volume
        down = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "spool_dir": disk / "spool"})
        service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
        answered: dict[str, int] = {}
        async with web_client(down) as client:
            for index in range(40):
                response = await client.post("/events", json=log_line(index), headers=service)
                answered[f"line-{index}"] = response.status
                assert response.status in (202, 503), await response.text()
                if response.status == 503:
                    detail = (await response.json())["detail"]
                    assert "free space" in detail and response.headers["Retry-After"]
            assert 503 in answered.values() and answered["line-0"] == 202
            ready = await client.get("/readyz")
            assert ready.status == 503 and "free space" in (await ready.json())["checks"]["spool"]
            filler.unlink()
            again = await client.post("/events", json=log_line(99), headers=service)
            assert again.status == 202 and (await again.json())["durable"] == "spool"
            answered["line-99"] = 202
        accepted = [line for line, status in answered.items() if status == 202]
        assert spooled_ids(disk / "spool") == accepted  # every 202 on disk, in order; nothing answered 503 is


async def test_records_the_broker_refuses_for_good_are_dead_lettered_and_do_not_hold_up_the_rest(
    settings: Settings, own_broker: EmbeddedBroker
) -> None:
    settings = settings.model_copy(update={"kafka_bootstrap": own_broker.bootstrap})
    await ensure_topics(settings, own_broker.bootstrap)
    topic = settings.topic("agent.events")
    good = [OutRecord(topic, b"agent-a", json.dumps({"n": n}).encode()) for n in range(4)]
    huge = [OutRecord(topic, b"agent-a", b'{"huge":"' + bytes([65 + n]) * (12 * 1024 * 1024) + b'"}') for n in range(2)]
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    spool.open()  # what a previous run left: the broker was down, then came back with a lower size limit
    for request in ([good[0]], [huge[0]], [good[1], huge[1], good[2]], [good[3]]):
        spool.append(request)
    spool.close()
    async with web_client(settings) as client:
        sink = client.server.app[SINK]

        async def drained() -> bool:
            return sink.spool.empty

        await eventually(drained, timeout=60, what="the spool to drain past the refused records")
        metrics = await (await client.get("/metrics")).text()
    assert "aiworker_spool_dead_lettered_records_total 2.0" in metrics
    delivered = await read_raw(own_broker.bootstrap, topic, expect=4)
    assert [r.value for r in delivered] == [r.value for r in good]  # in order, none held up, none lost
    dead = [json.loads(r.value) for r in await read_raw(own_broker.bootstrap, settings.topic("dlq"), expect=2)]
    assert len(dead) == 2
    for body, original in zip(sorted(dead, key=lambda b: b["value"]), huge, strict=True):
        assert "MessageSizeTooLarge" in body["reason"] and body["source"] == {
            "topic": topic, "partition": -1, "offset": -1, "spool": True}  # fmt: skip
        assert body["truncated"] and body["value_size"] == len(original.value)
        kept = Path(body["kept"])  # the whole record, kept on the web pod's volume
        assert kept.parent == Path(settings.spool_dir) / "dead" and (await asyncio.to_thread(kept.read_bytes)).endswith(
            original.value
        )


def break_segment(spool_dir: Path) -> Path:
    """Put a directory where the spool's segment is (reading it fails), the segment aside; its path."""
    segment = max(spool_dir.glob("seg-*.log"))
    segment.rename(segment.with_name("hidden.log"))
    segment.mkdir()
    return segment


def mend_segment(segment: Path) -> None:
    segment.rmdir()
    segment.with_name("hidden.log").rename(segment)


def counted(metrics: str, cause: str) -> float:
    found = re.search(rf'^aiworker_spool_drain_failures_total\{{cause="{cause}"\}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_drain_that_cannot_read_its_spool_waits_counts_it_and_goes_on_once_it_can(
    settings: Settings, own_broker: EmbeddedBroker
) -> None:
    settings = settings.model_copy(update={"kafka_bootstrap": own_broker.bootstrap})
    await ensure_topics(settings, own_broker.bootstrap)
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    beats = [{"id": f"hb-{n}", "type": "agent.heartbeat", "time": "2026-11-22T10:00:00Z", "agent_id": "agent-r",
              "status": "idle"} for n in range(3)]  # fmt: skip
    own_broker.kill()
    async with web_client(settings) as client:
        for beat in beats:
            response = await client.post("/events", json=beat, headers=service)
            assert response.status == 202 and (await response.json())["durable"] == "spool"
        segment = break_segment(Path(settings.spool_dir))  # reading it now fails, as on a failing disk
        own_broker.start()
        await ensure_topics(settings, own_broker.bootstrap)

        async def failing() -> bool:
            return counted(await (await client.get("/metrics")).text(), "spool") >= 2  # backed off, tried again

        await eventually(failing, timeout=60, what="the drain to fail on the spool and try again")
        mend_segment(segment)
        sink = client.server.app[SINK]

        async def drained() -> bool:
            return sink.spool.empty

        await eventually(drained, timeout=60, what="the drain to go on once the spool reads again")
    delivered = await read_raw(own_broker.bootstrap, settings.topic("agent.events"), expect=3)
    assert [json.loads(r.value)["id"] for r in delivered] == ["hb-0", "hb-1", "hb-2"]
