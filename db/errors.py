"""The error policy of every loop that consumes or retries (fold, router, outbox relay, sweeper, spool drain,
k8s-watch): one place decides what a failure means. In `db` because it is the package every other one imports.

Three kinds of failure:

- **Trouble** (`transient`): a retry may cure it. The connection was lost or refused, the server went away or
  shuts down, a deadlock (1213), a lock wait timeout (1205), a killed or interrupted query, a read-only server
  during a failover; a broker that is unavailable or not the leader (aiokafka's `retriable` errors), a socket
  error or a timeout. The loop retries the same work with backoff (`Backoff`); the position waits.
- **Data** (`refused_by_data`): the server refused the values written (1062 duplicate, 1406 too long, 1292, 1366,
  1452, ...), whatever class the driver gives them. The same record fails the same way every time: it goes to the
  dlq with the reason and its source position, and its batch-mates are applied.
- **Anything else** (a `KeyError`, a `UnicodeEncodeError`, a `RecursionError`, an unknown server error) is
  *suspect*: the record's values took the code somewhere it does not work. It is the record's property (dlq)
  unless it is the code's: a failure that hits every record alike.

How the code is told from the data (`Suspects`): each record that fails alone with a suspect error counts
towards a run of failures with the same signature (the exception class, and the server's error number for a
server error); a record applied resets the run, across batches and partitions. A record whose run is shorter
than `HOLD_AFTER` (3) goes to the dlq. When the run reaches `HOLD_AFTER`, the failure is the code's (every
record hits it alike: a broken migration, a bug on a path every record takes): the partition is held where it
is (nothing more is dead-lettered, the position does not move), the loop retries the batch with backoff, and the
worker is unhealthy (`Health.held_since`) until a record applies again. So a code failure sends at most
`HOLD_AFTER - 1` records to the dlq before the hold (`replay` re-drives them after the fix), and a poison record
among good ones (which apply and reset the run) always reaches the dlq. Known data errors never count towards a
run: they are refused values. A bug on the path of one event type, amid other traffic that applies, looks like
data: those records reach the dlq one by one (the dlq counter shows it).

No exception ends a loop: what escapes a unit of work is trouble (retried) or a hold (retried, unhealthy).
Only cancellation (shutdown) ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiokafka.errors import KafkaError
from asyncmy.errors import DataError, IntegrityError, InterfaceError, MySQLError

from db import DatabaseError
from db.pool import describe_error

log = logging.getLogger(__name__)
T = TypeVar("T")

# Server errors that a record's own values cause, whatever class the driver gives them: asyncmy raises some as
# OperationalError (e.g. 1292 for a TIMESTAMP out of range), which would otherwise be retried forever. 1153: one
# row over max_allowed_packet (db/packets.py refuses such a statement before sending it, as a DataError).
DATA_ERRNOS = frozenset({
    1048, 1062, 1153, 1216, 1217, 1264, 1265, 1292, 1300, 1366, 1367, 1406, 1411, 1451, 1452, 1690, 3140, 3819, 4025,
})  # fmt: skip
# Server (and client library) errors a retry may cure: lock wait timeout, deadlock, too many connections, shutdown,
# query interrupted or killed, net read/write timeouts, read-only during a failover, statement timeouts, and every
# client-side error (2000-2999: can't connect, server has gone away, lost connection, ...).
TRANSIENT_ERRNOS = frozenset({
    1040, 1053, 1158, 1159, 1160, 1161, 1205, 1213, 1290, 1317, 1792, 1836, 1927, 1969, 3024, 4031,
})  # fmt: skip
HOLD_AFTER = 3
"""Records failing alone, in a row, with the same suspect error, that make the failure the code's (see above)."""


def errno(exc: BaseException) -> int | None:
    """The server's error number of a driver error, else None."""
    if isinstance(exc, MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def refused_by_data(exc: BaseException) -> bool:
    """Whether the server refused the change because of the values written (not a transient failure)."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    return errno(exc) in DATA_ERRNOS


def transient(exc: BaseException, *also: type[BaseException]) -> bool:
    """Whether a retry may cure `exc` (see the module docstring); `also`: a loop's own transient classes."""
    if also and isinstance(exc, also):
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False))
    if isinstance(exc, InterfaceError):  # the connection is closed or unusable
        return True
    number = errno(exc)
    if number is not None:
        return number in TRANSIENT_ERRNOS or 2000 <= number < 3000
    return isinstance(exc, OSError | ConnectionError | TimeoutError | EOFError)


def signature(exc: BaseException) -> str:
    """What makes two failures alike: the exception class, and the server's error number."""
    number = errno(exc)
    return type(exc).__name__ if number is None else f"{type(exc).__name__}({number})"


