"""The pipeline's health as the overview shows it: fold lag, outbox age, spool depth, parked and dlq counts.

The outbox and parked numbers are the worker's gauges' own queries (db/observe.py); the lag is, as the
worker computes it (streams/monitor.py), the end of each partition minus the position the fold stored, here
summed per stage over every partition (the web owns none); the spool is this web process's own.
"""

from __future__ import annotations

from typing import Any

from app import topics
from app.settings import Settings
from app.topics import router_group
from db import observe as sql
from webhooks.console.kafka import BrokerLook, BrokerLookError
from webhooks.spool import Spool


async def health(settings: Settings, conn: Any, look: BrokerLook, spool: Spool) -> dict[str, Any]:
    """The numbers; one that cannot be read now is None, with a line in `problems` saying why."""
    problems: list[str] = []
    async with conn.cursor() as cur:
        outbox = await sql.outbox_backlog(cur)
        parked = await sql.parked_backlog(cur)
        agents = await sql.agents_by_status(cur)
        stages = {
            "route": (router_group(settings), [settings.topic(t) for t in topics.INPUT_TOPICS]),
            "fold": (settings.worker_id, [settings.topic(topics.AGENT_EVENTS), settings.topic(topics.FOLD_TASKS)]),
        }
        stored = {name: await sql.stored_positions(cur, consumer) for name, (consumer, _) in stages.items()}
    lag: dict[str, int | None] = {}
    dlq_records: int | None = None
    try:
        names = {t for _, wanted in stages.values() for t in wanted} | {settings.topic(topics.DLQ)}
        ends = await look.ends(sorted(names))
        for name, (_, wanted) in stages.items():
            lag[name] = sum(max(0, end - stored[name].get(key, 0)) for key, end in ends.items() if key[0] in wanted)
        dlq = settings.topic(topics.DLQ)
        starts = await look.starts([dlq])
        dlq_records = sum(end - starts.get(key, 0) for key, end in ends.items() if key[0] == dlq)
    except BrokerLookError as exc:
        problems.append(f"fold lag and dlq: {exc}")
        lag = dict.fromkeys(stages)
    return {
        "fold_lag_records": lag,
        "outbox_unpublished_rows": outbox.rows,
        "outbox_oldest_unpublished_seconds": round(outbox.oldest_seconds, 3),
        "parked_events": parked.rows,
        "parked_oldest_seconds": round(parked.oldest_seconds, 3),
        "spool_records": spool.records,
        "spool_bytes": spool.disk_bytes,
        "dlq_records": dlq_records,
        "agents": agents,
        "problems": problems,
    }
