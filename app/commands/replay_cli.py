"""The `replay` command line: its arguments (the dlq filters of app/replay_records.py and the run's options), the
run (app/replay.py `Replayer`, with the fold's dry run of app/commands/replay_dry.py) and the summary it prints."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from rich.console import Console
from rich.table import Table

from app.commands.replay_dry import dry_run
from app.replay import ReplayCounts, Replayer, ReplayError, ReplayOptions
from app.replay_records import Filters, parse_position, parse_time
from app.settings import Settings


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("replay")
    group.add_argument("--reason", help="only records whose reason contains this text (case-insensitive)")
    group.add_argument("--reason-regex", help="only records whose reason matches this regular expression")
    group.add_argument("--type", dest="types", action="append", default=[], help="event type or glob (repeatable)")
    group.add_argument("--entity", dest="entities", action="append", default=[], help="entity id (key or *_id field)")
    group.add_argument("--source-topic", dest="source_topics", action="append", default=[], help="e.g. agent.events")
    group.add_argument(
        "--at", dest="positions", action="append", default=[], help="the dlq record at PARTITION@OFFSET (repeatable)"
    )
    group.add_argument("--since", help="dead-lettered at or after this time (ISO 8601, UTC when no zone)")
    group.add_argument("--until", help="dead-lettered before this time (ISO 8601, UTC when no zone)")
    group.add_argument("--dry-run", action="store_true", help="fold the candidates in a rolled-back transaction; print outcomes")
    group.add_argument("--group", help="consumer group that keeps the replay's progress (default: derived from filters)")
    group.add_argument("--from-start", action="store_true", help="ignore the group's progress; read the dlq from its start")
    group.add_argument("--limit", type=int, help="stop after this many matching records (the rest: next run)")
    group.add_argument("--batch-size", type=int, default=200, help="records re-produced per committed batch")


def options_from_args(args: argparse.Namespace) -> ReplayOptions:
    try:
        filters = Filters(
            reason=args.reason,
            reason_regex=re.compile(args.reason_regex) if args.reason_regex else None,
            types=tuple(args.types),
            entities=tuple(args.entities),
            source_topics=tuple(args.source_topics),
            positions=tuple(parse_position(p) for p in args.positions),
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
        )
    except (re.error, ValueError) as exc:
        raise ReplayError(f"bad filter: {exc}") from exc
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise ReplayError("--batch-size and --limit must be at least 1")
    return ReplayOptions(filters, args.dry_run, args.group, args.from_start, args.limit, args.batch_size)


def summary(counts: ReplayCounts, dry: bool) -> Table:
    table = Table(title="dry run (nothing was changed)" if dry else "replay")
    names = ("scanned", "matched", "replayed", "filtered", "unreadable", "foreign", "unavailable")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row(*(str(getattr(counts, name)) for name in names))
    return table


def run_replay(settings: Settings, bootstrap: str, args: argparse.Namespace) -> int:
    options = options_from_args(args)
    console = Console(file=sys.stdout)
    try:
        counts = asyncio.run(Replayer(settings, bootstrap, options, console, dry_run if options.dry_run else None).run())
    except KeyboardInterrupt:
        console.print("interrupted: the batches committed so far are done; run the same command again to resume")
        return 130
    console.print(summary(counts, options.dry_run))
    console.print(counts.line(), soft_wrap=True, markup=False)
    return 0
