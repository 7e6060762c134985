"""`python -m bench dbcost`: where the database's time goes in the fold (issue 17), measured on a fresh database.

(a) The real fold (streams/fold.py, `Fold.apply_batch`, agent.events read straight) folds batches of the fleet's mix
    (per batch of 500 records: heartbeats of distinct agents, and log records of 100 lines; 10,000 agents registered)
    with every statement timed by kind (the SQL's table and verb) and the commit timed apart: milliseconds per
    batch of each kind, and its share; once with every heartbeat written (HEARTBEAT_GRANULARITY_SECONDS=0) and once
    with the granularity (the heartbeats of the batches come 10 s after the agents' previous ones).
(b) agent_logs inserts, 1,000 rows per statement as the fold writes them, into a table already holding PREFILL rows,
    for the table as migrated and without each of its secondary indexes, its foreign keys and its JSON check: µs per
    row (median of ROUNDS), and the index entries each row writes.
Times are wall time seen by the client (round trip included) on this machine: compare them with each other.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncmy.cursors import DictCursor

SERVER = os.environ.get("AIWORKER_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306").rstrip("/")
AGENTS, BATCHES, BATCH, LOG_RECORDS, LINES = 10_000, 40, 500, 45, 100
PREFILL, INSERTS, ROUNDS = (int(v) for v in os.environ.get("BENCH_DBCOST_LOGS", "50000,5000,7").split(","))
PARTS = os.environ.get("BENCH_DBCOST_PARTS", "ab")
"""Which parts run: a (the fold's statements), b (agent_logs' indexes)."""
TABLE = re.compile(r"\b(?:INTO|FROM|UPDATE)\s+`?(\w+)`?", re.IGNORECASE)


def kind_of(sql: str) -> str:
    verb = sql.lstrip().split(None, 1)[0].upper()
    match = TABLE.search(sql)
    return f"{verb} {match.group(1) if match else '?'}"


class Timings:
    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.count: Counter[str] = Counter()

    def add(self, kind: str, seconds: float) -> None:
        self.seconds[kind] += seconds
        self.count[kind] += 1


def timed_cursor(timings: Timings) -> type[Any]:
    class TimedCursor(DictCursor):  # type: ignore[misc]
        async def execute(self, query: str, args: Any = None) -> Any:
            started = time.perf_counter()
            try:
                return await super().execute(query, args)
            finally:
                timings.add(kind_of(query), time.perf_counter() - started)

    return TimedCursor


class TimedPool:
    """The pool the fold uses, its commits timed (the statements are, by the cursor class)."""

    def __init__(self, pool: Any, timings: Timings) -> None:
        self.pool, self.timings = pool, timings

    def acquire(self) -> Any:
        timings, inner = self.timings, self.pool.acquire()

        class Context:
            async def __aenter__(self) -> Any:
                conn = await inner.__aenter__()

                class Conn:
                    def __getattr__(self, name: str) -> Any:
                        return getattr(conn, name)

                    async def commit(self) -> None:
                        started = time.perf_counter()
                        await conn.commit()
                        timings.add("COMMIT", time.perf_counter() - started)

                return Conn()

            async def __aexit__(self, *exc: Any) -> Any:
                return await inner.__aexit__(*exc)

        return Context()


def records(topic: str, batch: int, at: datetime, offset: int) -> list[Any]:
    from streams.intake import ConsumedRecord

    out = []
    stamp = at.isoformat().replace("+00:00", "Z")
    for i in range(BATCH):
        agent = f"cost-agent-{(batch * BATCH + i) % AGENTS:06d}"
        if i % (BATCH // LOG_RECORDS) == 0:
            lines = [{"id": uuid.uuid4().hex, "type": "log", "time": stamp, "agent_id": agent, "level": "info",
                      "message": f"step {n}: compiled, tested", "metadata": {"step": n}} for n in range(LINES)]  # fmt: skip
            body: dict[str, Any] = {"id": uuid.uuid4().hex, "type": "log.batch", "time": stamp, "agent_id": agent, "logs": lines}
        else:
            body = {"id": uuid.uuid4().hex, "type": "agent.heartbeat", "time": stamp, "agent_id": agent, "status": "idle"}
        out.append(ConsumedRecord(topic, 0, offset + i, agent.encode(), json.dumps(body).encode(), at.timestamp()))
    return out


async def fold_profile(url: str, granularity: int) -> tuple[Timings, float]:
    import streams.fold_transaction as fold_module  # its transactions open the DictCursor the profile times
    from app import topics
    from app.settings import load_settings
    from db import fold_store
    from db.pool import create_pool
    from streams.fold import Fold

    pool = await create_pool(url, minsize=1, maxsize=2)
    settings = load_settings(database_url=url, heartbeat_granularity_seconds=granularity, worker_id=f"cost-{granularity}")
    topic = settings.topic(topics.AGENT_EVENTS)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    async with pool.acquire() as conn, conn.cursor() as cur:
        for table in ("log_positions", "agent_logs", "agents"):  # each profile writes its log lines anew
            await cur.execute(f"DELETE FROM {table}")
        naive = start.replace(tzinfo=None)
        rows = [{"id": f"cost-agent-{i:06d}", "pod_name": f"pod-{i}", "status": "idle", "last_heartbeat": naive,
                 "last_seen_at": naive, "last_seen_partition": 0} for i in range(AGENTS)]  # fmt: skip
        await fold_store.insert_rows(cur, "agents", rows)
        await conn.commit()
    timings = Timings()
    fold_module.DictCursor = timed_cursor(timings)  # type: ignore[attr-defined,misc]
    fold = Fold(TimedPool(pool, timings), settings, direct=True)
    elapsed = 0.0
    try:
        for batch in range(BATCHES):  # each agent's heartbeat comes 10 s after its previous one (stored or skipped)
            at = start + timedelta(seconds=10 * (1 + batch * BATCH // AGENTS))
            started = time.perf_counter()
            await fold.apply_batch(records(topic, batch, at, batch * BATCH))
            elapsed += time.perf_counter() - started
    finally:
        fold_module.DictCursor = DictCursor  # type: ignore[attr-defined]
        pool.close()
        await pool.wait_closed()
    return timings, elapsed


LOG_VARIANTS: dict[str, list[str]] = {
    "+ idx_agent_logs_recent (before 012)": ["ADD INDEX idx_agent_logs_recent (agent_id, created_at DESC)"],
    "as migrated": [],
    "- idx_agent_created": ["DROP INDEX idx_agent_created"],
    "- idx_level": ["DROP INDEX idx_level"],
    "- idx_created_at": ["DROP INDEX idx_created_at"],
    "- uq_agent_logs_event": ["DROP INDEX uq_agent_logs_event"],
    "- both foreign keys": ["DROP FOREIGN KEY fk_agent_logs_agent", "DROP FOREIGN KEY fk_agent_logs_task"],
    "- JSON check (LONGTEXT)": ["MODIFY metadata LONGTEXT NULL"],
    "no secondary index, no FK": ["DROP FOREIGN KEY fk_agent_logs_agent", "DROP FOREIGN KEY fk_agent_logs_task",
                                  "DROP INDEX idx_agent_created", "DROP INDEX idx_level",
                                  "DROP INDEX idx_created_at", "DROP INDEX uq_agent_logs_event", "DROP INDEX idx_task_created"],
}  # fmt: skip


async def log_insert_cost(url: str) -> dict[str, tuple[float, int]]:
    """µs per agent_logs row (median of ROUNDS) and the index entries a row writes, per table variant. Every variant
    is a table of its own, filled with PREFILL rows first; the rounds then go over the variants in turn (each
    inserts INSERTS rows per round), so that the machine's load drifting during the run hits all of them alike."""
    from db.pool import create_pool

    pool = await create_pool(url, minsize=1, maxsize=2)
    stamp = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    tables = {name: f"agent_logs_cost{n}" for n, name in enumerate(LOG_VARIANTS)}
    entries: dict[str, int] = {}
    per_row: dict[str, list[float]] = {name: [] for name in LOG_VARIANTS}

    def lines(count: int) -> list[tuple[Any, ...]]:
        return [(f"cost-agent-{i % 1000:06d}", None, "info", f"line {i}: compiled, tested, moving on", json.dumps({"step": i}),
                 stamp + timedelta(seconds=i // 1000), uuid.uuid4().hex) for i in range(count)]  # fmt: skip

    try:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SHOW CREATE TABLE agent_logs")
            ddl = (await cur.fetchone())[1]
            for name, alters in LOG_VARIANTS.items():
                table = tables[name]
                own = ddl.replace("CREATE TABLE `agent_logs`", f"CREATE TABLE `{table}`")
                await cur.execute(own.replace("CONSTRAINT `fk_agent_logs_", f"CONSTRAINT `{table}_fk_"))
                for alter in alters:
                    own_alter = alter.replace("FOREIGN KEY fk_agent_logs_", f"FOREIGN KEY {table}_fk_")
                    await cur.execute(f"ALTER TABLE {table} {own_alter}")
                await cur.execute(f"SHOW INDEX FROM {table}")
                entries[name] = len({row[2] for row in await cur.fetchall()})
                for _ in range(0, PREFILL, 1000):
                    await insert_into(cur, table, lines(1000))
                    await conn.commit()
            for _ in range(ROUNDS):
                for name in LOG_VARIANTS:
                    batch = lines(INSERTS)
                    started = time.perf_counter()
                    for i in range(0, INSERTS, 1000):
                        await insert_into(cur, tables[name], batch[i : i + 1000])
                        await conn.commit()
                    per_row[name].append((time.perf_counter() - started) / INSERTS * 1e6)
            for table in tables.values():
                await cur.execute(f"DROP TABLE {table}")
    finally:
        pool.close()
        await pool.wait_closed()
    out = {name: (statistics.median(values), entries[name]) for name, values in per_row.items()}
    for name, (micros, count) in out.items():
        print(f"  {name:36} {micros:7.1f} µs per row, {count} index entries per row", flush=True)
    return out


async def insert_into(cur: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    from db.literals import quoter

    quote = quoter(cur)
    values = ",".join("(" + ",".join(quote(v) for v in row) + ")" for row in rows)
    await cur.execute(f"INSERT INTO {table} (agent_id, task_id, level, message, metadata, created_at, event_id) VALUES "
                      f"{values} ON DUPLICATE KEY UPDATE event_id = event_id")  # fmt: skip


def print_profile(name: str, timings: Timings, elapsed: float) -> None:
    total = sum(timings.seconds.values())
    print(f"\n(a) {name}: {BATCHES} batches of {BATCH} records ({LOG_RECORDS} of them log records of {LINES} lines),"
          f" {elapsed / BATCHES * 1000:.0f} ms per batch, statements and commit {total / BATCHES * 1000:.0f} ms")  # fmt: skip
    print(f"    {'statement kind':34} {'ms/batch':>9} {'share':>6} {'per batch':>10}")
    for kind, seconds in timings.seconds.most_common():
        print(f"    {kind:34} {seconds / BATCHES * 1000:9.1f} {seconds / elapsed:6.0%} {timings.count[kind] / BATCHES:10.1f}")


def main(argv: list[str] | None = None) -> int:
    from db import fold_store
    from db.migrate import drop_database, migrate
    from db.pool import create_pool

    async def run() -> None:
        url = f"{SERVER}/aiw_cost_{uuid.uuid4().hex[:8]}"
        await migrate(url)
        try:
            for granularity in (0, 15) if "a" in PARTS else ():
                timings, elapsed = await fold_profile(url, granularity)
                print_profile(f"HEARTBEAT_GRANULARITY_SECONDS={granularity}", timings, elapsed)
            if "b" not in PARTS:
                return
            if "a" not in PARTS:  # the rows' agents
                pool = await create_pool(url, minsize=1, maxsize=1)
                async with pool.acquire() as conn, conn.cursor() as cur:
                    rows = [{"id": f"cost-agent-{i:06d}", "pod_name": f"p{i}"} for i in range(1000)]
                    await fold_store.insert_rows(cur, "agents", rows)
                    await conn.commit()
                pool.close()
                await pool.wait_closed()
            print(f"\n(b) agent_logs: {INSERTS:,} rows in statements of 1,000 into {PREFILL:,}, median of {ROUNDS}:")
            await log_insert_cost(url)
        finally:
            await drop_database(url)

    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
