"""`python -m bench fleet [--agents N] [--log-rate L] [--duration S] ...`: how many agents one installation carries.

Starts its own broker (Tansu), a fresh database on the local MariaDB, a web process and two worker processes, registers
the fleet, then drives the load over HTTP from a process of its own (bench/fleet_load.py; default: 10,000 agents each
sending a heartbeat every 10 s as its own request, 10,000 log lines/s in requests of 100 lines, 50 task events/s) and
samples every second (bench/fleet_probe.py): fold lag, CPU seconds of each process (web, each worker, broker, mariadbd,
the load generator, this sampler) and the workers' RSS. At the end it waits for the fold to drain, checks that every
accepted row landed, prints the report and writes a PNG plot of lag and CPU over time (bench/fleet_report.py).

`--phase LABEL:NAME=VALUE,...` (repeatable) with `--rounds R` runs the phases in turn (A B A B for two phases and
R=2), each for duration / (phases x rounds): at a phase's start both workers are restarted with those settings
(AIWORKER_ names without the prefix) while the load goes on; lag statistics skip each phase's first `--warmup` s.
mariadbd is the machine's shared server: its CPU includes whatever else uses it at the time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from bench import fleet_load, fleet_probe, fleet_report
from bench.fleet_register import REGISTER_AHEAD_SECONDS, SERVICE_TOKEN, TOKEN_KEY, register, scalar

SERVER = os.environ.get("AIWORKER_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306").rstrip("/")
DRAIN_SECONDS = 180


@dataclass
class Phase:
    label: str
    settings: dict[str, str]
    agents: int = 0
    start: float = 0.0
    end: float = 0.0


@dataclass
class Run:
    args: argparse.Namespace
    phases: list[Phase]
    samples: list[fleet_probe.Sample] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    cpu_load: dict[str, float] = field(default_factory=dict)
    load_seconds: float = 0.0


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[Phase]]:
    parser = argparse.ArgumentParser(prog="python -m bench fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=10_000, help="agents, each a heartbeat every 10 s (default 10000)")
    parser.add_argument("--log-rate", type=float, default=10_000, help="log lines per second (default 10000)")
    parser.add_argument("--task-rate", type=float, default=50, help="task events per second (default 50)")
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--warmup", type=float, default=60, help="seconds of each phase left out of the lag figures")
    parser.add_argument("--phase", action="append", default=[], help="LABEL:NAME=VALUE,... worker settings of a phase")
    parser.add_argument("--rounds", type=int, default=1, help="times the phases are run in turn (default 1)")
    parser.add_argument("--ramp", default="", help="N,N,...: phases of that many agents sending (e.g. 2500,5000,10000)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG path (default var/bench/fleet-<agents>.png)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed) and the logs")
    parser.add_argument("--setting", action="append", default=[], help="NAME=VALUE for every process (repeatable)")
    args = parser.parse_args(argv)
    phases = []
    for spec in args.phase or ["run:"]:
        label, _, assignments = spec.partition(":")
        pairs = dict(a.split("=", 1) for a in assignments.split(",") if a)
        phases.append(Phase(label, {k.lower().removeprefix("aiworker_"): v for k, v in pairs.items()}))
    phases = [Phase(p.label, p.settings) for _ in range(args.rounds) for p in phases]
    if args.ramp:
        counts = [int(n) for n in args.ramp.split(",")]
        phases = [Phase(f"{n} agents", phases[0].settings, n) for n in counts]
        args.agents = max(counts)
    for phase in phases:
        phase.agents = phase.agents or args.agents
    args.plot = args.plot or Path("var/bench") / f"fleet-{args.agents}.png"
    return args, phases


def start_workers(base: dict[str, Any], phase: Phase, directory: Path, cpu: fleet_probe.CpuMeter, n: int) -> list[Any]:
    from app.settings import load_settings
    from tests.harness import WorkerProcess

    settings = load_settings(**{**base, **phase.settings})
    workers = []
    for i in (1, 2):
        worker = WorkerProcess(settings, directory / f"worker{i}.log").start()
        assert worker.process is not None
        cpu.add(f"worker{i}", worker.process.pid)
        workers.append(worker)
    print(f"phase {n + 1} ({phase.label}): workers with {phase.settings or 'the defaults'}", flush=True)
    return workers


def restart(workers: list[Any], base: dict[str, Any], phase: Phase, directory: Path, cpu: fleet_probe.CpuMeter,
            n: int) -> list[Any]:  # fmt: skip
    for worker in workers:
        worker.stop()
    return start_workers(base, phase, directory, cpu, n)


async def checks(pool: Any, run: Run, granularity: float) -> dict[str, Any]:
    """Whether every accepted row landed: log lines, tasks, the last heartbeat of every agent; no dlq, none parked."""
    load = run.load
    stored = {}
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT id, last_heartbeat FROM agents")
        for agent_id, last in await cur.fetchall():
            stored[agent_id] = last.replace(tzinfo=UTC).timestamp() if last else 0.0
        await conn.commit()
    behind = [a for a, t in load["last_heartbeat"].items() if stored.get(a, 0.0) < int(t) - granularity]
    return {
        "log_rows": await scalar(pool, "SELECT COUNT(*) FROM agent_logs"),
        "log_lines_accepted": load["lines"],
        "task_rows": await scalar(pool, "SELECT COUNT(*) FROM tasks"),
        "tasks_accepted": load["tasks_created"],
        "heartbeats_behind": len(behind),
        "dlq_records": await scalar(pool, "SELECT COUNT(*) FROM outbox WHERE topic LIKE %s", ["%dlq"]),
        "parked": await scalar(pool, "SELECT COUNT(*) FROM parked_events"),
    }


async def drive(run: Run, directory: Path) -> None:
    import aiohttp

    from app import topics
    from app.commands.broker import EmbeddedBroker
    from app.settings import load_settings
    from app.topics import ensure_topics, router_group
    from db.migrate import drop_database, migrate
    from db.pool import create_pool
    from tests.harness import WebProcess

    args = run.args
    database_url = f"{SERVER}/aiw_fleet_{uuid.uuid4().hex[:8]}"
    await migrate(database_url)
    pool = await create_pool(database_url, minsize=1, maxsize=2)
    processes: list[Any] = []
    cpu = fleet_probe.CpuMeter()
    cpu.add("sampler", os.getpid())
    if (mariadbd := fleet_probe.pid_of("mariadbd") or fleet_probe.pid_of("mysqld")) is not None:
        cpu.add("mariadbd", mariadbd)
    tail: fleet_probe.Tail | None = None
    http: Any = None
    try:
        with EmbeddedBroker(log_path=directory / "broker.log") as broker:
            assert broker.process is not None
            cpu.add("broker", broker.process.pid)
            extra = dict(s.split("=", 1) for s in args.setting)
            base: dict[str, Any] = {
                "kafka_bootstrap": broker.bootstrap, "database_url": database_url, "agent_token_key": TOKEN_KEY,
                "service_token": SERVICE_TOKEN, "spool_dir": str(directory / "spool"), "log_level": "warning",
                "worker_id": f"fleet-{uuid.uuid4().hex[:6]}", "topic_partitions": 8,
                **{k.lower().removeprefix("aiworker_"): v for k, v in extra.items()},
            }  # fmt: skip
            settings = load_settings(**base)
            await ensure_topics(settings, broker.bootstrap)
            web = WebProcess(settings, directory / "web.log").start()
            processes.append(web)
            assert web.process is not None
            cpu.add("web", web.process.pid)
            workers = start_workers(base, run.phases[0], directory, cpu, 0)
            processes += workers
            agents = fleet_load.agent_ids(args.agents)
            project_id = str(uuid.uuid4())
            # A ramp registers each phase's agents shortly before it (REGISTER_AHEAD_SECONDS): registered all at
            # once, the silent ones were swept offline a minute later and came back with their first heartbeats, so
            # the early phases measured 17,500 offline and online transitions, not their fleet.
            registered = run.phases[0].agents or len(agents)
            print(f"registering {registered} agents ...", flush=True)
            took = await register(web.url, pool, agents[:registered], project_id)
            print(f"registered in {took:.0f} s", flush=True)
            joining: asyncio.Task[float] | None = None
            tail = fleet_probe.Tail(broker.bootstrap, [settings.topic(t) for t in (topics.AGENT_EVENTS, topics.CONTROL_EVENTS,
                                                                                    topics.FOLD_TASKS)])  # fmt: skip
            await tail.start()
            http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
            stages = {
                "fold": (settings.worker_id, [settings.topic(topics.AGENT_EVENTS), settings.topic(topics.FOLD_TASKS)]),
                "route": (router_group(settings), [settings.topic(topics.AGENT_EVENTS), settings.topic(topics.CONTROL_EVENTS)]),
            }
            start = time.time() + 2.0
            config = {"url": web.url, "agents": args.agents, "agent_token_key": TOKEN_KEY, "service_token": SERVICE_TOKEN,
                      "project_id": project_id, "log_rate": args.log_rate, "task_rate": args.task_rate,
                      "duration": args.duration, "start": start, "result": str(directory / "load.json"),
                      "ramp": [[n * args.duration / len(run.phases), p.agents] for n, p in enumerate(run.phases)]}  # fmt: skip
            (directory / "load-config.json").write_text(json.dumps(config))
            load = subprocess.Popen([sys.executable, "-m", "bench.fleet_load", str(directory / "load-config.json")])  # noqa: ASYNC220
            cpu.add("load", load.pid)

            def sampled_pids() -> dict[str, int]:
                return {f"worker{i + 1}": w.process.pid for i, w in enumerate(workers)} | {"load": load.pid}

            rss = sampled_pids()
            urls = {f"worker{i + 1}": w.url for i, w in enumerate(workers)}
            per_phase = args.duration / len(run.phases)
            for n, phase in enumerate(run.phases):
                phase.start, phase.end = start + n * per_phase, start + (n + 1) * per_phase
            before: dict[str, float] | None = None
            current = 0
            while load.poll() is None:
                now = time.time()
                if current + 1 < len(run.phases) and now >= run.phases[current + 1].start:
                    current += 1
                    if run.phases[current].settings != run.phases[current - 1].settings:
                        workers = restart(workers, base, run.phases[current], directory, cpu, current)
                        processes += workers
                        rss = sampled_pids()
                        urls = {f"worker{i + 1}": w.url for i, w in enumerate(workers)}
                    else:
                        print(f"phase {current + 1} ({run.phases[current].label})", flush=True)
                upcoming = [p for p in run.phases if p.agents > registered and now >= p.start - REGISTER_AHEAD_SECONDS]
                if upcoming and (joining is None or joining.done()):
                    more = max(p.agents for p in upcoming)
                    print(f"registering agents {registered + 1}-{more} ...", flush=True)
                    joining = asyncio.create_task(register(web.url, pool, agents[registered:more], project_id, expected=more))
                    registered = more
                if before is None and now >= start:
                    before = cpu.totals()
                scrape = urls if len(run.samples) % fleet_probe.FOLD_COUNTERS_EVERY == 0 else None
                run.samples.append(await fleet_probe.sample(pool, tail, stages, cpu, rss, scrape, http))
                await asyncio.sleep(max(0.0, 1.0 - (time.time() - now)))
            if joining is not None:
                await joining
            after = cpu.totals()
            run.load_seconds = time.time() - start
            run.cpu_load = {role: after[role] - (before or {}).get(role, 0.0) for role in after}
            run.load = json.loads((directory / "load.json").read_text())
            print("load done; waiting for the fold to drain ...", flush=True)
            drain_started = time.monotonic()
            while not fleet_probe.drained(tail, await fleet_probe.positions(pool), stages):
                if time.monotonic() - drain_started > DRAIN_SECONDS:
                    print(f"the fold did not drain within {DRAIN_SECONDS} s", flush=True)
                    break
                run.samples.append(await fleet_probe.sample(pool, tail, stages, cpu, rss))
                await asyncio.sleep(1.0)
            every = [load_settings(**{**base, **p.settings}).heartbeat_granularity_seconds for p in run.phases]
            granularity = max(every) + 1.0  # + 1: last_heartbeat is stored to the second
            run.checks = {"drain_seconds": time.monotonic() - drain_started, **await checks(pool, run, granularity)}
            for process in processes:  # before the broker stops
                process.stop()
            await tail.stop()  # before the broker stops, too: its fetcher fails otherwise
            tail = None
    finally:
        if http is not None:
            await http.close()
        if tail is not None:
            await tail.stop()
        for process in processes:
            process.stop()
        pool.close()
        await pool.wait_closed()
        if args.keep:
            print(f"kept database {database_url}; logs in {directory}", flush=True)
        else:
            await drop_database(database_url)


def main(argv: list[str] | None = None) -> int:
    args, phases = parse(argv or [])
    run = Run(args, phases)
    print(f"fleet: {args.agents} agents (a heartbeat each every {fleet_load.HEARTBEAT_SECONDS:.0f} s), {args.log_rate:.0f} "
          f"log lines/s, {args.task_rate:.0f} task events/s, {args.duration:.0f} s; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)  # fmt: skip
    from app.commands.dev import ensure_database
    from app.settings import load_settings

    ensure_database(load_settings(database_url=f"{SERVER}/mysql"))
    directory = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        asyncio.run(drive(run, directory))
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    print(f"load average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return fleet_report.report(run)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
