"""The checker of a fault run: every accepted event reflected exactly once, transitions complete, nothing
refused published; prints the run's table and returns it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from app import topics
from app.settings import Settings
from tests.faults.driver import Sent
from tests.faults.workload import Workload
from tests.harness import fetch_all, read_records


@dataclass
class Table:
    name: str
    sent: int
    accepted: int
    applied: int
    refused: int
    duplicates_by_id: int
    double_applied: int
    lost: int

    def render(self) -> str:
        names = ("run", "sent", "accepted", "applied", "dlq", "dup by id", "double-applied", "lost")
        values = (self.name, self.sent, self.accepted, self.applied, self.refused, self.duplicates_by_id,
                  self.double_applied, self.lost)  # fmt: skip
        widths = [max(len(str(n)), len(str(v))) for n, v in zip(names, values, strict=True)]
        line = " | ".join(str(n).rjust(w) for n, w in zip(names, widths, strict=True))
        row = " | ".join(str(v).rjust(w) for v, w in zip(values, widths, strict=True))
        return f"{line}\n{'-' * len(line)}\n{row}"


async def _applied(pool: Any, load: Workload, sent: Sent) -> tuple[dict[str, str], dict[str, int]]:
    rows = await fetch_all(pool, "SELECT event_id, outcome FROM processed_events WHERE event_id LIKE %s", [f"{load.tag}-%"])
    outcomes = {r["event_id"]: r["outcome"] for r in rows}
    gitea = sorted(sent.deliveries)
    for start in range(0, len(gitea), 500):
        part = gitea[start : start + 500]
        sql = f"SELECT event_id, outcome FROM processed_events WHERE event_id IN ({', '.join(['%s'] * len(part))})"
        outcomes.update({r["event_id"]: r["outcome"] for r in await fetch_all(pool, sql, part)})
    logs = await fetch_all(
        pool, "SELECT message, COUNT(*) AS n FROM agent_logs WHERE agent_id LIKE %s GROUP BY message", [f"{load.tag}-%"]
    )
    return outcomes, {r["message"].removeprefix("line "): int(r["n"]) for r in logs}


async def wait_until_folded(pool: Any, load: Workload, sent: Sent, timeout: float = 300.0) -> None:
    expected_logs = load.log_ids & sent.accepted
    expected = (sent.accepted - load.log_ids) | set(sent.deliveries)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcomes, logs = await _applied(pool, load, sent)
        if expected <= set(outcomes) and expected_logs <= set(logs):
            return
        await asyncio.sleep(1.0)
    missing = len(expected - set(outcomes)) + len(expected_logs - set(logs))
    raise AssertionError(f"{missing} accepted event(s) not folded within {timeout:.0f}s")


async def _transitions(settings: Settings, load: Workload) -> tuple[list[Any], dict[tuple[Any, ...], set[str]]]:
    records = []
    for topic in (topics.TASK_TRANSITIONS, topics.AGENT_TRANSITIONS):
        records += await read_records(settings.kafka_bootstrap, settings.topic(topic), timeout=20.0)
    values = [json.loads(r.value) for r in records]
    ours = [v for v in values if str(v.get("subject", "")).startswith(load.tag)]
    ids_by_change: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for v in ours:
        data = v["data"]
        ids_by_change[(v["subject"], data["from"], data["to"], data["cause"]["id"])].add(v["id"])
    return ours, ids_by_change


async def check(name: str, settings: Settings, pool: Any, load: Workload, sent: Sent, *, fold_timeout: float = 300.0) -> Table:
    await wait_until_folded(pool, load, sent, fold_timeout)
    outcomes, logs = await _applied(pool, load, sent)
    accepted_events = (sent.accepted - load.log_ids) | set(sent.deliveries)
    accepted_logs = load.log_ids & sent.accepted
    applied = sum(1 for e in accepted_events if outcomes.get(e) == "applied") + len(accepted_logs & set(logs))
    refused = sum(1 for e in accepted_events if outcomes.get(e) == "refused")
    lost = len(accepted_events - set(outcomes)) + len(accepted_logs - set(logs))
    double = sum(n - 1 for n in logs.values() if n > 1)
    # Final rows, known in advance.
    tasks = {r["id"]: r for r in await fetch_all(pool, "SELECT * FROM tasks WHERE id LIKE %s", [f"{load.tag}-%"])}
    wrong = [t for t, want in load.expected_tasks.items() if any(tasks.get(t, {}).get(k) != v for k, v in want.items())]
    agents = {r["id"]: r for r in await fetch_all(pool, "SELECT * FROM agents WHERE id LIKE %s", [f"{load.tag}-%"])}
    completed = {a: int(agents[a]["tasks_completed"]) for a in load.expected_completed if a in agents}
    double += sum(max(0, completed.get(a, 0) - n) for a, n in load.expected_completed.items())
    # Transitions: each change once per CloudEvent id; a repeated id is a harmless duplicate, never a new id.
    # The outbox relay publishes after the fold commits (and backs off after trouble): wait for it, bounded.
    deadline = time.monotonic() + 90.0
    while True:
        ours, ids_by_change = await _transitions(settings, load)
        changes = {(s, f, t) for s, f, t, _ in ids_by_change}
        missing_changes = [
            (t, f, to) for t in load.expected_tasks
            for f, to in ((None, "backlog"), ("backlog", "in_progress"), ("in_progress", "ready_to_test"))
            if (t, f, to) not in changes
        ]  # fmt: skip
        if not missing_changes or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    duplicates = len(ours) - len({v["id"] for v in ours})
    double += sum(len(ids) - 1 for ids in ids_by_change.values())
    # Nothing refused was published.
    published = set()
    for topic in (topics.AGENT_EVENTS, topics.CONTROL_EVENTS):
        for record in await read_records(settings.kafka_bootstrap, settings.topic(topic), timeout=20.0):
            published.add(json.loads(record.value).get("id"))
    table = Table(name, sent.events, len(accepted_events) + len(accepted_logs), applied, refused, duplicates, double, lost)
    print(f"\n{table.render()}\n  http statuses {dict(sorted(sent.statuses.items()))}, client retries {sent.retries},"
          f" spooled {sent.spooled}")  # fmt: skip
    if refused:
        dlq = await read_records(settings.kafka_bootstrap, settings.topic(topics.DLQ), timeout=5.0)
        print("  dlq reasons:", sorted({json.loads(r.value)["reason"][:120] for r in dlq})[:10])
    assert lost == 0, f"{lost} accepted event(s) lost"
    assert double == 0, f"{double} event(s) applied twice"
    assert refused == 0, f"{refused} valid accepted event(s) went to the dlq"
    assert not wrong, f"{len(wrong)} task row(s) differ from the expected, e.g. {wrong[:3]}: {tasks.get(wrong[0])}"
    # Exact: the fold keeps one agent's order across its tasks (the agent halves of task.started and
    # task.ready_for_review are ordered with its heartbeats, streams/route.py), so no count is missed or doubled.
    assert completed == load.expected_completed, f"tasks_completed differs: {completed} != {load.expected_completed}"
    assert not missing_changes, f"{len(missing_changes)} transition(s) missing, e.g. {missing_changes[:3]}"
    assert not published & sent.refused_ids, "a refused event was published"
    return table
