"""asyncmy connection pools built from AIWORKER_DATABASE_URL, every connection with the same pinned session.

Every connection (pool or single) runs SESSION_INIT when it connects, whatever the server's defaults are:
- `time_zone = '+00:00'`: TIMESTAMP columns are read and written in UTC.
- `sql_mode = SQL_MODE`: strict (a value too long or out of range for its column is an error, never a
  silent truncation or a zero date), and without NO_BACKSLASH_ESCAPES, so that backslash escaping is the one
  quoting rule of the driver and of db/literals.py.
- `REPEATABLE READ`: parking relies on it (streams/parking.py): the fold's `SELECT ... FOR UPDATE` of a
  missing row takes a gap lock on its id, so a concurrent creator of that row waits; under READ COMMITTED
  there are no gap locks and an event could park for a row created meanwhile, waiting until the dlq.
  `SET SESSION TRANSACTION ISOLATION LEVEL` is the one spelling MySQL 8 and MariaDB 10.11 share (the
  variable is `transaction_isolation` on one and `tx_isolation` on the other).

`max_packet(cur)` is the server's `max_allowed_packet` for the connection of `cur`, read once per connection
(db/packets.py chunks the fold's statements below it).
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncmy
from asyncmy.errors import MySQLError

from db import DatabaseError

SQL_MODE = ",".join((
    "STRICT_TRANS_TABLES", "STRICT_ALL_TABLES", "NO_ZERO_IN_DATE", "NO_ZERO_DATE", "ERROR_FOR_DIVISION_BY_ZERO",
    "NO_ENGINE_SUBSTITUTION",
))  # fmt: skip
ISOLATION = "REPEATABLE READ"
# Two statements in one COM_QUERY (asyncmy always connects with CLIENT_MULTI_STATEMENTS and reads every result
# before the next command, as PyMySQL does): an error in either fails the connect.
SESSION_INIT = f"SET time_zone = '+00:00', sql_mode = '{SQL_MODE}'; SET SESSION TRANSACTION ISOLATION LEVEL {ISOLATION}"
DEFAULT_MAX_PACKET = 4 * 1024 * 1024  # MySQL's smallest default (5.7); only when the server does not say
_MAX_PACKET_ATTRIBUTE = "aiworker_max_allowed_packet"


class DatabaseUrlError(DatabaseError, ValueError):
    """The database URL is not of the form mysql://user:pass@host:port/db."""


@dataclass(frozen=True, slots=True)
class DatabaseAddress:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

    def with_database(self, database: str) -> DatabaseAddress:
        return DatabaseAddress(self.host, self.port, self.user, self.password, database)

    def url(self) -> str:
        auth = self.user if not self.password else f"{self.user}:{self.password}"
        return f"mysql://{auth}@{self.host}:{self.port}/{self.database}"


def redact_database_url(url: str) -> str:
    """The URL as messages may show it: everything between the user's name and the last '@' is replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>"  # no scheme: cannot tell a password from a host, so show nothing
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def parse_database_url(url: str) -> DatabaseAddress:
    """Split mysql://user:pass@host:port/db into its parts, or say what is wrong (never showing the password)."""
    shown = redact_database_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise DatabaseUrlError(f"database URL {shown!r} is not a URL, e.g. mysql://root@127.0.0.1:3306/aiworker") from None
    if parts.scheme not in ("mysql", "mariadb", "mysql+asyncmy"):
        raise DatabaseUrlError(f"database URL {shown!r} must start with mysql:// (e.g. mysql://root@127.0.0.1:3306/aiworker)")
    database = parts.path.lstrip("/")
    if not database or "/" in database:
        raise DatabaseUrlError(f"database URL {shown!r} must name one database after the host, e.g. /aiworker")
    try:
        port = parts.port or 3306
    except ValueError:
        raise DatabaseUrlError(f"database URL {shown!r} has an invalid port") from None
    return DatabaseAddress(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=unquote(database),
    )


def connect_kwargs(address: DatabaseAddress, *, database: bool = True) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "host": address.host,
        "port": address.port,
        "user": address.user,
        "password": address.password,
        "charset": "utf8mb4",
        "autocommit": False,
        "init_command": SESSION_INIT,
    }
    if database:
        kwargs["db"] = address.database
    return kwargs


async def create_pool(url: str, *, minsize: int = 1, maxsize: int = 10) -> Any:
    """An asyncmy pool on the database in `url`; every connection uses UTC and no autocommit."""
    address = parse_database_url(url)
    return await asyncmy.create_pool(minsize=minsize, maxsize=maxsize, pool_recycle=3600, **connect_kwargs(address))


async def connect(url: str, *, database: bool = True) -> Any:
    """One connection (for migrations and admin work); `database=False` connects to the server only."""
    return await asyncmy.connect(**connect_kwargs(parse_database_url(url), database=database))


async def max_packet(cur: Any) -> int:
    """`max_allowed_packet` of the server for the connection of `cur`: read on the first call, then remembered
    on the connection itself (a connection of a pool lives for many transactions)."""
    connection = cur.connection
    known = getattr(connection, _MAX_PACKET_ATTRIBUTE, None)
    if isinstance(known, int):
        return known
    await cur.execute("SELECT @@SESSION.max_allowed_packet AS max_allowed_packet")
    row = await cur.fetchone()
    value = row["max_allowed_packet"] if isinstance(row, dict) else row[0] if row else None
    limit = int(value) if value else DEFAULT_MAX_PACKET
    setattr(connection, _MAX_PACKET_ATTRIBUTE, limit)
    return limit


# MySQL error numbers an operator meets at start-up, with what to do (https://mariadb.com/kb/en/mariadb-error-codes/).
_HINTS = {
    1044: "access denied to the database: GRANT the user of AIWORKER_DATABASE_URL its rights",
    1045: "access denied: check the user and password of AIWORKER_DATABASE_URL",
    1698: "access denied: check the user and password of AIWORKER_DATABASE_URL",
    1049: "unknown database: create it or fix AIWORKER_DATABASE_URL",
    2003: "cannot connect to the server: is it up and is AIWORKER_DATABASE_URL's host:port right?",
    2005: "unknown host in AIWORKER_DATABASE_URL",
    2013: "the server closed the connection",
}


def describe_error(exc: BaseException) -> str:
    """A database or network error as logs and answers may show it: its class, error number and what it means.

    Never the driver's text: that may quote the URL, the user or a statement (and so a password or a secret)."""
    name = type(exc).__name__
    if isinstance(exc, MySQLError) and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
        return f"{name} {code}" + (f" ({_HINTS[code]})" if code in _HINTS else "")
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{name} {errno.errorcode.get(exc.errno, exc.errno)}"
    return name


async def ping(pool: Any, timeout: float = 2.0) -> str | None:
    """Why the database does not answer `SELECT 1` through `pool` within `timeout` seconds, or None when it does."""
    try:
        async with asyncio.timeout(timeout), pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()
            await conn.rollback()
    except (MySQLError, OSError, TimeoutError) as exc:
        return f"database unreachable: {describe_error(exc)}"
    return None
