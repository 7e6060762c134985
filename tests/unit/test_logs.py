"""Logging set up in one place (app/commands/logs.py): JSON lines with the record's context, libraries quiet unless debug."""

from __future__ import annotations

import json
import logging

import pytest

from app.commands.logs import JsonFormatter, setup_logging


def test_a_json_line_carries_the_context_of_its_record() -> None:
    record = logging.LogRecord("streams.worker", logging.WARNING, __file__, 1, "refused %s %s", ("task.started", "e4"), None)
    for key, value in {"event_id": "e4", "task_id": "t1", "agent_id": "a1", "topic": "aiworker.agent.events",
                       "partition": 3, "offset": 17, "delivery_id": None}.items():  # fmt: skip
        setattr(record, key, value)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "refused task.started e4" and line["level"] == "warning" and line["logger"] == "streams.worker"
    assert (line["event_id"], line["task_id"], line["agent_id"]) == ("e4", "t1", "a1")
    assert (line["topic"], line["partition"], line["offset"]) == ("aiworker.agent.events", 3, 17)
    assert "delivery_id" not in line, "context that does not apply is left out"
    assert line["time"].endswith("+00:00")


@pytest.mark.parametrize(("level", "library_level"), [("info", logging.WARNING), ("debug", logging.DEBUG)])
def test_libraries_stay_at_warning_unless_debug(level: str, library_level: int) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(level, "json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter) and len(root.handlers) == 1
        assert root.level == getattr(logging, level.upper())
        for name in ("faust", "mode", "aiokafka", "streams.faust_transport"):
            assert logging.getLogger(name).level == library_level, name
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in ("faust", "mode", "aiokafka", "streams.faust_transport"):
            logging.getLogger(name).setLevel(logging.NOTSET)
