"""The fleet benchmark's load generator (`python -m bench.fleet_load CONFIG.json`), a process of its own so that its
CPU is counted apart: an open loop over HTTP (POST /events), each request scheduled at its time and timed from it.

- heartbeats: every agent every HEARTBEAT_SECONDS (phases spread evenly), each its own request with the agent's
  token (`<agent_id>.<hex HMAC>`): `busy` with its task while it works on one, else `idle`;
- log lines: LINES_PER_REQUEST `log` events per request from one agent (round robin over the agents at work first,
  about their task), at `log_rate` lines per second;
- task events: a task's life, each step TASK_STEP_SECONDS after the last so that one task's requests never overlap:
  task.created (service token) -> task.started (its agent) -> task.ready_for_review (after TASK_WORK_SECONDS) ->
  task.approved (service token, TASK_REVIEW_SECONDS later), `task_rate` events per second in all.

At the end it prints one JSON object: per kind of request the counts by answer and the latency percentiles, the log
lines and tasks accepted, each agent's last accepted heartbeat time, and requests completed per second.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from collections import Counter
from typing import Any

import orjson

HEARTBEAT_SECONDS = 10.0
LINES_PER_REQUEST = 100
TASK_STEP_SECONDS = 2.0
TASK_WORK_SECONDS = 30.0
TASK_REVIEW_SECONDS = 10.0
"""From ready_for_review to task.approved: the two travel on different inputs (agent.events, control.events), so the
approval is refused (task not ready_to_test yet) when the fold is more than this behind on the agent's partition."""
CONNECTIONS = 256
YIELD_EVERY = 64
"""Requests built in a row before the schedule loop lets the event loop read answers (when it runs behind)."""
LEVELS = ("info",) * 16 + ("debug",) * 2 + ("warn", "error")


def agent_ids(count: int) -> list[str]:
    return [f"fleet-agent-{i:06d}" for i in range(count)]


def agent_token(key: str, agent_id: str) -> str:
    return f"{agent_id}.{hmac.new(key.encode(), agent_id.encode(), hashlib.sha256).hexdigest()}"


class Stamps:
    """ISO 8601 UTC times to the millisecond, the date and time of each second formatted once (datetime's
    isoformat per event was a third of the generator's CPU)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, epoch: float) -> str:
        second = int(epoch)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((epoch - second) * 1000):03d}Z"


class Ids:
    """Unique event ids, cheaper than uuid4 per event: a random prefix per process and a counter (32 hex digits)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return f"{self._prefix}{self._next:016x}"


