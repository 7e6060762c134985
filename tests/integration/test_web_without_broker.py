"""The web process starts while the broker is down: what it accepts goes to its spool (202), nothing is lost."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from app.commands.broker import free_port
from app.settings import Settings
from tests.harness import WebProcess


def test_web_comes_up_and_spools_while_the_broker_is_unreachable(settings: Settings, tmp_path: Path) -> None:
    down = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "create_topics": True})
    web = WebProcess(down, tmp_path / "web.log").start(timeout=60)
    try:
        event = {"id": "offline-1", "type": "task.approved", "time": "2026-11-22T10:00:00Z", "task_id": "t-offline"}
        request = urllib.request.Request(
            f"{web.url}/events",
            data=json.dumps(event).encode(),
            headers={"Authorization": f"Bearer {settings.service_token.get_secret_value()}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            assert json.loads(response.read())["durable"] == "spool"
        assert "topics not checked, the broker is unreachable" in web.log()
        spooled = b"".join(p.read_bytes() for p in Path(down.spool_dir).rglob("*") if p.is_file())
        assert b"offline-1" in spooled
    finally:
        web.stop()
