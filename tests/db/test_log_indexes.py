"""agent_logs keeps one index per agent (idx_agent_created, migration 012): the queries that read an agent's lines,
the seed's newest-first one included, are planned on it, read backwards where they want the newest first, without a
filesort (EXPLAIN on a migrated database with 5,000 lines of 50 agents)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from db import fold_store

AGENT_QUERIES = {
    "seed: recent lines of an agent": "SELECT * FROM agent_logs WHERE agent_id = 'a7' ORDER BY created_at DESC LIMIT 50",
    "console: recent lines of an agent": "SELECT id, agent_id, task_id, level, message, created_at FROM agent_logs"
    " WHERE agent_id = 'a7' ORDER BY created_at DESC, id DESC LIMIT 50",
    "an agent's lines since": "SELECT * FROM agent_logs WHERE agent_id = 'a7' AND created_at >= '2026-12-01 09:01:00'"
    " ORDER BY created_at LIMIT 50",
}


async def test_an_agents_lines_are_read_by_idx_agent_created_without_a_filesort(conn: Any) -> None:
    start = datetime(2026, 12, 1, 9, 0, 0)
    async with conn.cursor() as cur:
        await fold_store.insert_rows(cur, "agents", [{"id": f"a{i}", "pod_name": f"pod{i}"} for i in range(50)])
        lines = [(f"a{i % 50}", None, "info", f"line {i}", None, start + timedelta(seconds=i // 10), uuid.uuid4().hex)
                 for i in range(5000)]  # fmt: skip
        await fold_store.insert_logs(cur, lines)
        await conn.commit()
        await cur.execute("ANALYZE TABLE agent_logs")
        await cur.fetchall()
        for name, sql in AGENT_QUERIES.items():
            await cur.execute("EXPLAIN " + sql)
            plan = (await cur.fetchall())[0]
            key, extra = plan[5], str(plan[9] or "")
            assert key == "idx_agent_created" and "filesort" not in extra, (name, plan)
