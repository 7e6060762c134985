"""Packing log lines into log.batch records: per agent, per run, bounded, with deterministic ids."""

from __future__ import annotations

from typing import Any

from app.agent_events import LogBatch
from app.events import parse_event
from webhooks import log_batches
from webhooks.log_batches import pack

T0 = "2026-11-22T10:00:00Z"


def line(agent: str, n: int, message: str = "x") -> dict[str, Any]:
    return {"id": f"{agent}-{n}", "type": "log", "time": T0, "agent_id": agent, "message": message}


def packed(items: list[dict[str, Any]], max_bytes: int = log_batches.MAX_BYTES) -> list[dict[str, Any]]:
    return [value for _, value in pack([parse_event(i) for i in items], items, max_bytes=max_bytes)]


def test_runs_are_closed_by_other_events_of_the_same_agent_only() -> None:
    stopped = {"id": "s", "type": "agent.stopped", "time": T0, "agent_id": "a"}
    out = packed([line("a", 1), line("b", 1), line("a", 2), stopped, line("a", 3), line("b", 2)])
    assert [(v["type"], v.get("agent_id")) for v in out] == [
        ("log.batch", "a"), ("log.batch", "b"), ("agent.stopped", "a"), ("log.batch", "a")
    ]  # fmt: skip
    assert [[line["id"] for line in v["logs"]] for v in out if v["type"] == "log.batch"] == [
        ["a-1", "a-2"],
        ["b-1", "b-2"],
        ["a-3"],
    ]
    assert all(isinstance(parse_event(v), LogBatch) for v in out if v["type"] == "log.batch")


def test_ids_are_derived_from_the_lines() -> None:
    first, second = packed([line("a", 1), line("a", 2)]), packed([line("a", 1), line("a", 2)])
    assert first[0]["id"] == second[0]["id"] != packed([line("a", 1)])[0]["id"]


def test_batches_are_bounded() -> None:
    out = packed([line("a", n, "m" * 300) for n in range(10)], max_bytes=1000)
    assert len(out) > 3 and sum(len(v["logs"]) for v in out) == 10
    assert len({v["id"] for v in out}) == len(out)
