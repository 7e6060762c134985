"""A real system for the console's tests: web (with a console token) and worker processes on the session's broker
and database, and one headless Chromium (Debian's package) for the module."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.commands.broker import EmbeddedBroker
from app.settings import Settings, load_settings
from app.topics import ensure_topics
from tests.harness import WebProcess, WorkerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
CONSOLE_TOKEN = "console-token-for-tests"
SERVICE_TOKEN = "service-token-for-tests"
T0 = "2026-11-22T10:00:00Z"


@dataclass
class System:
    settings: Settings
    web: WebProcess
    worker: WorkerProcess

    @property
    def url(self) -> str:
        return self.web.url

    async def post_events(self, *events: dict[str, Any]) -> None:
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{self.url}/events", json=list(events), headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}
            )
            assert response.status == 202, await response.text()


@pytest.fixture(scope="module")
async def system(broker: EmbeddedBroker, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    tag = uuid.uuid4().hex[:8]
    logs = tmp_path_factory.mktemp("console")
    settings = load_settings(
        kafka_bootstrap=broker.bootstrap, database_url=database_url, topic_prefix=f"c{tag}.", worker_id=f"console-{tag}",
        topic_partitions=2, service_token=SERVICE_TOKEN, agent_token_key="agent-key-for-tests",
        gitea_secret="gitea-secret-for-tests", console_token=CONSOLE_TOKEN, spool_dir=str(logs / "spool"),
        kafka_session_timeout=6.0,
    )  # fmt: skip
    await ensure_topics(settings, broker.bootstrap)
    worker = WorkerProcess(settings, log_path=logs / "worker.log").start()
    web = WebProcess(settings, log_path=logs / "web.log").start()
    yield System(settings, web, worker)
    web.stop()
    worker.stop()
    print("---- web log (tail) ----\n" + web.log()[-4000:] + "\n---- worker log (tail) ----\n" + worker.log()[-4000:])


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make tools` installs Debian's chromium (apt-get install -y chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # a fresh profile
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the pages' screenshots go: AIWORKER_SCREENSHOTS_DIR (docs/console for the committed set), else a temp dir."""
    chosen = os.environ.get("AIWORKER_SCREENSHOTS_DIR")
    where = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    where.mkdir(parents=True, exist_ok=True)
    yield where
    if not chosen:
        shutil.rmtree(where, ignore_errors=True)
