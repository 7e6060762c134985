"""`aiworker-events demo` against a running system: a web process and a worker process on the test broker and DB."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.commands.broker import wait_for_port
from app.commands.demo import run
from app.commands.demo_target import Target, dev_values
from app.settings import Settings
from tests.harness import WorkerProcess, settings_env

pytestmark = pytest.mark.integration

# What must take effect with ingest and the fold as they are; the rest is printed, not asserted.
CORE = ("project.upserted", "agent registered", "agent heartbeat (idle)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def system(settings: Settings, worker: WorkerProcess, tmp_path: Path) -> Iterator[Settings]:
    port = free_port()
    running = settings.model_copy(update={"http_port": port, "http_host": "127.0.0.1", "web_url": f"http://127.0.0.1:{port}"})
    log = open(tmp_path / "web.log", "ab")  # noqa: SIM115 - closed below
    web = subprocess.Popen([sys.executable, "-m", "app", "web"], env=settings_env(running), stdout=log, stderr=log)
    try:
        assert wait_for_port("127.0.0.1", port, time.monotonic() + 30), "web did not listen"
        yield running
    finally:
        web.terminate()
        web.wait(20)
        log.close()
        print("---- web log (tail) ----\n" + (tmp_path / "web.log").read_text(errors="replace")[-4000:])


async def test_demo_plays_a_task_life(system: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    results = dict(await run(system))
    out = capsys.readouterr().out
    print(out)
    assert next(iter(results)) == "project.upserted" and len(results) == 13
    for step in CORE:
        assert results[step] is None, f"{step}: {results[step]}"
    assert "transitions (from the outbox, in order):" in out
    if results["Gitea issue opened with label aiworker"] is None and results["production deployment succeeded"] is None:
        assert "aiworker.task.state_changed" in out and "-> production" in out


def test_target_prefers_flags_then_dev_env(tmp_path: Path) -> None:
    env = tmp_path / "dev.env"
    env.write_text(
        "# comment\nAIWORKER_WEB_URL=http://127.0.0.1:9999\nAIWORKER_SERVICE_TOKEN=dev-s\nAIWORKER_AGENT_TOKEN_KEY=dev-a\n"
    )
    target = Target.resolve(Settings(), dev_values(env))
    assert (target.url, target.service_token, target.agent_key) == ("http://127.0.0.1:9999", "dev-s", "dev-a")
    flagged = Target.resolve(Settings(service_token="mine", agent_token_key="k", web_url="http://x:1/"), dev_values(env))
    assert (flagged.url, flagged.service_token) == ("http://x:1", "mine")
