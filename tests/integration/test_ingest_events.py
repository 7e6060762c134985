"""POST /events against the real broker: log lines packed per agent into log.batch records, order kept,
refusals, and what /metrics and /readyz say."""

from __future__ import annotations

import json
from typing import Any

from app.agent_events import LogBatch
from app.events import parse_event
from app.settings import Settings
from tests.webhooks.ingest_helpers import read_raw, web_client
from webhooks.auth import agent_token

T0 = "2026-11-22T10:00:00Z"


def line(agent: str, number: int) -> dict[str, Any]:
    return {"id": f"{agent}-log-{number}", "type": "log", "time": T0, "agent_id": agent, "message": f"line {number}",
            "level": "info", "extra": {"kept": True}}  # fmt: skip


async def test_log_lines_travel_as_one_batch_per_agent_and_run(settings: Settings) -> None:
    heartbeat = {"id": "a1-hb", "type": "agent.heartbeat", "time": T0, "agent_id": "a1", "status": "idle"}
    items = [line("a1", 1), line("a2", 1), line("a1", 2), heartbeat, line("a1", 3), line("a2", 2)]
    body = "\n".join(json.dumps(item) for item in items)
    headers = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}", "Content-Type": "application/x-ndjson"}
    async with web_client(settings) as client:
        response = await client.post("/events", data=body, headers=headers)
        assert response.status == 202, await response.text()
        answer = await response.json()
        assert answer["accepted"] == 6 and answer["records"] == 4
        again = await client.post("/events", data=body, headers=headers)  # a client retry: the same batch ids
        assert again.status == 202
    records = await read_raw(settings.kafka_bootstrap, settings.topic("agent.events"), expect=8)
    assert len(records) == 8
    by_agent: dict[bytes, list[dict[str, Any]]] = {}
    for record in records:
        assert record.key is not None
        by_agent.setdefault(record.key, []).append(json.loads(record.value))
    a1, a2 = by_agent[b"a1"], by_agent[b"a2"]
    assert [v["type"] for v in a1] == ["log.batch", "agent.heartbeat", "log.batch"] * 2
    assert [[entry["id"] for entry in v["logs"]] for v in a1[:3:2]] == [["a1-log-1", "a1-log-2"], ["a1-log-3"]]
    assert a1[0] == a1[3]  # same id on a retry, so the fold can drop it
    assert [entry["id"] for entry in a2[0]["logs"]] == ["a2-log-1", "a2-log-2"]
    batch = parse_event(a2[0])
    assert isinstance(batch, LogBatch) and batch.logs[0].model_extra == {"extra": {"kept": True}}


async def test_agent_token_refusals_and_metrics(settings: Settings) -> None:
    agent = {"Authorization": f"Bearer {agent_token(settings.agent_token_key.get_secret_value(), 'a1')}"}
    async with web_client(settings) as client:
        response = await client.post("/events", json=line("a2", 1), headers=agent)
        assert response.status == 403  # a token speaks only for the agent it names
        response = await client.post("/events", json=[line("a1", 1), {**line("a1", 2), "agent_id": "a2"}], headers=agent)
        assert response.status == 403
        response = await client.post("/events", json=[line("a1", 1), {"id": "x", "type": "log"}], headers=agent)
        assert response.status == 422
        assert {e["index"] for e in (await response.json())["errors"]} == {1}
        response = await client.post("/events", data=b"[" * 100_000, headers={**agent, "Content-Type": "application/json"})
        assert response.status == 400
        response = await client.post("/events", json=[line("a1", 1)], headers=agent)
        assert response.status == 202
        metrics = await (await client.get("/metrics")).text()
        ready = await client.get("/readyz")
        assert ready.status == 200, await ready.text()
        assert (await ready.json())["checks"]["broker"] == "ok"
    assert 'aiworker_http_requests_total{method="POST",route="/events",status="202"} 1.0' in metrics
    assert 'aiworker_http_requests_total{method="POST",route="/events",status="403"} 2.0' in metrics
    assert 'aiworker_events_accepted_total{source="agent",type="log"} 1.0' in metrics
    assert "aiworker_spool_records 0.0" in metrics
    assert 'aiworker_produce_seconds_count{outcome="ok"} 1.0' in metrics
    assert "aiworker_produce_records_total 1.0" in metrics
    assert len(await read_raw(settings.kafka_bootstrap, settings.topic("agent.events"), expect=1)) == 1
