"""The sweeper's "now" for an agent (streams/liveness.py): its partition's clock, floored by the wall clock minus the
tolerated fold lag; the wall clock alone only where the partition has no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.liveness import ingest_now

WALL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NAIVE = WALL.replace(tzinfo=None)


def test_a_lagging_partition_keeps_its_own_clock() -> None:
    behind = NAIVE - timedelta(minutes=2)
    assert ingest_now(behind, WALL, 300) == behind


def test_a_partition_silent_longer_than_the_tolerated_lag_follows_the_wall_clock() -> None:
    assert ingest_now(NAIVE - timedelta(minutes=10), WALL, 300) == NAIVE - timedelta(seconds=300)
    assert ingest_now(None, WALL, 300) == NAIVE - timedelta(seconds=300)


def test_a_web_clock_ahead_of_the_worker_is_the_clock() -> None:
    ahead = NAIVE + timedelta(minutes=5)
    assert ingest_now(ahead, WALL, 300) == ahead
