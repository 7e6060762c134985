"""asyncmy connection pools built from AIWORKER_DATABASE_URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncmy

from db import DatabaseError


class DatabaseUrlError(DatabaseError, ValueError):
    """The database URL is not of the form mysql://user:pass@host:port/db."""


@dataclass(frozen=True, slots=True)
class DatabaseAddress:
    host: str
    port: int
    user: str
    password: str
    database: str

    def with_database(self, database: str) -> DatabaseAddress:
        return DatabaseAddress(self.host, self.port, self.user, self.password, database)

    def url(self) -> str:
        auth = self.user if not self.password else f"{self.user}:{self.password}"
        return f"mysql://{auth}@{self.host}:{self.port}/{self.database}"


def parse_database_url(url: str) -> DatabaseAddress:
    """Split mysql://user:pass@host:port/db into its parts, or say what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+asyncmy"):
        raise DatabaseUrlError(f"database URL {url!r} must start with mysql:// (e.g. mysql://root@127.0.0.1:3306/aiworker)")
    database = parts.path.lstrip("/")
    if not database or "/" in database:
        raise DatabaseUrlError(f"database URL {url!r} must name one database after the host, e.g. /aiworker")
    try:
        port = parts.port or 3306
    except ValueError as exc:
        raise DatabaseUrlError(f"database URL {url!r} has an invalid port") from exc
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
        "init_command": "SET time_zone = '+00:00'",
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
