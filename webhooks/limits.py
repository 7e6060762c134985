"""Rate limits of POST /events: token buckets per caller (each agent, and the service), in events and bytes per second.

Each caller has two buckets, events and bytes, each holding at most its burst and refilled at its rate. A request is
accepted only when both hold its whole cost (its events and its body bytes), which it then takes; otherwise it is
refused whole (429, Retry-After: when the buckets will hold it) and takes nothing. A cost over a burst can never fit:
413. The web process checks a request twice: before reading the body (one event, Content-Length bytes: a caller
already over its budget costs no body read) and once its events are counted.

Per web process: each process keeps its own buckets (a caller spread over N processes by the load balancer may
send up to N times its budget; size the budgets for one process, or pin agents to processes). The buckets live on
the application (webhooks/state.py) and are bounded: at most `max_callers` callers are tracked, the least recently
seen forgotten first (it comes back with full buckets, which a caller silent for a burst/rate while has anyway).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from app.settings import Settings
from webhooks.auth import Caller
from webhooks.problems import problem

MAX_CALLERS = 16_384
"""Callers tracked per web process (about 100 bytes each)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """Events and bytes per second, and the burst of each (what a full bucket holds)."""

    events_per_second: float
    events_burst: int
    bytes_per_second: float
    bytes_burst: int


@dataclass(frozen=True, slots=True)
class Limited:
    """Why a request does not fit: `budget` ("events" or "bytes") and the setting that sizes it; `retry_after`
    seconds until it would fit, None when it never does (over the burst)."""

    budget: str
    setting: str
    retry_after: float | None

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after or 0)))


def limited_problem(why: Limited, caller: Caller, events: int, size: int) -> web.Response:
    """The answer to a request that does not fit: 429 with Retry-After, or 413 when it never fits."""
    who = "the service token" if caller.service else f"agent {caller.agent_id}"
    if why.retry_after is None:
        return problem(
            413, f"this request ({events} event(s), {size} bytes) is over the {why.budget} burst of {who} ({why.setting}); "
            "send less per request",
        )  # fmt: skip
    return problem(
        429, f"{who} is over its rate of {why.budget} ({why.setting}); nothing was accepted, send again after "
        f"Retry-After seconds", headers={"Retry-After": why.retry_after_header}, budget=why.budget,
    )  # fmt: skip


def budgets(settings: Settings) -> dict[bool, Budget]:
    """{service?: its budget} from the settings."""
    s = settings
    return {
        False: Budget(s.agent_events_per_second, s.agent_events_burst, s.agent_bytes_per_second, s.agent_bytes_burst),
        True: Budget(s.service_events_per_second, s.service_events_burst, s.service_bytes_per_second, s.service_bytes_burst),
    }


class RateLimiter:
    """The buckets of every caller seen lately (see the module docstring)."""

    def __init__(
        self, budget_of: dict[bool, Budget], *, max_callers: int = MAX_CALLERS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget_of = budget_of
        self.max_callers = max_callers
        self.clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [events, bytes, when]

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, caller: Caller, events: int, size: int, *, take: bool) -> Limited | None:
        """None when the caller's buckets hold `events` and `size` bytes (taken with `take`), else why not."""
        budget = self.budget_of[caller.service]
        prefix = "SERVICE" if caller.service else "AGENT"
        if events > budget.events_burst:
            return Limited("events", f"AIWORKER_{prefix}_EVENTS_BURST", None)
        if size > budget.bytes_burst:
            return Limited("bytes", f"AIWORKER_{prefix}_BYTES_BURST", None)
        bucket = self._refilled(caller.key, budget)
        if bucket[0] < events:
            return Limited("events", f"AIWORKER_{prefix}_EVENTS_PER_SECOND", (events - bucket[0]) / budget.events_per_second)
        if bucket[1] < size:
            return Limited("bytes", f"AIWORKER_{prefix}_BYTES_PER_SECOND", (size - bucket[1]) / budget.bytes_per_second)
        if take:
            bucket[0] -= events
            bucket[1] -= size
        return None

    def _refilled(self, key: str, budget: Budget) -> list[float]:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(budget.events_burst), float(budget.bytes_burst), now]
            while len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
            return bucket
        self._buckets.move_to_end(key)
        elapsed = max(0.0, now - bucket[2])
        bucket[0] = min(float(budget.events_burst), bucket[0] + elapsed * budget.events_per_second)
        bucket[1] = min(float(budget.bytes_burst), bucket[1] + elapsed * budget.bytes_per_second)
        bucket[2] = now
        return bucket