def describe(exc: BaseException) -> str:
    """A failure in words, for a dlq reason or a log line: a database or network error by its class and number only
    (`describe_error`: the driver's text may quote a statement, and so a secret), anything else with its message."""
    if isinstance(exc, MySQLError | OSError):
        return describe_error(exc)
    text = f"{type(exc).__name__}: {str(exc) or repr(exc)}"[:1000]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate in a message stays writable


class HeldError(DatabaseError):
    """A loop holds its position: the same failure hits every record alike (the code, not the data).
    The loop retries with backoff and reports itself unhealthy until the work succeeds."""


@dataclass(frozen=True, slots=True)
class Hold:
    since: float
    """When the loop first failed this way (time.time())."""
    reason: str


class Health:
    """What the worker's loops report: which of them are held (or stuck in trouble), since when and why.

    One object per process, owned by the worker (`FoldRuntime.health`), read by its health endpoint."""

    def __init__(self) -> None:
        self._held: dict[str, Hold] = {}
        self._troubled: dict[str, Hold] = {}

    def hold(self, loop: str, reason: str) -> None:
        before = self._held.get(loop)
        self._held[loop] = Hold(before.since if before else time.time(), reason)

    def trouble(self, loop: str, reason: str) -> None:
        """`loop` retries transient trouble (the database or the broker): waiting, not unhealthy by itself."""
        before = self._troubled.get(loop)
        self._troubled[loop] = Hold(before.since if before else time.time(), reason)

    def failed(self, loop: str, exc: BaseException, retry_in: float, *also: type[BaseException]) -> None:
        """Record and log a failure of `loop` that it retries in `retry_in` s: trouble, or a hold (see above)."""
        if transient(exc, *also):
            self.trouble(loop, describe(exc))
            log.warning("%s: %s; retrying in %.1fs", loop, describe(exc), retry_in)
        else:
            self.hold(loop, describe(exc))
            log.error("%s held: %s; retrying in %.1fs", loop, describe(exc), retry_in, exc_info=not isinstance(exc, HeldError))

    def ok(self, loop: str) -> None:
        """`loop` made progress: neither held nor in trouble."""
        self._held.pop(loop, None)
        self._troubled.pop(loop, None)

    @property
    def healthy(self) -> bool:
        return not self._held

    @property
    def held_since(self) -> float | None:
        """Since when the longest-held loop is held, or None."""
        return min((h.since for h in self._held.values()), default=None)

    def held(self) -> dict[str, Hold]:
        return dict(self._held)

    def troubled(self) -> dict[str, Hold]:
        return dict(self._troubled)


class Suspects:
    """The run of records that failed alone with the same suspect error (see the module docstring)."""

    def __init__(self, hold_after: int = HOLD_AFTER) -> None:
        self.hold_after = hold_after
        self.run = 0
        self.kind = ""

    def failed(self, exc: BaseException) -> bool:
        """Count a record that failed alone; True when the failure is the code's (hold), False: dead-letter it."""
        kind = signature(exc)
        self.run = self.run + 1 if kind == self.kind else 1
        self.kind = kind
        return self.run >= self.hold_after

    def applied(self) -> None:
        self.run, self.kind = 0, ""


class Backoff:
    """Exponential backoff with jitter, reset on success."""

    def __init__(self, first: float = 0.2, most: float = 10.0) -> None:
        self.first, self.most = first, most
        self.next = first

    def reset(self) -> None:
        self.next = self.first

    def delay(self) -> float:
        seconds = self.next * (0.5 + random.random() / 2)
        self.next = min(self.next * 2, self.most)
        return seconds

    async def sleep(self, stopping: asyncio.Event | None = None) -> None:
        seconds = self.delay()
        if stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=seconds)


async def until_done(
    loop: str, attempt: Callable[[], Awaitable[T]], health: Health, *, stopping: asyncio.Event | None = None,
    backoff: Backoff | None = None, also: tuple[type[BaseException], ...] = (),
    on_failure: Callable[[BaseException], None] | None = None,
) -> T:  # fmt: skip
    """`attempt` until it succeeds. Trouble waits with backoff; any other failure holds `loop` (unhealthy) and is
    retried with backoff too: nothing but cancellation ends it. With `stopping` set, a failure raises
    CancelledError instead (the work is abandoned unacknowledged, for the next owner)."""
    backoff = backoff or Backoff()
    while True:
        try:
            result = await attempt()
        except Exception as exc:
            if stopping is not None and stopping.is_set():
                raise asyncio.CancelledError(f"{loop} abandoned at shutdown") from exc
            health.failed(loop, exc, backoff.next, *also)
            if on_failure is not None:
                on_failure(exc)
            await backoff.sleep(stopping)
            continue
        health.ok(loop)
        return result
