"""The committed schemas/ folder is what `aiworker-events schemas` generates from the code, and it validates."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from app import events, topics
from app.commands.schemas import BEGIN, END, event_schemas, generate, readme_with_settings, transition_schemas, write

ROOT = Path(__file__).resolve().parents[1] / "schemas"
FIX = "run `aiworker-events schemas` (or `.venv/bin/python -m app schemas`) from the repository root and commit schemas/"


def test_committed_schemas_are_up_to_date() -> None:
    expected = generate()
    committed = {str(p.relative_to(ROOT)): p.read_text() for p in ROOT.rglob("*") if p.is_file()}
    stale = sorted(rel for rel, text in expected.items() if committed.get(rel) != text)
    extra = sorted(set(committed) - set(expected))
    assert not stale and not extra, f"schemas/ is out of date (changed: {stale}, not generated: {extra}); {FIX}"


def test_every_event_type_and_transition_has_a_schema() -> None:
    assert set(event_schemas()) == set(events.ALL_TYPES) | {"gitea.webhook"}
    from streams import cloudevents

    assert set(transition_schemas()) == set(cloudevents.TYPES.values())


def test_asyncapi_names_every_topic_and_resolves_its_refs() -> None:
    document = yaml.safe_load((ROOT / "asyncapi.yaml").read_text())
    assert document["asyncapi"].startswith("3.")
    assert {c["address"] for c in document["channels"].values()} == {f"aiworker.{t}" for t in topics.ALL_TOPICS}
    for message in document["components"]["messages"].values():
        assert (ROOT / message["payload"]["$ref"]).exists(), message["payload"]["$ref"]


def test_schemas_agree_with_the_models() -> None:
    schema = json.loads((ROOT / "events/task.started.json").read_text())
    assert set(schema["required"]) >= {"id", "type", "time", "agent_id", "task_id"}
    assert schema["properties"]["type"]["const"] == "task.started"
    deployment = json.loads((ROOT / "events/deployment.succeeded.json").read_text())
    assert deployment["properties"]["type"]["const"] == "deployment.succeeded"
    task = json.loads((ROOT / "transitions/aiworker.task.state_changed.json").read_text())
    assert "production" in task["properties"]["data"]["properties"]["to"]["enum"]


def test_write_reports_nothing_when_current(tmp_path: Path) -> None:
    assert write(tmp_path)
    (tmp_path / "events" / "old.type.json").write_text("{}")
    assert write(tmp_path) == ["events/old.type.json (removed)"]
    assert write(tmp_path) == []


def test_readme_settings_table_is_current() -> None:
    readme = (ROOT.parent / "README.md").read_text()
    assert BEGIN in readme and END in readme, "README.md lost its settings markers"
    assert readme_with_settings(readme) == readme, f"the README settings table is stale; {FIX}"
