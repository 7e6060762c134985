"""SQL of the fold: input positions, event-id de-duplication, entity rows, outbox, logs.

Every function takes a cursor inside the fold's open transaction; none commits.
Table and column names come from the fixed TABLES below, never from input. Multi-row statements are cut by bytes
below the server's max_allowed_packet (db/packets.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from db.literals import quoter
from db.packets import budget, chunks, execute, literal_bytes, text_bytes
from db.pool import max_packet

JSON_COLUMNS: dict[str, frozenset[str]] = {
    "projects": frozenset({"env_vars", "mcp_tools", "mcp_permissions"}),
    "agents": frozenset({"capabilities"}),
    "tasks": frozenset(),
    "task_questions": frozenset(),
    "task_groups": frozenset({"task_ids"}),
    "deployments": frozenset(),
}
TABLES = frozenset(JSON_COLUMNS)
# BOOLEAN is TINYINT(1) in MySQL and MariaDB: read back as 0/1, decoded to bool so a row looks the same
# whether it was just made in memory or loaded (transition payloads must not depend on which).
BOOL_COLUMNS: dict[str, frozenset[str]] = {"task_groups": frozenset({"production_rollback_available"})}
CHILD_KEYS = frozenset({("task_questions", "task_id")})

Position = tuple[str, int]
# "Insert unless the key exists" without INSERT IGNORE, which also turns every other error into a warning (a value
# truncated to its column, a NULL into NOT NULL): the existing row is kept, strict mode refuses bad values.
KEEP_EXISTING = " ON DUPLICATE KEY UPDATE `{0}` = `{0}`"
# Rows named by their whole primary key are read and written through it, one point each: on a small table the
# optimizer prefers a scan of the key's prefix (or of the table), which locks (next-key, in REPEATABLE READ) the rows
# of other workers too: two workers folding disjoint partitions then wait for each other, and deadlock (1213).
BY_KEY = " FORCE INDEX (PRIMARY)"


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")


def _placeholders(count: int, width: int = 1) -> str:
    group = "(" + ", ".join(["%s"] * width) + ")" if width > 1 else "%s"
    return ", ".join([group] * count)


def encode_value(table: str, column: str, value: Any) -> Any:
    if column in JSON_COLUMNS[table] and value is not None:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def decode_row(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for column in BOOL_COLUMNS.get(table, ()):
        if out.get(column) is not None:
            out[column] = bool(out[column])
    for column in JSON_COLUMNS[table]:
        value = out.get(column)
        if isinstance(value, (str, bytes)):
            out[column] = json.loads(value)
    return out


async def forget_positions(cur: Any) -> int:
    """Delete every stored input position, the fold's and the log lines' (they name offsets of a broker that is
    gone: `dev`'s in-memory one); return how many there were."""
    forgotten = 0
    for table in ("fold_positions", "log_positions"):
        await cur.execute(f"DELETE FROM {table}")
        forgotten += int(cur.rowcount or 0)
    return forgotten


async def lock_positions(cur: Any, consumer: str, positions: Iterable[Position]) -> dict[Position, int]:
    """Lock the stored next offsets of these partitions (creating them at 0) and return them."""
    wanted = sorted(set(positions))
    if not wanted:
        return {}
    params: list[Any] = []
    for topic, partition in wanted:
        params += [consumer, topic, partition]
    await cur.execute(
        "INSERT INTO fold_positions (consumer, topic, `partition`, next_offset) VALUES "
        + ", ".join(["(%s, %s, %s, 0)"] * len(wanted))
        + KEEP_EXISTING.format("next_offset"),
        params,
    )
    where = " OR ".join(["(topic = %s AND `partition` = %s)"] * len(wanted))
    await cur.execute(
        f"SELECT topic, `partition`, next_offset FROM fold_positions{BY_KEY} WHERE consumer = %s AND ({where}) FOR UPDATE",
        [consumer, *[v for tp in wanted for v in tp]],
    )
    return {(row["topic"], int(row["partition"])): int(row["next_offset"]) for row in await cur.fetchall()}


async def _advance(cur: Any, table: str, columns: Sequence[str], positions: Mapping[Any, int], stamp: str = "") -> None:
    """Raise the stored next_offset of these keys (tuples of `columns`) where it is lower, in one statement
    (a round trip per key would cost the fold more than its rows: a batch of log records names many agents)."""
    if not positions:
        return
    match = " AND ".join(f"`{c}` = %s" for c in columns)
    items = sorted(positions.items())
    cases = " ".join([f"WHEN {match} THEN %s"] * len(items))
    where = " OR ".join([f"({match} AND next_offset < %s)"] * len(items))
    params = [v for key, offset in items for v in (*key, offset)] * 2
    await cur.execute(f"UPDATE {table}{BY_KEY} SET next_offset = CASE {cases} END{stamp} WHERE {where}", params)


async def save_positions(cur: Any, consumer: str, positions: Mapping[Position, int]) -> None:
    """Advance the stored next offsets of these partitions (never backwards)."""
    keyed = {(consumer, topic, partition): offset for (topic, partition), offset in positions.items()}
    await _advance(cur, "fold_positions", ("consumer", "topic", "partition"), keyed, ", updated_at = CURRENT_TIMESTAMP(3)")


async def seen_event_ids(cur: Any, event_ids: Sequence[str]) -> set[str]:
    if not event_ids:
        return set()
    await cur.execute(
        f"SELECT event_id FROM processed_events WHERE event_id IN ({_placeholders(len(event_ids))})", list(event_ids)
    )
    return {row["event_id"] for row in await cur.fetchall()}


async def record_event_ids(cur: Any, rows: Sequence[tuple[str, str, int, int, str]]) -> None:
    """Remember (event_id, topic, partition, offset, outcome) of every applied or refused event."""
    if not rows:
        return
    packet = await max_packet(cur)
    for chunk, size in chunks(rows, [sum(literal_bytes(v) for v in row) for row in rows], budget(packet)):
        sql = "INSERT INTO processed_events (event_id, topic, `partition`, `offset`, outcome) VALUES "
        await execute(cur, sql + _placeholders(len(chunk), 5), [v for row in chunk for v in row], size, packet)


async def forget_refused(cur: Any, event_ids: Sequence[str]) -> int:
    """Forget refused events so that they are folded again (a re-drive of the dlq after a fix)."""
    if not event_ids:
        return 0
    await cur.execute(
        f"DELETE FROM processed_events WHERE outcome = 'refused' AND event_id IN ({_placeholders(len(event_ids))})",
        list(event_ids),
    )
    return int(cur.rowcount)


async def load_rows(cur: Any, table: str, ids: Sequence[str], *, share: bool = False) -> list[dict[str, Any]]:
    """The rows of `table` with these ids, locked for the transaction: for update, or (`share`) in share mode, which
    other transactions' share locks do not wait for (both also lock the gap of an id that has no row: nobody inserts
    it until the transaction ends). `LOCK IN SHARE MODE` is what MariaDB and MySQL 8 both take."""
    _check_table(table)
    if not ids:
        return []
    lock = "LOCK IN SHARE MODE" if share else "FOR UPDATE"
    await cur.execute(f"SELECT * FROM {table}{BY_KEY} WHERE id IN ({_placeholders(len(ids))}) {lock}", list(ids))
    return [decode_row(table, row) for row in await cur.fetchall()]


async def load_children(cur: Any, table: str, column: str, parent_id: str) -> list[dict[str, Any]]:
    """The rows of `table` whose `column` (a fixed foreign key column) is `parent_id`, locked."""
    _check_table(table)
    if (table, column) not in CHILD_KEYS:
        raise ValueError(f"{table}.{column} is not a foreign key the fold loads by")
    await cur.execute(f"SELECT * FROM {table} WHERE `{column}` = %s FOR UPDATE", [parent_id])
    return [decode_row(table, row) for row in await cur.fetchall()]


async def insert_rows(cur: Any, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new rows (all with the same columns) in one statement."""
    _check_table(table)
    if not rows:
        return
    columns = list(rows[0])
    names = ", ".join(f"`{c}`" for c in columns)
    values = [[encode_value(table, c, row[c]) for c in columns] for row in rows]
    packet = await max_packet(cur)
    for chunk, size in chunks(values, [sum(literal_bytes(v) for v in row) for row in values], budget(packet)):
        sql = f"INSERT INTO {table} ({names}) VALUES {_placeholders(len(chunk), len(columns))}"
        await execute(cur, sql, [v for row in chunk for v in row], size, packet)


UPDATE_ROWS_PER_STATEMENT = 200


async def update_rows(cur: Any, table: str, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Write changed columns of existing rows: one statement per set of changed columns (and per 200 rows, and
    below max_allowed_packet).

    `UPDATE t SET c = CASE id WHEN .. THEN .. END, .. WHERE id IN (..)` is plain SQL on MySQL 8 and MariaDB
    alike, and costs one round trip instead of one per row (the fold's writes are mostly such updates).
    """
    _check_table(table)
    groups: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]] = {}
    for row_id, columns in changes:
        if columns:
            encoded = {c: encode_value(table, c, v) for c, v in columns.items()}
            groups.setdefault(tuple(columns), []).append((row_id, encoded))
    packet = await max_packet(cur) if groups else 0
    for names, rows in groups.items():
        sizes = [(len(names) + 1) * literal_bytes(i) + sum(literal_bytes(c[n]) + 16 for n in names) for i, c in rows]
        for chunk, size in chunks(rows, sizes, budget(packet), UPDATE_ROWS_PER_STATEMENT):
            cases = " ".join(["WHEN %s THEN %s"] * len(chunk))
            sets = ", ".join(f"`{c}` = CASE id {cases} END" for c in names)
            params: list[Any] = [v for c in names for row_id, columns in chunk for v in (row_id, columns[c])]
            params += [row_id for row_id, _ in chunk]
            sql = f"UPDATE {table}{BY_KEY} SET {sets} WHERE id IN ({_placeholders(len(chunk))})"
            await execute(cur, sql, params, size, packet)


