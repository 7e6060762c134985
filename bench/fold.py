"""`python -m bench fold`: the fold's throughput and latency against its raw limits (issue 4).

(a) a bare asyncmy loop writing the same agent state changes (200 per transaction) and agent_logs rows;
(b) a hand-written aiokafka consumer reading the input topic and doing the same writes;
(c) the real pipeline (`python -m app worker`) from the input topic to committed rows with positions and
outbox (agent events and logs are folded straight from agent.events; the router re-keys the rest).
Then end-to-end latency at 500 events/s (event produced -> its transition consumed). Starts its own
broker (EmbeddedBroker) and database, and removes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app import topics
from app.commands.broker import EmbeddedBroker
from app.settings import Settings, load_settings
from app.topics import ensure_topics
from db.migrate import drop_database, migrate
from db.pool import create_pool

SERVER = os.environ.get("AIWORKER_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306").rstrip("/")
AGENTS, EVENTS, LOG_BATCHES, LINES = 200, 6000, 600, 100
T0 = "2026-11-22T10:00:00Z"
# Tansu answers a fetch only at its deadline: every consumer here uses the service's own fetch wait.
FETCH_WAIT_MS = Settings.model_fields["kafka_fetch_max_wait_ms"].default


def heartbeats(tag: str) -> list[dict[str, Any]]:
    return [{"id": f"{tag}-hb-{i}", "type": "agent.heartbeat", "time": f"2026-11-22T10:{i // 3600 % 60:02d}:{i // 60 % 60:02d}Z",
             "agent_id": f"{tag}-a{i % AGENTS}", "status": "busy" if (i // AGENTS) % 2 == 0 else "idle"}
            for i in range(EVENTS)]  # fmt: skip


def log_batches(tag: str) -> list[dict[str, Any]]:
    return [{"id": f"{tag}-lb-{b}", "type": "log.batch", "time": T0, "agent_id": f"{tag}-a{b % AGENTS}",
             "logs": [{"id": f"{tag}-l{b}-{i}", "type": "log", "time": T0, "agent_id": f"{tag}-a{b % AGENTS}",
                       "message": f"line {i} of batch {b}", "level": "info"} for i in range(LINES)]}
            for b in range(LOG_BATCHES)]  # fmt: skip


async def register(pool: Any, tag: str) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("INSERT INTO agents (id, pod_name, status) VALUES " + ", ".join(["(%s, %s, 'idle')"] * AGENTS),
                          [v for i in range(AGENTS) for v in (f"{tag}-a{i}", f"{tag}-pod{i}")])  # fmt: skip
        await conn.commit()


async def write(cur: Any, events: list[dict[str, Any]]) -> int:
    """What a hand-written fold does: one UPDATE per state change, one multi-row INSERT for log lines."""
    rows = 0
    lines = [(e["agent_id"], None, ln["level"], ln["message"], None, "2026-11-22 10:00:00") for e in events
             if e["type"] == "log.batch" for ln in e["logs"]]  # fmt: skip
    for e in events:
        if e["type"] == "agent.heartbeat":
            await cur.execute("UPDATE agents SET status = %s, last_heartbeat = %s WHERE id = %s",
                              [e["status"], e["time"].replace("T", " ").rstrip("Z"), e["agent_id"]])  # fmt: skip
            rows += 1
    if lines:
        values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(lines))
        sql = f"INSERT INTO agent_logs (agent_id, task_id, level, message, metadata, created_at) VALUES {values}"
        await cur.execute(sql, [v for line in lines for v in line])
    return rows + len(lines)


async def raw_db(pool: Any, events: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    async with pool.acquire() as conn, conn.cursor() as cur:
        for i in range(0, len(events), 200):
            await write(cur, events[i : i + 200])
            await conn.commit()
    return time.perf_counter() - start


async def produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=8 << 20)
    await producer.start()
    try:
        acks = [await producer.send(topic, json.dumps(e).encode(), key=e["agent_id"].encode()) for e in events]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def kafka_loop(pool: Any, bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=200,
                                fetch_max_wait_ms=FETCH_WAIT_MS)  # fmt: skip
    await consumer.start()
    seen, start = 0, time.perf_counter()
    try:
        async with pool.acquire() as conn, conn.cursor() as cur:
            while seen < total:
                batch = await consumer.getmany(timeout_ms=200, max_records=200)
                events = [json.loads(r.value) for records in batch.values() for r in records]
                if events:
                    await write(cur, events)
                    await conn.commit()
                    await consumer.commit()
                    seen += len(events)
    finally:
        await consumer.stop()
    return time.perf_counter() - start


async def scalar(pool: Any, sql: str, params: list[Any]) -> int:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, params)
        row = await cur.fetchone()
        await conn.commit()
    return int(row[0] or 0)


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.environment(), "AIWORKER_WORKER_HTTP_PORT": "0"}  # no probes: workers side by side
    return subprocess.Popen([sys.executable, "-m", "app", "worker"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def pipeline(settings: Settings, pool: Any, events: list[dict[str, Any]], tag: str) -> float:
    """Produce, start the worker; seconds per record from its first commit to the last, scaled to all records.

    Progress is read from the fold's own committed positions on agent.events (it folds agents' events and
    logs straight from there), a cheap query, so the measurement does not load the database it measures.
    """
    await produce(settings.kafka_bootstrap, settings.topic(topics.AGENT_EVENTS), events)
    worker = start_worker(settings, Path(tempfile.gettempdir()) / f"bench-fold-{tag}.log")
    sql = "SELECT COALESCE(SUM(next_offset), 0) FROM fold_positions WHERE consumer = %s AND topic = %s"
    params = [settings.worker_id, settings.topic(topics.AGENT_EVENTS)]
    try:
        first: tuple[float, int] | None = None
        while True:
            done = await scalar(pool, sql, params)
            now = time.perf_counter()
            if first is None and done:
                first = (now, done)
            if done >= len(events):
                assert first is not None
                elapsed, measured = now - first[0], len(events) - first[1]
                if measured <= 0 or elapsed <= 0:
                    raise RuntimeError("the whole input was folded in one batch: raise EVENTS or LOG_BATCHES to measure")
                return elapsed * len(events) / measured
            await asyncio.sleep(0.005)
    finally:
        worker.terminate()
        worker.wait(30)


async def latency(settings: Settings, tag: str) -> tuple[float, float]:
    """Heartbeats flipping idle/busy at 500 events/s; produced -> transition consumed, p50/p99 in ms."""
    consumer = AIOKafkaConsumer(settings.topic(topics.AGENT_TRANSITIONS), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="latest", enable_auto_commit=False,
                                fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms)  # fmt: skip
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    sent: dict[str, float] = {}
    got: list[float] = []
    count = 1500

    async def reader() -> None:
        while len(got) < count:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for r in records:
                    cause = json.loads(r.value)["data"]["cause"]["id"]
                    if cause in sent:
                        got.append((time.perf_counter() - sent[cause]) * 1000)

    task = asyncio.create_task(reader())
    await asyncio.sleep(1.0)
    start = time.perf_counter()
    for i in range(count):
        moment = f"2026-11-23T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"  # later than every earlier heartbeat
        event = {"id": f"{tag}-lat-{i}", "type": "agent.heartbeat", "time": moment, "agent_id": f"{tag}-a{i % AGENTS}",
                 "status": "busy" if (i // AGENTS) % 2 == 0 else "idle"}  # fmt: skip
        await asyncio.sleep(max(0.0, start + i / 500 - time.perf_counter()))
        sent[event["id"]] = time.perf_counter()
        await producer.send(settings.topic(topics.AGENT_EVENTS), json.dumps(event).encode(), key=event["agent_id"].encode())
    try:
        await asyncio.wait_for(task, 30)
    except TimeoutError:
        task.cancel()
    await producer.stop()
    await consumer.stop()
    got.sort()
    return (statistics.median(got), got[int(len(got) * 0.99) - 1]) if got else (float("nan"), float("nan"))


async def one_run(broker: EmbeddedBroker, run: int) -> dict[str, float]:
    url = f"{SERVER}/aiw_bench_{uuid.uuid4().hex[:10]}"
    await migrate(url)
    pool = await create_pool(url, minsize=1, maxsize=4)
    out: dict[str, float] = {}
    try:
        for kind, make in (("state", heartbeats), ("logs", log_batches)):
            tags = {w: f"r{run}{kind[0]}{w}" for w in "abc"}
            for tag in tags.values():
                await register(pool, tag)
            events = {w: make(tag) for w, tag in tags.items()}
            rows = EVENTS if kind == "state" else LOG_BATCHES * LINES
            out[f"{kind}_a"] = rows / await raw_db(pool, events["a"])
            s = load_settings(kafka_bootstrap=broker.bootstrap, database_url=url, topic_prefix=f"b{tags['b']}.",
                              worker_id=f"bench-{tags['c']}", topic_partitions=4, kafka_session_timeout=6.0,
                              agent_offline_seconds=10**7)  # fmt: skip
            await ensure_topics(s, broker.bootstrap)
            await produce(broker.bootstrap, s.topic(topics.AGENT_EVENTS), events["b"])
            out[f"{kind}_b"] = rows / await kafka_loop(pool, broker.bootstrap, s.topic(topics.AGENT_EVENTS), len(events["b"]))
            # Its own topics: on (b)'s, the pipeline would fold (b)'s input too, and be timed for half its work.
            s = s.model_copy(update={"topic_prefix": f"c{tags['c']}."})
            await ensure_topics(s, broker.bootstrap)
            out[f"{kind}_c"] = rows / await pipeline(s, pool, events["c"], tags["c"])
        s = load_settings(kafka_bootstrap=broker.bootstrap, database_url=url, topic_prefix=f"l{run}{uuid.uuid4().hex[:4]}.",
                          worker_id=f"bench-lat-{run}-{uuid.uuid4().hex[:4]}", topic_partitions=4,
                          kafka_session_timeout=6.0, agent_offline_seconds=10**7)  # fmt: skip
        await ensure_topics(s, broker.bootstrap)
        tag = f"r{run}s"  # the heartbeat agents of (a) exist: the latency run reuses them
        worker = start_worker(s, Path(tempfile.gettempdir()) / f"bench-fold-lat{run}.log")
        try:
            await asyncio.sleep(10)  # group join (Tansu waits about half the session timeout)
            out["p50"], out["p99"] = await latency(s, tag.replace("s", "sa"))
        finally:
            worker.terminate()
            worker.wait(30)
    finally:
        pool.close()
        await pool.wait_closed()
        await drop_database(url)
    return out


async def run_all(runs: int) -> dict[str, float]:
    results = []
    with EmbeddedBroker(log_path=Path(tempfile.gettempdir()) / "bench-fold-tansu.log") as broker:
        for run in range(runs):
            results.append(await one_run(broker, run))
            print(f"run {run + 1}: " + ", ".join(f"{k}={v:,.0f}" for k, v in results[-1].items()), flush=True)
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> int:
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    m = asyncio.run(run_all(runs))
    print(f"medians of {runs} runs ({EVENTS} agent state changes; {LOG_BATCHES} log.batch records x {LINES} lines):")
    for kind, unit in (("state", "events/s"), ("logs", "rows/s")):
        a, b, c = m[f"{kind}_a"], m[f"{kind}_b"], m[f"{kind}_c"]
        print(f"  {kind:5}: (a) raw DB {a:,.0f} {unit}  (b) aiokafka loop {b:,.0f}  (c) pipeline {c:,.0f}"
              f"  (c)/(a) {c / a:.2f}  (c)/(b) {c / b:.2f}")  # fmt: skip
    print(f"  latency at 500 events/s: p50 {m['p50']:.0f} ms, p99 {m['p99']:.0f} ms")
    return 0
