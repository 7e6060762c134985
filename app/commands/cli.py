"""The `aiworker-events` command: one subcommand per process or tool (`aiworker-events COMMAND --help`). Every setting
is also a flag; with `make run` going, `set -a; . var/dev.env; set +a` gives a second shell its broker and tokens."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from asyncmy.errors import MySQLError
from pydantic.fields import FieldInfo

from app import AiworkerError
from app.commands.logs import setup_logging
from app.settings import Settings, SettingsError, load_settings
from db import DatabaseError
from db.pool import describe_error

log = logging.getLogger("aiworker_events")
DEV_ENV_HINT = "with `make run` going: `set -a; . var/dev.env; set +a`"


def _flag_type(info: FieldInfo) -> Callable[[str], Any]:
    return str  # pydantic converts and validates the text, so errors read the same as for the environment


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "settings (each also AIWORKER_<NAME> in the environment; pass secrets there: a flag shows in `ps`)"
    )
    for name, info in Settings.model_fields.items():
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, type=_flag_type(info), help=info.description)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiworker-events", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "dev": "the whole system in the foreground: embedded broker and database if needed, migrations, web, worker",
        "web": "the HTTP server (Gitea webhooks and events into Kafka)",
        "worker": "one fold worker (Faust): input topics into MySQL rows and transitions",
        "migrate": "apply migrations/ in order (safe to run twice and concurrently)",
        "topics": "create the service's missing topics",
        "k8s-watch": "watch agent pods and app Deployments; emit agent/deployment events onto the input topics",
        "schemas": "rewrite schemas/ (JSON Schemas, asyncapi.yaml, openapi.json) and the README's settings table",
        "demo": "play one task's whole life against a running system and print its rows and transitions",
        "replay": "re-drive dlq records after a fix (filters, --dry-run, progress; resumable, idempotent)",
        "reconcile": "read Gitea's API and publish what its webhooks could not deliver (a loop; --once: one pass)",
        "agent-token": "print the bearer token of one agent (<agent_id>.<hex HMAC>) from AGENT_TOKEN_KEY",
        "trace": "what the system knows of an event, a Gitea delivery, a task or an agent: records, outcomes, "
        "transitions, dlq entries, in order",
    }
    for name, text in helps.items():
        commands.add_parser(name, help=text, description=text)
    from app.commands.replay_cli import add_replay_arguments

    add_replay_arguments(commands.choices["replay"])
    commands.choices["agent-token"].add_argument("agent_id", help="the agent id the token speaks for (at most 36 characters)")
    from app.commands.trace_cli import add_trace_arguments

    add_trace_arguments(commands.choices["trace"])
    commands.choices["reconcile"].add_argument(
        "--once", action="store_true", help="one pass over every project, then exit (1 when a project failed)"
    )
    for sub in commands.choices.values():  # after each command's own arguments, so `--help` shows those first
        add_setting_flags(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {name: getattr(args, name) for name in Settings.model_fields}
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"aiworker-events: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    try:
        return run(args.command, settings, args)
    except (AiworkerError, DatabaseError) as exc:
        print(f"aiworker-events {args.command}: {exc}", file=sys.stderr)
        return 1
    except (MySQLError, OSError) as exc:  # the driver's text may quote the URL: its class and number only
        print(f"aiworker-events {args.command}: {describe_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run(command: str, settings: Settings, args: argparse.Namespace | None = None) -> int:
    if command == "replay":
        from app.commands.replay_cli import run_replay

        return run_replay(settings, require_bootstrap(settings), args or build_parser().parse_args(["replay"]))
    if command == "reconcile":
        from app.commands.reconcile_main import run_reconcile

        return run_reconcile(settings, require_bootstrap(settings), once=bool(getattr(args, "once", False)))
    if command == "agent-token":
        return _agent_token(settings, str(getattr(args, "agent_id", "")))
    if command == "trace":
        from app.commands.trace_cli import run_trace

        return run_trace(settings, args or build_parser().parse_args(["trace"]))
    if command == "migrate":
        from db.migrate import migrate

        applied = asyncio.run(migrate(settings.database_url.get_secret_value(), log=log.info))
        print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
        return 0
    if command == "topics":
        from app.topics import check_topic_limits, ensure_topics, topic_message_bytes

        created = asyncio.run(ensure_topics(settings, require_bootstrap(settings)))
        print(f"created {len(created)} topic(s): {', '.join(created) or 'all exist'}")
        asyncio.run(check_topic_limits(settings, require_bootstrap(settings)))
        print(f"every topic takes records of {topic_message_bytes(settings)} bytes (AIWORKER_MAX_EVENT_BYTES + 64 KiB)")
        return 0
    if command == "web":
        from app.commands.processes import run_web

        return run_web(settings, require_bootstrap(settings))
    if command == "worker":
        from app.commands.processes import run_worker

        return run_worker(settings, require_bootstrap(settings))
    if command == "k8s-watch":
        from app.commands.k8s_watch import run_k8s_watch

        return run_k8s_watch(settings, require_bootstrap(settings))
    if command == "schemas":
        from app.commands.schemas import run_schemas

        return run_schemas()
    if command == "demo":
        from app.commands.demo import run_demo

        return run_demo(settings)
    if command == "dev":
        from app.commands.dev import run_dev

        return run_dev(settings)
    raise AiworkerError(f"unknown command {command!r}")


def _agent_token(settings: Settings, agent_id: str) -> int:
    from webhooks.auth import MAX_AGENT_ID, agent_token

    key = settings.agent_token_key.get_secret_value()
    if not key:
        raise SettingsError(
            f"AIWORKER_AGENT_TOKEN_KEY is not set: agent tokens are made with it (set it as the web has it; {DEV_ENV_HINT})"
        )
    if not agent_id or len(agent_id) > MAX_AGENT_ID:
        raise AiworkerError(f"an agent id has 1 to {MAX_AGENT_ID} characters, not {len(agent_id)}")
    print(agent_token(key, agent_id))
    return 0


def require_bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise SettingsError(
            "AIWORKER_KAFKA_BOOTSTRAP is empty; set it to host:port of the Kafka brokers (only `dev` starts "
            f"its own; {DEV_ENV_HINT})"
        )
    return settings.kafka_bootstrap
