"""Logging of every process, configured in one place: `setup_logging(level, fmt)`.

`text`: one line per record (time, level, logger, message). `json`: one JSON object per line with `time`,
`level`, `logger`, `message` and the context a record carries (`extra=`): the keys in CONTEXT_KEYS, e.g.
event id, delivery id, task id, agent id and the record's topic/partition/offset. Faust's, mode's and
aiokafka's own loggers (partition assignment, fetcher and coordinator lines) stay at WARNING unless the
level is debug, so that the console shows the service's lines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

CONTEXT_KEYS = ("event_id", "event_type", "delivery_id", "task_id", "agent_id", "topic", "partition", "offset", "outcome")
"""The context fields a log record may carry (logger.info(..., extra={...})); JSON lines show them as fields."""
# streams.faust_transport: Faust's consumer classes, subclassed there, log under that module's name.
LIBRARIES = ("faust", "mode", "aiokafka", "kafka", "kubernetes_asyncio", "asyncio", "aiohttp.access", "streams.faust_transport")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, RFC 3339), level, logger, message, context, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def setup_logging(level: str, fmt: str = "text") -> None:
    """The root logger at `level` on stderr, formatted as `fmt` (text|json); libraries at WARNING unless debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
