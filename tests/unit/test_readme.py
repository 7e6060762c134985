"""The README's first-run examples work as written: its commands exist and its example events are valid."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.commands.cli import build_parser
from app.events import parse_event

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._subparsers._group_actions if a.choices)  # type: ignore[union-attr]
    return set(action.choices)


def shell_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", README, flags=re.S | re.M)


def test_the_commands_table_names_every_command_and_only_real_ones() -> None:
    table = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([a-z0-9-]+)", table, flags=re.M))
    named |= set(re.findall(r"^\| `[a-z-]+`, `([a-z-]+)`", table, flags=re.M))  # "`web`, `worker`"
    assert named == subcommands()


def test_every_aiworker_events_command_in_the_readme_exists() -> None:
    used = set(re.findall(r"aiworker-events ([a-z][a-z0-9-]*)", README))
    assert used - subcommands() == set()


def test_the_example_events_are_valid_events() -> None:
    bodies: list[str] = []
    for block in shell_blocks():
        text = block.replace("'$TASK'", "t1")  # a shell variable spliced into the JSON
        bodies += re.findall(r"^(\{.*\})'?$", text, flags=re.M)  # NDJSON lines of --data-binary
        bodies += re.findall(r"-d '(\{.*\})'", text)
    assert len(bodies) >= 5
    for body in bodies:
        data = json.loads(body)
        assert "gitea_webhook_secret" not in data, "secrets are set with PUT /projects/{id}/webhook-secret"
        assert parse_event(data).type == data["type"]


def test_a_commands_own_options_come_before_the_settings_in_its_help() -> None:
    parser = build_parser()
    action = next(a for a in parser._subparsers._group_actions if a.choices)  # type: ignore[union-attr]
    text = action.choices["replay"].format_help()
    assert text.index("--dry-run") < text.index("--kafka-bootstrap")
