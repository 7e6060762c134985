"""Statements cut by bytes below the server's max_allowed_packet (db/pool.py `max_packet`, read per connection).

A statement longer than `max_allowed_packet` is refused by the server (error 1153, and MySQL drops the
connection), whatever its rows hold: the fold's multi-row statements (outbox, logs, entity rows, parked events,
processed ids) are therefore cut into chunks whose SQL stays below the limit less STATEMENT_MARGIN (the text
around the rows). Parameters are counted at their worst as literals (every byte of a string may be escaped, bytes
may go as hex). A single row that is bigger than that goes alone; when its statement, measured exactly, is over
the limit it is not sent at all but refused here (PacketTooLargeError, error 1153, a data error: the fold
dead-letters the record): the server would answer it by dropping the connection, which the fold could not tell
from trouble and would retry for ever.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from asyncmy.errors import DataError

T = TypeVar("T")
ER_NET_PACKET_TOO_LARGE = 1153
STATEMENT_MARGIN = 64 * 1024
MIN_BUDGET = 16 * 1024


def literal_bytes(value: Any) -> int:
    """An upper bound of the bytes `value` takes in a statement as a quoted, escaped literal."""
    if value is None:
        return 4
    if isinstance(value, str):
        return 2 * len(value.encode("utf-8", "surrogatepass")) + 2
    if isinstance(value, bytes | bytearray | memoryview):
        return 2 * len(value) + 3
    return 40  # numbers, dates and times, booleans: their literal is short


def text_bytes(parts: Sequence[str]) -> list[int]:
    """The UTF-8 length of each piece of SQL text (without encoding the ASCII ones: most are)."""
    return [len(part) if part.isascii() else len(part.encode("utf-8", "surrogatepass")) for part in parts]


def budget(max_packet: int) -> int:
    """Bytes the rows of one statement may take under `max_packet`."""
    return max(MIN_BUDGET, max_packet - STATEMENT_MARGIN)


class PacketTooLargeError(DataError):
    """One row's statement is over the server's max_allowed_packet: refused before it is sent (see above)."""


def chunks(
    items: Sequence[T], sizes: Sequence[int], limit: int, max_items: int | None = None
) -> Iterator[tuple[Sequence[T], int]]:
    """`items` in order, in runs whose `sizes` add up to at most `limit` (and at most `max_items` long), with
    their size; an item over `limit` is a run of its own."""
    start, total = 0, 0
    for index, size in enumerate(sizes):
        full = max_items is not None and index - start >= max_items
        if index > start and (total + size > limit or full):
            yield items[start:index], total
            start, total = index, 0
        total += size + 1  # the comma between rows
    if start < len(items):
        yield items[start:], total


async def execute(cur: Any, sql: str, params: Sequence[Any] | None, size: int, packet: int) -> None:
    """Run one chunk's statement; one whose rows may be over the packet (`size`, an upper bound) is measured
    exactly first and refused with PacketTooLargeError when it is."""
    if size + len(sql) <= budget(packet):
        await cur.execute(sql, params)
        return
    text = cur.mogrify(sql, params) if params is not None else sql
    length = len(text.encode("utf-8", "surrogatepass"))
    if length + 1 > packet:  # the command byte
        raise PacketTooLargeError(
            ER_NET_PACKET_TOO_LARGE,
            f"a statement of {length} bytes for one row is over the server's max_allowed_packet of {packet}; raise "
            "max_allowed_packet on the server (at least 2 x AIWORKER_MAX_EVENT_BYTES + 192 KiB)",
        )
    await cur.execute(text)
