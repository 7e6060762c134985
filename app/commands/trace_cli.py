"""`aiworker-events trace <event id | Gitea delivery id | task id | agent id>`: the trace of app/trace.py as a timeline
a person reads, or `--json` for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json

from app.settings import Settings
from app.trace import LIMIT, Trace, as_json, collect, time_text


def render(found: Trace) -> str:
    """The timeline a person reads."""
    records = sum(len(e.records) for e in found.events)
    transitions = sum(len(e.transitions) for e in found.events)
    lines = [f"trace of {found.key}: {len(found.events)} event(s), {records} record(s), {transitions} transition(s)"]
    if found.truncated:
        lines.append(f"(only the newest {found.limit} records per lookup: pass --limit for more)")
    for event in found.events:
        about = event.describe()
        head = f"{event.event_id or '(undecodable record)'} {about['type'] or ''}".rstrip()
        extra = [f"{n.replace('_id', '')} {about[n]}" for n in ("delivery_id", "task_id", "agent_id") if about[n]]
        if about["origin"]:
            extra.append(f"origin {about['origin']}")
        if not event.records:
            extra.append("no record of its own kept: the sweeper's, or older than the retention")
        lines += ["", head + (f"  ({', '.join(extra)})" if extra else "")]
        for r in event.records:
            where = f"{r['source_topic']}[{r['source_partition']}]@{r['source_offset']}"
            half = f" ({r['scope']} half)" if r["scope"] else ""
            lines.append(f"  {time_text(r['received_at']) or '?':23}  received    {where}{half}")
            what = r["outcome"] + (f": {r['reason']}" if r["reason"] else "")
            if r["still_parked"]:
                what += " (still waiting)"
            lines.append(f"  {time_text(r['folded_at']):23}  {'folded':10}  {what}")
            if r["dlq_id"]:
                lines.append(f"  {'':23}  {'dlq':10}  {r['dlq_id']} ({'in the outbox' if r['waiting'] else 'published'})")
        for t in event.transitions:
            change = f"{t['from_state'] or '(new)'} -> {t['to_state']}"
            state = "in the outbox" if t["waiting"] else "published"
            what = f"{t['transition_id']}  {t['entity']} {t['entity_id']}: {change} ({state})"
            lines.append(f"  {time_text(t['folded_at']):23}  transition  {what}")
    return "\n".join(lines)


def add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="ID", help="an event id, a Gitea delivery id, a task id or an agent id")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of the timeline")
    parser.add_argument("--limit", type=int, default=LIMIT, help=f"newest records per lookup (default {LIMIT})")


def run_trace(settings: Settings, args: argparse.Namespace) -> int:
    found = asyncio.run(collect(settings.database_url.get_secret_value(), args.key, max(1, args.limit)))
    if args.json:
        print(json.dumps(as_json(found), indent=2, ensure_ascii=False))
    elif found.events:
        print(render(found))
    else:
        print(
            f"nothing known about {args.key}: no event, Gitea delivery, task or agent of that id was folded in the last "
            f"{settings.trace_retention_seconds}s (AIWORKER_TRACE_RETENTION_SECONDS), or it is still on its way"
        )
    return 0 if found.events else 1
