"""Direct producers that misbehave at the record level (issue 12): tombstones, empty values, keys and headers of
odd bytes, and garbage on the internal fold.tasks, against a worker process. Each is dead-lettered with a reason (or
ignored, where it carries nothing), the valid events produced after them apply, and no agent crashes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from app import topics
from app.settings import Settings
from streams.fold import Fold
from tests.harness import WorkerProcess, eventually, fetch_all, fold_caught_up, get_json, read_topic
from tests.integration.test_fold_engine import T0, Feed, agent_registered


def _registered(agent: str) -> bytes:
    event = {"id": f"reg-{agent}", "type": "agent.registered", "time": T0, "agent_id": agent, "pod_name": f"pod-{agent}"}
    return json.dumps(event).encode()


async def test_odd_records_on_every_input_topic_do_not_stop_the_worker(settings: Settings, pool: Any, tmp_path: Path) -> None:
    """On main before this, a tombstone crashed the fold agent (Faust restarted it) and held the router for good."""
    worker = WorkerProcess(settings, log_path=tmp_path / "worker.log").start()
    u = uuid.uuid4().hex[:8]
    odd_header = [("x-\udcff".encode("utf-8", "surrogateescape").decode("latin-1"), b"\xff\x00\xfe")]
    poison: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    for short in (topics.AGENT_EVENTS, topics.CONTROL_EVENTS, topics.GITEA_WEBHOOKS, topics.FOLD_TASKS):
        topic = settings.topic(short)
        poison += [
            (topic, b"k", None, []),  # a tombstone
            (topic, b"k", b"", []),
            (topic, b"\xff\xfe", b"[1, 2]", []),
            (topic, b"", b"7", []),
            (topic, b"k", b'"text"', odd_header),
            (topic, b"\xc3", b"{}", odd_header),
        ]
    gitea = settings.topic(topics.GITEA_WEBHOOKS)
    envelope = {"delivery_id": str(uuid.uuid4()), "event_type": "issues", "event_group": "issues", "received_at": T0,
                "repository": "acme/r", "payload": {"not": "a string"}}  # fmt: skip
    poison.append((gitea, b"acme/r", json.dumps(envelope).encode(), []))
    poison.append((gitea, b"acme/r", json.dumps(envelope | {"payload": "{}", "project_id": "p" * 37}).encode(), []))
    # (an envelope of an unknown project is counted and dropped by design, issue 12 point 9: not poison)
    agents = [f"after-{i}-{u}" for i in range(3 * settings.topic_partitions)]
    after = [(settings.topic(topics.AGENT_EVENTS), a.encode(), _registered(a), []) for a in agents]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(t, value=v, key=k, headers=h) for t, k, v, h in [*poison, *after]]
        sent = [await f for f in futures]
    finally:
        await producer.stop()
    try:

        async def applied() -> bool:
            rows = await fetch_all(pool, "SELECT id FROM agents WHERE id IN (" + ", ".join(["%s"] * len(agents)) + ")", agents)
            return len(rows) == len(agents)

        await eventually(applied, timeout=90, what="the valid events after the poison")
        bad = [(m.topic, m.partition, m.offset) for m in sent[: len(poison)]]

        async def dead() -> dict[tuple[str, int, int], list[str]] | None:
            found: dict[tuple[str, int, int], list[str]] = {}
            for d in await read_topic(settings.kafka_bootstrap, settings.topic(topics.DLQ)):
                s = d["source"]
                found.setdefault((s["topic"], s["partition"], s["offset"]), []).append(d["reason"])
            return found if set(bad) <= set(found) else None

        found = await eventually(dead, timeout=60, what="a dlq record of every poison record")
        for position in bad:
            print(position, found[position])
        assert all(len(found[p]) == 1 and found[p][0] for p in bad), "a poison record dead-lettered twice, or without a reason"
        await fold_caught_up(settings, pool)  # lag back to zero: no record holds a partition
        status, health = await get_json(f"{worker.url}/healthz")
        print(status, health)
        assert status == 200, health
        assert worker.process is not None and worker.process.poll() is None
        assert "Crashed" not in worker.log(), worker.log()[-6000:]
        assert "Traceback" not in worker.log(), worker.log()[-6000:]
    finally:
        worker.stop()
        print("---- worker log (tail) ----\n" + worker.log()[-5000:])


async def test_a_log_batch_mixing_agents_is_refused_not_stored_as_its_senders(settings: Settings, pool: Any) -> None:
    """A direct producer's log.batch of agent A holding a line that claims agent B: on main before this, B's line was
    stored as A's, silently. Now the batch goes to the dlq with a reason; a batch of A's own lines after it applies."""
    u = uuid.uuid4().hex[:8]
    a, b = f"a-mix-{u}", f"b-mix-{u}"
    fold, feed = Fold(pool, settings), Feed(settings)
    await fold.apply_batch([feed.record(topics.AGENT_EVENTS, agent_registered(x)) for x in (a, b)])

    def line(line_id: str, agent: str) -> dict[str, Any]:
        return {"id": line_id, "type": "log", "time": T0, "agent_id": agent, "message": f"m-{line_id}"}

    mixed = {"id": f"bm-{u}", "type": "log.batch", "time": T0, "agent_id": a, "logs": [line(f"l1-{u}", a), line(f"l2-{u}", b)]}
    own = {"id": f"bo-{u}", "type": "log.batch", "time": T0, "agent_id": a, "logs": [line(f"l3-{u}", a)]}
    batch = [feed.record(topics.AGENT_EVENTS, mixed), feed.record(topics.AGENT_EVENTS, own)]
    stats = await fold.apply_batch(batch)
    assert (stats.invalid, stats.logs, sum(stats.dlq.values())) == (1, 1, 1), stats.summary()
    assert "logs.1.agent_id" in stats.refusals[0].reason and b in stats.refusals[0].reason, stats.refusals[0].reason
    rows = await fetch_all(pool, "SELECT agent_id, event_id FROM agent_logs WHERE agent_id IN (%s, %s)", [a, b])
    assert [(r["agent_id"], r["event_id"]) for r in rows] == [(a, f"l3-{u}")]
