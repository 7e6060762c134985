"""db.literals: values quoted for the bulk INSERTs read back exactly; a session that would read them otherwise is refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db import fold_store
from db.literals import QuotingError
from db.pool import SQL_MODE

NASTY = "a'b\"c\\d\0e\nf\rg\x1ah %s %(x)s ' OR 1=1 -- zoë ✓ 𝄞"


async def roundtrip(conn: Any, texts: list[str], payloads: list[bytes]) -> tuple[list[str], list[bytes]]:
    async with conn.cursor() as cur:
        await cur.execute("INSERT INTO agents (id, pod_name) VALUES ('a-lit', 'p')")
        rows = [("a-lit", None, "info", t, None, "2026-11-22 10:00:00", f"lit-{n}") for n, t in enumerate(texts)]
        await fold_store.insert_logs(cur, rows)
        await fold_store.insert_outbox(cur, [(f"e{i}", "t", "k", p) for i, p in enumerate(payloads)])
        await cur.execute("SELECT message FROM agent_logs WHERE agent_id = 'a-lit' ORDER BY id")
        messages = [row[0] for row in await cur.fetchall()]
        await cur.execute("SELECT payload FROM outbox ORDER BY id")
        stored = [bytes(row[0]) for row in await cur.fetchall()]
    await conn.rollback()
    return messages, stored


async def test_every_character_reads_back_as_written(conn: Any) -> None:
    texts = [NASTY, "", "\\", "'", "x" * 5000]
    payloads = [NASTY.encode(), b'{"a":"\\u0000\\"q\\""}', b"\xff\xfe not UTF-8 \x00'", bytes(range(256))]
    assert await roundtrip(conn, texts, payloads) == (texts, payloads)


async def test_a_session_with_no_backslash_escapes_is_refused_not_written_wrong(conn: Any) -> None:
    async with conn.cursor() as cur:
        await cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        try:
            with pytest.raises(QuotingError, match="NO_BACKSLASH_ESCAPES"):
                await fold_store.insert_outbox(cur, [("e1", "t", "k", b"it's")])
        finally:
            await cur.execute(f"SET SESSION sql_mode = '{SQL_MODE}'")
        await cur.execute("SELECT COUNT(*) FROM outbox")
        assert (await cur.fetchone())[0] == 0
    await conn.rollback()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), min_size=1, max_size=5))
async def test_any_text_reads_back_as_written(conn: Any, texts: list[str]) -> None:
    messages, stored = await roundtrip(conn, texts, [t.encode() for t in texts])
    assert messages == texts and stored == [t.encode() for t in texts]
