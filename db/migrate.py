"""The migration runner: applies migrations/NNN_name.sql in numeric order, once each.

Applied files are recorded in `schema_migrations` with their sha256; an applied file must never be
edited (add a new numbered file instead). A server-wide named lock makes concurrent runs safe:
the second waits for the first and then finds nothing left to do.

MySQL and MariaDB commit DDL implicitly, so a file cannot be applied atomically: when a statement
fails, the statements before it stay applied and the error says so.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncmy.errors

import migrations
from db import DatabaseError
from db.pool import connect, describe_error, parse_database_url

LOCK_TIMEOUT_SECONDS = 60
_FILE_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)\.sql$")

CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  name VARCHAR(255) NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""
SELECT_APPLIED = "SELECT name, checksum FROM schema_migrations ORDER BY name"
INSERT_APPLIED = "INSERT INTO schema_migrations (name, checksum) VALUES (%s, %s)"
# Silence the notes "database exists" / "table already exists" of the IF [NOT] EXISTS statements.
QUIET_NOTES = "SET SESSION sql_notes = 0"
GET_LOCK = "SELECT GET_LOCK(%s, %s)"
RELEASE_LOCK = "SELECT RELEASE_LOCK(%s)"


class MigrationError(DatabaseError):
    """A migration could not be applied, or the applied ones disagree with the files."""


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    path: Path
    checksum: str

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"))


def default_directory() -> Path:
    return Path(migrations.__file__).parent


def quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def split_statements(sql: str) -> list[str]:
    """Statements of a migration file: a statement ends with a semicolon at the end of a line;
    lines starting with `--` are comments. No DELIMITER support (no triggers or procedures)."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        if stripped.endswith(";"):
            current.append(line.rstrip()[:-1])
            statement = "\n".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        else:
            current.append(line)
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return statements


def discover(directory: Path) -> list[Migration]:
    """The migration files of `directory` in numeric order; a `.sql` file with another name, or
    two files with the same number, is an error rather than something silently skipped."""
    found: dict[int, Migration] = {}
    for path in directory.iterdir():
        if path.suffix != ".sql" or not path.is_file():
            continue
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} is not named like NNN_name.sql ({directory})")
        number = int(match.group(1))
        if number in found:
            raise MigrationError(f"migrations {found[number].name!r} and {path.name!r} have the same number")
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        found[number] = Migration(number, path.name, path, checksum)
    return [found[number] for number in sorted(found)]


def _lock_name(database: str) -> str:
    name = f"aiworker_migrate:{database}"
    if len(name) > 64:  # MySQL limits lock names to 64 characters
        name = "aiworker_migrate:" + hashlib.sha256(database.encode()).hexdigest()[:40]
    return name


async def _execute(conn: Any, sql: str, args: Any = None) -> list[Any]:
    async with conn.cursor() as cur:
        await cur.execute(sql, args)
        rows: list[Any] = list(await cur.fetchall())
    return rows


