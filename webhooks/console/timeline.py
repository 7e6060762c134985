"""One timeline of a task (pure): its row's milestones, the transitions and dlq notes still in the outbox, the dlq
records that name it, its questions and answers and its deployments, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app import jsonio
from app.replay_records import DlqEntry

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
    if isinstance(value, str):
        try:
            return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _item(at: Any, kind: str, source: str, what: str, detail: str = "", ref: str = "") -> Row | None:
    moment = _utc(at)
    return {"at": moment, "kind": kind, "source": source, "what": what, "detail": detail, "ref": ref} if moment else None


def _outbox(row: Row, dlq_topic: str) -> Row | None:
    try:
        body = jsonio.loads(bytes(row["payload"]))
    except jsonio.JsonError:
        return _item(row["created_at"], "transition", "outbox", "unreadable outbox row", ref=str(row["event_id"]))
    if not isinstance(body, dict):
        return None
    if row["topic"] == dlq_topic:
        source: dict[str, Any] = body["source"] if isinstance(body.get("source"), dict) else {}
        where = f"{source.get('topic')}/{source.get('partition')}@{source.get('offset')}" if source else ""
        return _item(row["created_at"], "refused", "fold", "refused, to the dlq", str(body.get("reason", "")), where)
    data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else {}
    cause: dict[str, Any] = data["cause"] if isinstance(data.get("cause"), dict) else {}
    what = f"{data.get('from') or '∅'} → {data.get('to')}"
    detail = f"{cause.get('type', '?')} from {cause.get('source', '?')} (event {cause.get('id', '?')})"
    return _item(body.get("time") or row["created_at"], "transition", str(body.get("type", "transition")), what, detail,
                 str(row["event_id"]))  # fmt: skip


def _dlq(entry: DlqEntry) -> Row | None:
    where = f"{entry.topic}/{entry.partition}@{entry.offset} (dlq {entry.dlq_partition}@{entry.dlq_offset})"
    return _item(entry.time(), "refused", "dlq", f"{entry.event_type} refused", entry.reason, where)


def timeline(task: Row, outbox: list[Row], questions: list[Row], deployments: list[Row], dlq: list[DlqEntry],
             dlq_topic: str) -> list[Row]:  # fmt: skip
    items: list[Row | None] = [_item(task.get(column), "row", "tasks", what) for column, what in MILESTONES]
    seen_refusals = set()
    for row in outbox:
        items.append(_outbox(row, dlq_topic))
        if row["topic"] == dlq_topic:
            seen_refusals.add(str(row["event_id"]))
    items += [_dlq(e) for e in dlq if e.dlq_id not in seen_refusals]
    for q in questions:
        items.append(_item(q["asked_at"], "question", "agent", "asked", str(q["question"]), str(q["id"])))
        items.append(_item(q["responded_at"], "answer", str(q["responded_by"] or "?"), "answered", str(q["response"] or ""),
                           str(q["id"])))  # fmt: skip
    for d in deployments:
        what = f"{d['environment']} deployment {d['status']}"
        items.append(_item(d["completed_at"] or d["started_at"] or d["created_at"], "deployment", "deploy", what,
                           str(d["error_message"] or d["url"] or ""), str(d["id"])))  # fmt: skip
    return sorted((i for i in items if i is not None), key=lambda i: i["at"])
