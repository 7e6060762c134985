"""One timeline of a task (pure): its row's milestones, the fold's trace of it (every record with what the fold
did and why, every transition with its cause: app/trace.py, as `aiworker-events trace` shows it), its questions
and answers and its deployments, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.trace import Trace

Row = dict[str, Any]
MILESTONES = (
    ("created_at", "task created"),
    ("assigned_at", "assigned to an agent"),
    ("started_at", "work started"),
    ("preview_deployed_at", "preview deployed"),
    ("completed_at", "ready for review"),
    ("deployed_staging_at", "deployed to staging"),
    ("deployed_production_at", "deployed to production"),
)


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def _item(at: Any, kind: str, source: str, what: str, detail: str = "", ref: str = "") -> Row | None:
    moment = _utc(at)
    return {"at": moment, "kind": kind, "source": source, "what": what, "detail": detail, "ref": ref} if moment else None


def _traced(found: Trace) -> list[Row | None]:
    items: list[Row | None] = []
    for event in found.events:
        about = event.describe()
        kind = about["type"] or "record"
        for r in event.records:
            where = f"{r['source_topic']}[{r['source_partition']}]@{r['source_offset']}"
            half = f" ({r['scope']} half)" if r["scope"] else ""
            what = f"{kind}{half}: {r['outcome']}" + (" (still waiting)" if r.get("still_parked") else "")
            detail = (r["reason"] or "") + (f" (dlq record {r['dlq_id']})" if r["dlq_id"] else "")
            refused = r["outcome"] in ("refused", "invalid", "expired")
            items.append(_item(r["folded_at"], "refused" if refused else "event", where, what, detail, str(event.event_id or "")))
        for t in event.transitions:
            change = f"{t['from_state'] or '∅'} → {t['to_state']}"
            detail = f"caused by {kind} (event {event.event_id})" + (" (in the outbox)" if t.get("waiting") else "")
            items.append(_item(t["folded_at"], "transition", f"{t['entity']} {t['entity_id']}", change, detail,
                               str(t["transition_id"])))  # fmt: skip
    return items


def timeline(task: Row, found: Trace, questions: list[Row], deployments: list[Row]) -> list[Row]:
    items: list[Row | None] = [_item(task.get(column), "row", "tasks", what) for column, what in MILESTONES]
    items += _traced(found)
    for q in questions:
        items.append(_item(q["asked_at"], "question", "agent", "asked", str(q["question"]), str(q["id"])))
        items.append(_item(q["responded_at"], "answer", str(q["responded_by"] or "?"), "answered", str(q["response"] or ""),
                           str(q["id"])))  # fmt: skip
    for d in deployments:
        what = f"{d['environment']} deployment {d['status']}"
        items.append(_item(d["completed_at"] or d["started_at"] or d["created_at"], "deployment", "deploy", what,
                           str(d["error_message"] or d["url"] or ""), str(d["id"])))  # fmt: skip
    return sorted((i for i in items if i is not None), key=lambda i: i["at"])
