"""`aiworker-events schemas`: JSON Schemas of every input event and transition, and an AsyncAPI document.

Generated from the code (the event models of app/events.py, app/envelope.py, streams/cloudevents.py, the row dataclasses of
streams/machines) into schemas/: events/<type>.json, transitions/<cloudevent type>.json, asyncapi.yaml, and the
HTTP API's openapi.json (app/commands/openapi.py).
tests/test_schemas.py fails when the committed files differ from what this module generates.
"""

from __future__ import annotations

import importlib
import json
import typing
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from app import events, topics
from app.envelope import GiteaEnvelope
from app.event_base import Event

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE = "https://aiworker.dev/schemas"
Schema = dict[str, Any]


def _models(union: Any) -> list[type[Event]]:
    inner = typing.get_args(union)[0]  # Annotated[Union[...], discriminator]
    return list(typing.get_args(inner))


def event_schemas() -> dict[str, Schema]:
    """{event type: JSON Schema} of every input event (a DeploymentEvent per deployment.* type)."""
    out: dict[str, Schema] = {}
    for model in _models(events.AnyAgentEvent) + _models(events.AnyControlEvent):
        schema = model.model_json_schema(mode="validation")
        for name in typing.get_args(model.model_fields["type"].annotation):
            one = json.loads(json.dumps(schema))
            one["properties"]["type"] = {"const": name, "type": "string", "title": "Type"}
            out[name] = {"$schema": DRAFT, "$id": f"{BASE}/events/{name}.json", **one, "title": name}
    envelope = GiteaEnvelope.model_json_schema(mode="validation")
    out["gitea.webhook"] = {"$schema": DRAFT, "$id": f"{BASE}/events/gitea.webhook.json", **envelope, "title": "gitea.webhook"}
    return out


def _row_class(entity: str) -> tuple[type[Any], tuple[str, ...]]:
    module = importlib.import_module(f"streams.machines.{entity}")
    rows = [v for k, v in vars(module).items() if k.endswith("Row") and getattr(v, "__module__", "") == module.__name__]
    return rows[0], tuple(module.STATES)


def _reclaimed_from() -> Schema:
    from streams.machines.agent import RECLAIMABLE

    return {
        "type": "object",
        "description": "only on a reclaim: the agent that held the task (offline or in error) when another agent's "
        "task.started took it over; from and to are then the same state",
        "required": ["agent_id", "status"],
        "properties": {"agent_id": {"type": "string"}, "status": {"enum": list(RECLAIMABLE)}},
    }


def transition_schemas() -> dict[str, Schema]:
    """{CloudEvent type: JSON Schema} of every downstream transition."""
    from streams import cloudevents

    out: dict[str, Schema] = {}
    for entity, ce_type in sorted(cloudevents.TYPES.items()):
        row_class, states = _row_class(entity)
        row = TypeAdapter(row_class).json_schema(mode="serialization")
        out[ce_type] = {
            "$schema": DRAFT,
            "$id": f"{BASE}/transitions/{ce_type}.json",
            "title": ce_type,
            "description": f"A {entity} changed state (CloudEvents 1.0, structured JSON); topic "
            f"<prefix>{cloudevents.TOPICS[entity]}, key: the {entity} id. The id is derived from the cause.",
            "type": "object",
            "required": ["specversion", "id", "source", "type", "subject", "time", "data"],
            "properties": {
                "specversion": {"const": "1.0"},
                "id": {"type": "string", "description": "derived from the cause: a replay re-emits the same id"},
                "source": {"const": cloudevents.SOURCE},
                "type": {"const": ce_type},
                "subject": {"type": "string", "description": f"the {entity} id"},
                "time": {"type": "string", "format": "date-time", "description": "the time of the causing event"},
                "datacontenttype": {"const": "application/json"},
                "data": {
                    "type": "object",
                    "required": ["from", "to", "row", "cause"],
                    "properties": {
                        "from": {"anyOf": [{"enum": list(states)}, {"type": "null"}], "description": "null: created"},
                        "to": {"enum": list(states)},
                        "row": row,
                        "cause": {
                            "type": "object",
                            "required": ["id", "source", "type"],
                            "properties": {"id": {"type": "string"}, "source": {"type": "string"}, "type": {"type": "string"}},
                        },
                        **({"reclaimed_from": _reclaimed_from()} if entity == "task" else {}),
                    },
                },
            },
        }
    return out


def _message(name: str, ref: str, key: str) -> Schema:
    message: Schema = {
        "name": name,
        "title": name,
        "contentType": "application/json",
        "payload": {"$ref": ref},
        "bindings": {"kafka": {"key": {"type": "string", "description": key}, "bindingVersion": "0.5.0"}},
    }
    if ref.startswith("./transitions/"):  # CloudEvents Kafka protocol binding, structured mode (streams/relay.py)
        from streams.relay import STRUCTURED

        [(header, value)] = STRUCTURED
        message["contentType"] = value.decode()
        message["headers"] = {"type": "object", "required": [header], "properties": {header: {"const": value.decode()}}}
    return message