def _check_applied(applied: dict[str, str], files: list[Migration], directory: Path) -> None:
    by_name = {m.name: m for m in files}
    for name, checksum in applied.items():
        migration = by_name.get(name)
        if migration is None:
            raise MigrationError(
                f"migration {name!r} is recorded as applied but its file is missing from {directory}; "
                "applied migrations must not be removed or renamed"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {name!r} was edited after it was applied (checksum {checksum[:12]}… recorded, "
                f"{migration.checksum[:12]}… on disk); applied migrations must not be edited; "
                "add a new numbered file instead"
            )


async def _apply(conn: Any, migration: Migration, log: Callable[[str], None]) -> None:
    statements = migration.statements()
    log(f"applying {migration.name} ({len(statements)} statements)")
    for index, statement in enumerate(statements, start=1):
        try:
            await _execute(conn, statement)
        except asyncmy.errors.MySQLError as exc:
            await conn.rollback()
            first_line = statement.splitlines()[0]
            partly = (
                f"statements 1-{index - 1} of it were applied and committed (DDL commits implicitly), "
                "so the schema may be partly applied: repair it by hand before running migrate again"
                if index > 1
                else "no statement of it was applied"
            )
            raise MigrationError(
                f"migration {migration.name} failed at statement {index} of {len(statements)} "
                f"({first_line!r}...): {exc}; {partly}"
            ) from exc
    await _execute(conn, INSERT_APPLIED, (migration.name, migration.checksum))
    await conn.commit()


async def migrate(
    url: str,
    directory: Path | None = None,
    *,
    create_database: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Apply the pending migrations of `directory` (default: the `migrations` package) to the
    database of `url`; return the names applied, in order (empty when up to date). `log` hears the progress
    (each file as it is applied); the summary is the caller's to give, from the names returned."""
    directory = directory or default_directory()
    say = log or (lambda _message: None)
    database = parse_database_url(url).database
    files = discover(directory)
    lock = _lock_name(database)
    try:
        conn = await connect(url, database=False)
    except (asyncmy.errors.MySQLError, OSError) as exc:
        raise MigrationError(f"cannot connect to migrate database {database!r}: {describe_error(exc)}") from exc
    try:
        await _execute(conn, QUIET_NOTES)
        rows = await _execute(conn, GET_LOCK, (lock, LOCK_TIMEOUT_SECONDS))
        if not rows or rows[0][0] != 1:
            raise MigrationError(
                f"could not take the migration lock {lock!r} within {LOCK_TIMEOUT_SECONDS} s: "
                "another migrate is running (or stuck) against this server"
            )
        try:
            return await _migrate_locked(conn, database, directory, files, create_database, say)
        finally:
            await _release(conn, lock)
    except asyncmy.errors.MySQLError as exc:
        raise MigrationError(f"migrating database {database!r} failed: {exc}") from exc
    finally:
        await conn.ensure_closed()


async def _release(conn: Any, lock: str) -> None:
    # A lock that cannot be released explicitly (broken connection) is freed when the session ends;
    # failing here must not hide the error that got us here.
    try:
        await _execute(conn, RELEASE_LOCK, (lock,))
    except asyncmy.errors.MySQLError:
        conn.close()


async def _migrate_locked(
    conn: Any,
    database: str,
    directory: Path,
    files: list[Migration],
    create_database: bool,
    log: Callable[[str], None],
) -> list[str]:
    if create_database:
        await _execute(
            conn,
            f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)} "
            "DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        )
    await conn.select_db(database)
    await _execute(conn, CREATE_SCHEMA_MIGRATIONS)
    applied = {name: checksum for name, checksum in await _execute(conn, SELECT_APPLIED)}
    await conn.commit()
    _check_applied(applied, files, directory)
    done: list[str] = []
    for migration in files:
        if migration.name in applied:
            continue
        await _apply(conn, migration, log)
        done.append(migration.name)
    return done


async def create_database(url: str) -> None:
    """CREATE DATABASE IF NOT EXISTS for the database named in `url` (utf8mb4)."""
    await _on_server(url, "CREATE DATABASE IF NOT EXISTS {} DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")


async def drop_database(url: str) -> None:
    """DROP DATABASE IF EXISTS for the database named in `url`."""
    await _on_server(url, "DROP DATABASE IF EXISTS {}")


async def _on_server(url: str, statement: str) -> None:
    """`statement` with `{}` standing for the (quoted) database named in `url`, on a connection to its server."""
    database = parse_database_url(url).database
    try:
        conn = await connect(url, database=False)
    except (asyncmy.errors.MySQLError, OSError) as exc:
        raise MigrationError(f"cannot connect to migrate database {database!r}: {describe_error(exc)}") from exc
    try:
        await _execute(conn, QUIET_NOTES)
        await _execute(conn, statement.format(quote_identifier(database)))
    finally:
        await conn.ensure_closed()
