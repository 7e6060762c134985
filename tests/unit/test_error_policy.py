"""The one error policy (db/errors.py): what is trouble, what is data, and when a run of failures is the code's."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, NotLeaderForPartitionError
from asyncmy.errors import IntegrityError, InterfaceError, OperationalError, ProgrammingError

from db.errors import HOLD_AFTER, Backoff, Health, HeldError, Suspects, describe, refused_by_data, transient, until_done


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError(1213, "Deadlock found when trying to get lock"),
        OperationalError(1205, "Lock wait timeout exceeded"),
        OperationalError(2013, "Lost connection to MySQL server during query"),
        OperationalError(2006, "MySQL server has gone away"),
        OperationalError(2003, "Can't connect to MySQL server"),
        OperationalError(1927, "Connection was killed"),
        InterfaceError(0, "Not connected"),
        KafkaConnectionError("broker unavailable"),
        NotLeaderForPartitionError(),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
def test_trouble_is_retried(exc: BaseException) -> None:
    assert transient(exc)
    assert not refused_by_data(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ProgrammingError(1054, "Unknown column 'x' in 'field list'"),
        OperationalError(1292, "Incorrect datetime value"),
        IntegrityError(1062, "Duplicate entry"),
        MessageSizeTooLargeError(),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        KeyError("title"),
        RecursionError(),
    ],
)
def test_anything_else_is_not_trouble(exc: BaseException) -> None:
    assert not transient(exc)


def test_a_run_of_alike_failures_is_the_codes_and_an_applied_record_ends_it() -> None:
    suspects = Suspects()
    assert [suspects.failed(KeyError("a")) for _ in range(HOLD_AFTER)] == [False] * (HOLD_AFTER - 1) + [True]
    suspects.applied()
    assert not suspects.failed(KeyError("b"))
    # failures of another kind start a run of their own: poison records of different kinds are data
    assert not any(suspects.failed(exc) for exc in (ValueError(), KeyError("c"), ValueError(), KeyError("d")))
    # one server error number is one kind
    suspects.applied()
    outcomes = [suspects.failed(ProgrammingError(n, "x")) for n in (1054, 1146, 1054, 1146)]
    assert not any(outcomes)


def test_describe_keeps_a_lone_surrogate_writable() -> None:
    text = describe(ValueError("bad \ud800 title"))
    assert text.encode("utf-8") and text.startswith("ValueError: bad ")


async def test_until_done_holds_on_a_code_failure_and_recovers_without_ending() -> None:
    health, attempts = Health(), []

    async def attempt() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OperationalError(1213, "Deadlock")
        if len(attempts) < 4:
            raise HeldError("every record fails alike")
        return "done"

    seen: list[tuple[bool, bool]] = []

    async def watch() -> None:
        while True:
            seen.append((bool(health.troubled()), health.held_since is not None))
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    assert await until_done("fold", attempt, health, backoff=Backoff(0.001, 0.002)) == "done"
    watcher.cancel()
    assert len(attempts) == 4
    assert (True, False) in seen and (True, True) in seen  # trouble first, then held (still troubled: not cleared)
    assert health.healthy and health.held_since is None and not health.troubled()


def test_the_worker_healthz_fails_while_a_loop_is_held_and_says_since_when() -> None:
    from app.settings import load_settings
    from streams.monitor import FoldMonitor

    health = Health()
    monitor = FoldMonitor(load_settings(), {"fold": "w", "route": "w.router"}, health)
    assert monitor.health()[0]
    health.trouble("fold", "OperationalError: (2013, 'Lost connection')")
    assert monitor.health()[0]  # trouble is waited out: not unhealthy by itself
    health.hold("fold", "HeldError: every record fails alike")
    healthy, checks = monitor.health()
    assert not healthy and "held since" in checks["held: fold"] and "every record fails alike" in checks["held: fold"]
    health.ok("fold")
    assert monitor.health()[0]
