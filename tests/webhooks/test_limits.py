"""The per-caller token buckets of POST /events: pure, a fake clock."""

from __future__ import annotations

from webhooks.auth import Caller
from webhooks.limits import Budget, Limited, RateLimiter

AGENT = Budget(events_per_second=2.0, events_burst=10, bytes_per_second=100.0, bytes_burst=1000)
SERVICE = Budget(events_per_second=100.0, events_burst=1000, bytes_per_second=10_000.0, bytes_burst=100_000)
A1, A2, SVC = Caller(False, "a1"), Caller(False, "a2"), Caller(True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, max_callers: int = 100) -> RateLimiter:
    return RateLimiter({False: AGENT, True: SERVICE}, max_callers=max_callers, clock=clock)


def test_a_burst_then_the_rate_and_other_callers_are_not_affected() -> None:
    clock = Clock()
    limits = limiter(clock)
    assert limits.check(A1, 10, 500, take=True) is None  # the whole burst at once
    refused = limits.check(A1, 1, 10, take=True)
    assert refused == Limited("events", "AIWORKER_AGENT_EVENTS_PER_SECOND", 0.5)
    assert refused.retry_after_header == "1"
    assert limits.check(A2, 10, 10, take=True) is None  # another agent has its own buckets
    assert limits.check(SVC, 1000, 10, take=True) is None  # and the service its own, bigger budget
    clock.now += 0.5
    assert limits.check(A1, 1, 10, take=False) is None  # refilled at 2 events/s; a check alone takes nothing
    assert limits.check(A1, 1, 10, take=True) is None
    assert limits.check(A1, 1, 10, take=True) is not None
    clock.now += 3600
    assert limits.check(A1, 10, 1000, take=True) is None  # never more than the burst, however long the silence
    assert limits.check(A1, 1, 0, take=True) is not None


def test_a_refused_request_takes_nothing_and_bytes_count_too() -> None:
    clock = Clock()
    limits = limiter(clock)
    assert limits.check(A1, 1, 900, take=True) is None
    why = limits.check(A1, 1, 300, take=True)
    assert why is not None and (why.budget, why.setting) == ("bytes", "AIWORKER_AGENT_BYTES_PER_SECOND")
    assert why.retry_after == 2.0 and why.retry_after_header == "2"  # 200 bytes missing at 100 bytes/s
    assert limits.check(A1, 9, 100, take=True) is None  # the refused request took no event and no byte


def test_a_request_over_the_burst_never_fits() -> None:
    limits = limiter(Clock())
    assert limits.check(A1, 11, 0, take=False) == Limited("events", "AIWORKER_AGENT_EVENTS_BURST", None)
    assert limits.check(SVC, 1, 100_001, take=False) == Limited("bytes", "AIWORKER_SERVICE_BYTES_BURST", None)


def test_the_buckets_are_bounded_and_the_least_recently_seen_caller_goes_first() -> None:
    clock = Clock()
    limits = limiter(clock, max_callers=3)
    for number in range(3):
        assert limits.check(Caller(False, f"x{number}"), 10, 0, take=True) is None
    assert limits.check(Caller(False, "x0"), 1, 0, take=True) is not None  # x0 seen again: now the most recent
    assert limits.check(Caller(False, "x3"), 10, 0, take=True) is None  # a fourth caller: x1 is forgotten
    assert len(limits) == 3
    assert limits.check(Caller(False, "x0"), 1, 0, take=False) is not None  # still tracked, still empty
    assert limits.check(Caller(False, "x1"), 10, 0, take=False) is None  # forgotten: full buckets again