def asyncapi(event_names: list[str], transition_names: list[str]) -> Schema:
    from streams import cloudevents

    agent = [n for n in event_names if n in events.AGENT_TYPES]
    control = [n for n in event_names if n in events.CONTROL_TYPES]
    channels: dict[str, Schema] = {}
    messages: dict[str, Schema] = {}

    def channel(topic: str, names: list[str], folder: str, key: str, description: str) -> None:
        for n in names:
            messages[n] = _message(n, f"./{folder}/{n}.json", key)
        channels[topic] = {
            "address": f"aiworker.{topic}",
            "description": description,
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
        }

    channel("gitea.webhooks", ["gitea.webhook"], "events", "repository full name", "Gitea deliveries as received.")
    channel(
        "agent.events",
        agent,
        "events",
        "agent_id",
        "Events of agent pods (POST /events with the agent's token, <agent_id>.<hex HMAC-SHA256(AGENT_TOKEN_KEY, "
        "agent_id)>; or direct producers).",
    )
    channel("control.events", control, "events", "entity id", "Events of the backend, deploy pipeline, k8s-watch.")
    for short in (topics.TASK_TRANSITIONS, topics.AGENT_TRANSITIONS, topics.DEPLOYMENT_TRANSITIONS):
        names = [cloudevents.TYPES[e] for e, t in sorted(cloudevents.TOPICS.items()) if t == short]
        channel(short, [n for n in transition_names if n in names], "transitions", "entity id", "Downstream state changes.")
    channels[topics.DLQ] = {
        "address": f"aiworker.{topics.DLQ}",
        "description": "Records the fold could not apply, with the reason and the original record (key: original key).",
    }
    for short in getattr(topics, "INTERNAL_TOPICS", ()):
        channels[short] = {"address": f"aiworker.{short}", "description": "Internal to the fold workers; not an interface."}
    operations = {
        f"receive.{t}": {"action": "receive", "channel": {"$ref": f"#/channels/{t}"}}
        for t in ("gitea.webhooks", "agent.events", "control.events")
    }
    operations.update({f"send.{t}": {"action": "send", "channel": {"$ref": f"#/channels/{t}"}} for t in topics.OUTPUT_TOPICS})
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "aiworker-events",
            "version": "0.1.0",
            "description": "Topics of the aiworker event spine. Addresses use the default AIWORKER_TOPIC_PREFIX "
            "`aiworker.`. Generated by `aiworker-events schemas`; do not edit.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """{path relative to schemas/: file text} of every generated file."""
    import yaml  # type: ignore[import-untyped]

    event_map, transition_map = event_schemas(), transition_schemas()
    files = {f"events/{n}.json": _dump_json(s) for n, s in sorted(event_map.items())}
    files.update({f"transitions/{n}.json": _dump_json(s) for n, s in sorted(transition_map.items())})
    from app.commands import openapi

    files["openapi.json"] = _dump_json(openapi.document())
    document = asyncapi(sorted(event_map), sorted(transition_map))
    files["asyncapi.yaml"] = "# Generated by `aiworker-events schemas`; do not edit.\n" + yaml.safe_dump(
        document, sort_keys=False, allow_unicode=True, width=120
    )
    return files


def write(root: Path) -> list[str]:
    """Write the generated files under root (removing stale .json files); returns what changed."""
    files = generate()
    changed: list[str] = []
    for folder in ("events", "transitions"):
        for stale in (root / folder).glob("*.json") if (root / folder).exists() else []:
            if f"{folder}/{stale.name}" not in files:
                stale.unlink()
                changed.append(f"{folder}/{stale.name} (removed)")
    for rel, text in files.items():
        path = root / rel
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(rel)
    return changed


BEGIN, END = "<!-- settings:begin (generated by `aiworker-events schemas`) -->", "<!-- settings:end -->"


def settings_table() -> str:
    """The README's settings table, from app/settings.py."""
    from pydantic import SecretStr

    from app.settings import Settings

    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = info.default.get_secret_value() if isinstance(info.default, SecretStr) else info.default
        shown = "empty" if default == "" else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        lines.append(f"| `{name.upper()}` | {shown} | {(info.description or '').replace('|', '/')} |")
    return "\n".join(lines)


def readme_with_settings(text: str) -> str:
    """README text with the block between the settings markers regenerated (unchanged without markers)."""
    if BEGIN not in text or END not in text:
        return text
    head, rest = text.split(BEGIN, 1)
    return f"{head}{BEGIN}\n{settings_table()}\n{END}{rest.split(END, 1)[1]}"


def run_schemas() -> int:
    root = Path.cwd() / "schemas"
    changed = write(root)
    readme = Path.cwd() / "README.md"
    if readme.exists() and (updated := readme_with_settings(readme.read_text())) != readme.read_text():
        readme.write_text(updated)
        changed.append("../README.md (settings table)")
    print(f"schemas: {len(changed)} file(s) written under {root}: {', '.join(changed) or 'all up to date'}")
    return 0