class Load:
    def __init__(self, config: dict[str, Any]) -> None:
        self.url = config["url"] + "/events"
        self.agents = agent_ids(config["agents"])
        self.tokens = {a: f"Bearer {agent_token(config['agent_token_key'], a)}" for a in self.agents}
        self.service = f"Bearer {config['service_token']}"
        self.project_id = config["project_id"]
        self.log_rate = float(config["log_rate"])
        self.task_rate = float(config["task_rate"])
        self.duration = float(config["duration"])
        self.start = float(config["start"])
        self.ramp: list[tuple[float, int]] = [(float(a), int(n)) for a, n in config.get("ramp") or [(0.0, len(self.agents))]]
        """(offset from start, agents): from each offset on, the first that many agents send (a fleet that grows)."""
        self.count = self.ramp[0][1]
        self.answers: dict[str, Counter[str]] = {}
        self.latencies: dict[str, list[float]] = {}
        self.per_second: Counter[int] = Counter()
        self.lines = 0
        self.tasks_created = 0
        self.last_heartbeat: dict[str, float] = {}
        self.working: dict[str, str] = {}
        """agent -> the task it works on (from TASK_STEP_SECONDS after its task.started until its ready_for_review)."""
        self.session: Any = None
        self.stamp = Stamps()
        self.new_id = Ids()
        self.pending: set[asyncio.Task[None]] = set()

    async def post(self, kind: str, scheduled: float, auth: str, body: Any, on_ok: Any = None) -> None:
        data = orjson.dumps(body)
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        answer = "error"
        try:
            async with self.session.post(self.url, data=data, headers=headers) as response:
                await response.read()
                answer = str(response.status)
        except Exception as exc:  # noqa: BLE001 - counted: a request that got no answer
            answer = type(exc).__name__
        done = time.time()
        self.answers.setdefault(kind, Counter())[answer] += 1
        self.latencies.setdefault(kind, []).append(done - scheduled)
        self.per_second[int(done - self.start)] += 1
        if answer == "202" and on_ok is not None:
            on_ok()

    def fire(self, kind: str, scheduled: float, auth: str, body: Any, on_ok: Any = None) -> None:
        task = asyncio.create_task(self.post(kind, scheduled, auth, body, on_ok))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def heartbeat(self, n: int, at: float) -> None:
        agent = self.agents[n % self.count]
        task = self.working.get(agent)
        body = {"id": self.new_id(), "type": "agent.heartbeat", "time": self.stamp(at), "agent_id": agent,
                "status": "busy" if task else "idle", "current_task_id": task}  # fmt: skip

        def ok() -> None:
            self.last_heartbeat[agent] = max(at, self.last_heartbeat.get(agent, 0.0))

        self.fire("heartbeat", at, self.tokens[agent], body, ok)

    def log_request(self, n: int, at: float) -> None:
        busy = list(self.working)
        agent = busy[n % len(busy)] if busy else self.agents[n % self.count]
        task = self.working.get(agent)
        lines = [{"id": self.new_id(), "type": "log", "time": self.stamp(at), "agent_id": agent, "task_id": task,
                  "level": LEVELS[(n + i) % len(LEVELS)], "message": f"step {i} of request {n}: compiled, tested, moving on",
                  "metadata": {"step": i, "request": n}} for i in range(LINES_PER_REQUEST)]  # fmt: skip

        def ok() -> None:
            self.lines += len(lines)

        self.fire("log", at, self.tokens[agent], lines, ok)

    def task_step(self, task_no: int, step: int, at: float) -> None:
        """Step `step` (0 created, 1 started, 2 ready for review, 3 approved) of task `task_no`."""
        task_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.project_id}/{task_no}"))
        agent = self.agents[(task_no * 7919) % self.count]
        base = {"id": self.new_id(), "time": self.stamp(at), "task_id": task_id}
        if step == 0:

            def created() -> None:
                self.tasks_created += 1

            body = {**base, "type": "task.created", "project_id": self.project_id, "title": f"fleet task {task_no}"}
            self.fire("task", at, self.service, body, created)
        elif step == 1:

            def started() -> None:
                asyncio.get_running_loop().call_later(TASK_STEP_SECONDS, self.working.__setitem__, agent, task_id)

            self.fire("task", at, self.tokens[agent], {**base, "type": "task.started", "agent_id": agent}, started)
        elif step == 2:
            self.working.pop(agent, None)
            body = {**base, "type": "task.ready_for_review", "agent_id": agent, "branch_name": f"task/{task_id}",
                    "pr_number": task_no + 1}  # fmt: skip
            self.fire("task", at, self.tokens[agent], body)
        else:
            self.fire("task", at, self.service, {**base, "type": "task.approved"})

    def task_schedule(self) -> list[tuple[float, int, int]]:
        """(offset from start, task number, step) of every task step within the run, in time order."""
        per_task = self.task_rate / 4
        if per_task <= 0:
            return []
        ready = TASK_STEP_SECONDS + TASK_WORK_SECONDS
        offsets = (0.0, TASK_STEP_SECONDS, ready, ready + TASK_REVIEW_SECONDS)
        steps = [(n / per_task + offsets[s], n, s) for n in range(int(self.duration * per_task)) for s in range(4)]
        return sorted(step for step in steps if step[0] < self.duration)

    async def run(self) -> dict[str, Any]:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
            self.session = session
            log_request_rate = self.log_rate / LINES_PER_REQUEST
            tasks = self.task_schedule()
            step = sent_hb = sent_log = next_task = 0
            await asyncio.sleep(max(0.0, self.start - time.time()))
            while (elapsed := time.time() - self.start) < self.duration:
                while step + 1 < len(self.ramp) and elapsed >= self.ramp[step + 1][0]:
                    step, sent_hb = step + 1, 0
                begin, self.count = self.ramp[step]
                heartbeat_rate = self.count / HEARTBEAT_SECONDS
                built = 0  # behind its schedule, the loop builds YIELD_EVERY at a time and reads answers between
                while sent_hb < int((elapsed - begin) * heartbeat_rate) and built < YIELD_EVERY:
                    self.heartbeat(sent_hb, self.start + begin + sent_hb / heartbeat_rate)
                    sent_hb, built = sent_hb + 1, built + 1
                while sent_log < int(elapsed * log_request_rate) and built < YIELD_EVERY:
                    self.log_request(sent_log, self.start + sent_log / log_request_rate)
                    sent_log, built = sent_log + 1, built + 1
                while next_task < len(tasks) and tasks[next_task][0] <= elapsed and built < YIELD_EVERY:
                    offset, number, stage = tasks[next_task]
                    self.task_step(number, stage, self.start + offset)
                    next_task, built = next_task + 1, built + 1
                await asyncio.sleep(0 if built >= YIELD_EVERY else 0.005)
            while self.pending:
                await asyncio.gather(*list(self.pending))
        return self.summary()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kinds": {}, "lines": self.lines, "tasks_created": self.tasks_created,
                               "last_heartbeat": self.last_heartbeat,
                               "per_second": [self.per_second.get(s, 0) for s in range(int(self.duration) + 1)]}  # fmt: skip
        for kind, answers in self.answers.items():
            latencies = sorted(self.latencies[kind])
            out["kinds"][kind] = {
                "answers": dict(answers),
                "p50_ms": latencies[len(latencies) // 2] * 1000,
                "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
                "max_ms": latencies[-1] * 1000,
            }
        return out


def main(path: str) -> None:
    with open(path) as handle:
        config = json.load(handle)
    load = Load(config)
    # The fleet's tokens and schedule, and the requests in flight, are long-lived: the collector walked them again
    # and again (pauses of up to 1.4 s, 40-70 % of the generator's time once the service fell behind, and still
    # 15 % with rarer collections), so that the generator measured itself. It runs without the collector: what it
    # allocates is freed by reference counting, the rest (a run's cycles) is reclaimed when it exits.
    gc.collect()
    gc.freeze()
    gc.disable()
    result = asyncio.run(load.run())
    with open(config["result"], "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1])
