"""SQL literals for the fold's bulk INSERTs, quoted as the driver quotes parameters, faster.

asyncmy escapes a string character by character (about 30 µs for a 1 KB CloudEvent); a chain of
`str.replace` with the table of PyMySQL's `escape_string` does it in C (about 2 µs). Connections are utf8mb4 (db/pool.py), so
a BLOB value that is UTF-8 text (outbox payloads: JSON) goes as a string literal and arrives as the same
bytes; other bytes go as a hex literal. Other types are left to the connection's `literal`.

One quoting rule: backslash escapes. Every connection pins its sql_mode without NO_BACKSLASH_ESCAPES
(db/pool.py), as the driver's own escaping assumes; a session that turned it on anyway is refused here
(QuotingError) rather than written with the wrong rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asyncmy.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES

from db import DatabaseError


class QuotingError(DatabaseError):
    """The session's sql_mode has NO_BACKSLASH_ESCAPES: its string literals would be read back wrong."""


# What the driver escapes (PyMySQL's escape_string table), backslash first: a chain of str.replace runs in C
# and is faster than str.translate with a table, or a regular expression, on kilobytes.
_BACKSLASH_ESCAPES = (("\\", "\\\\"), ("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r"), ("\x1a", "\\Z"), ('"', '\\"'), ("'", "\\'"))


def escape_backslashes(value: str) -> str:
    for char, escaped in _BACKSLASH_ESCAPES:
        if char in value:
            value = value.replace(char, escaped)
    return value


def quoter(cur: Any) -> Callable[[Any], str]:
    """A function quoting one value for the connection of `cur` (its escaping mode checked now)."""
    connection = cur.connection
    literal = connection.literal
    if connection.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        raise QuotingError(
            "this session runs with sql_mode NO_BACKSLASH_ESCAPES, which db/pool.py pins off; do not change "
            "sql_mode on the service's connections"
        )

    def text(value: str) -> str:
        return "'" + escape_backslashes(value) + "'"

    def quote(value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, str):
            return text(value)
        if isinstance(value, bytes):
            try:
                return text(value.decode("utf-8"))
            except UnicodeDecodeError:
                return "X'" + value.hex() + "'"  # a hex literal: any bytes
        return str(literal(value))

    return quote