async def insert_outbox(cur: Any, rows: Sequence[tuple[str, str, str, bytes]]) -> None:
    """Queue (event_id, topic, key, payload) for the relay; an id already queued is kept once."""
    if rows:
        quote = quoter(cur)  # the payloads are kilobytes: quoted by db/literals.py, not per parameter by the driver
        values = [f"({quote(e)},{quote(t)},{quote(k)},{quote(p)})" for e, t, k, p in rows]
        packet = await max_packet(cur)
        for chunk, size in chunks(values, text_bytes(values), budget(packet)):
            sql = f"INSERT INTO outbox (event_id, topic, message_key, payload) VALUES {','.join(chunk)}"
            await execute(cur, sql + KEEP_EXISTING.format("event_id"), None, size, packet)


LOG_ROWS_PER_STATEMENT = 1000


async def insert_logs(cur: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert agent_logs rows (agent_id, task_id, level, message, metadata, created_at, event_id), many per statement;
    a line whose (agent, event id) is stored already is left as it is (the same `log` event sent twice).

    The VALUES text is built here (db/literals.py), each repeated value (agent, task, level, second) quoted once:
    at tens of thousands of lines per second the driver's per-parameter path costs more than the database.
    """
    quote = quoter(cur)
    quoted: dict[Any, str] = {}

    def once(value: Any) -> str:
        text = quoted.get(value)
        if text is None:
            text = quoted[value] = quote(value)
        return text

    values = [
        f"({once(agent)},{once(task)},{once(level)},{quote(message)},{quote(meta)},{once(created)},{quote(event_id)})"
        for agent, task, level, message, meta, created, event_id in rows
    ]
    packet = await max_packet(cur) if values else 0
    for chunk, size in chunks(values, text_bytes(values), budget(packet), LOG_ROWS_PER_STATEMENT):
        sql = (
            "INSERT INTO agent_logs (agent_id, task_id, level, message, metadata, created_at, event_id) "
            f"VALUES {','.join(chunk)} ON DUPLICATE KEY UPDATE event_id = event_id"  # not IGNORE: that would hide truncation
        )
        await execute(cur, sql, None, size, packet)


async def lock_log_positions(cur: Any, keys: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str, int], int]:
    """Lock the next offsets of log records per (agent_id, topic, partition), creating them at 0."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    params = [v for key in wanted for v in key]
    await cur.execute(
        "INSERT INTO log_positions (agent_id, topic, `partition`, next_offset) VALUES "
        + ", ".join(["(%s, %s, %s, 0)"] * len(wanted))
        + KEEP_EXISTING.format("next_offset"),
        params,
    )
    where = " OR ".join(["(agent_id = %s AND topic = %s AND `partition` = %s)"] * len(wanted))
    sql = f"SELECT agent_id, topic, `partition`, next_offset FROM log_positions{BY_KEY} WHERE {where} FOR UPDATE"
    await cur.execute(sql, params)
    return {(r["agent_id"], r["topic"], int(r["partition"])): int(r["next_offset"]) for r in await cur.fetchall()}


async def save_log_positions(cur: Any, positions: Mapping[tuple[str, str, int], int]) -> None:
    """Advance the next offsets of log records per (agent_id, topic, partition) (never backwards)."""
    await _advance(cur, "log_positions", ("agent_id", "topic", "partition"), positions)
