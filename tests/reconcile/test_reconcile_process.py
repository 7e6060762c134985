"""The reconcile process as the pod runs it: a loop serving /metrics, stopped by SIGTERM; and its settings checks."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
from pydantic import SecretStr

from app.commands.broker import free_port
from app.commands.gitea_client import PAGE_LIMIT, GiteaClient
from app.commands.reconcile import ReconcileMetrics, Reconciler
from app.settings import Settings
from db.pool import create_pool
from tests.harness import eventually, fetch_all, run_cli, settings_env
from tests.reconcile.fake_gitea import TOKEN, fake_gitea
from tests.reconcile.rows import insert_task
from tests.webhooks.ingest_helpers import insert_project, unique_repo_id
from webhooks.publisher import KafkaPublisher


def start_reconcile(settings: Settings, log_path: Path) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the test
    command = [sys.executable, "-m", "app", "reconcile"]
    return subprocess.Popen(command, env=settings_env(settings), stdout=log, stderr=log), log


async def test_the_loop_serves_metrics_and_stops_on_sigterm(settings: Settings, own_database: str, tmp_path: Path) -> None:
    pool = await create_pool(own_database, minsize=1, maxsize=2)
    try:
        async with fake_gitea() as api:
            repo_id = unique_repo_id()
            repo = api.repo(repo_id, "acme", f"loop{repo_id}")
            now = datetime.now(UTC)
            repo.add_issue(3, labels=["aiworker"], created=now - timedelta(minutes=5), updated=now - timedelta(minutes=5))
            project = await insert_project(pool, repo_id=repo_id, owner=repo.owner, name=repo.name, secret=None)
            port = free_port()
            changes = {"database_url": SecretStr(own_database), "gitea_url": api.url, "gitea_token": SecretStr(TOKEN),
                       "http_host": "127.0.0.1", "http_port": port}  # fmt: skip
            own = settings.model_copy(update=changes)
            process, log = start_reconcile(own, tmp_path / "reconcile.log")
            try:

                async def scraped() -> str | None:
                    try:
                        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as r:
                            text = await r.text()
                    except aiohttp.ClientError:
                        return None
                    wanted = f'aiworker_reconcile_last_success_timestamp_seconds{{project_id="{project}"}}'
                    return text if wanted in text else None

                text = await eventually(scraped, timeout=60, what="the reconcile pod's /metrics to show the project")
                assert 'aiworker_reconcile_records_total{kind="issue_opened"} 1.0' in text
                assert 'aiworker_reconcile_project_runs_total{outcome="ok"}' in text
                assert TOKEN not in text
                process.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(process.wait, 30)
                assert code == 0
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                log.close()
            output = (tmp_path / "reconcile.log").read_text(errors="replace")
            assert TOKEN not in output
        state = await fetch_all(pool, "SELECT project_id, records_published, last_error FROM reconcile_state")
        assert state == [{"project_id": project, "records_published": 1, "last_error": None}]
    finally:
        pool.close()
        await pool.wait_closed()


@pytest.mark.parametrize(
    ("change", "says"),
    [({"gitea_url": ""}, "AIWORKER_GITEA_URL is empty"), ({"gitea_url": "https://git.test", "gitea_token": SecretStr("")},
                                                          "AIWORKER_GITEA_TOKEN is empty")],
)  # fmt: skip
async def test_without_gitea_settings_it_says_which_one(settings: Settings, change: dict[str, Any], says: str) -> None:
    code, output = await run_cli(settings.model_copy(update=change), "reconcile", "--once")
    assert code == 1 and says in output, output


async def test_a_database_that_cannot_be_reached_is_one_clear_line(settings: Settings) -> None:
    down = SecretStr(f"mysql://root@127.0.0.1:{free_port()}/aiworker")
    changes = {"database_url": down, "gitea_url": "https://git.test", "gitea_token": SecretStr(TOKEN)}
    code, output = await run_cli(settings.model_copy(update=changes), "reconcile", "--once")
    assert code == 1 and "AIWORKER_DATABASE_URL cannot be read" in output and "Traceback" not in output, output


async def test_what_a_run_costs_in_api_requests(settings: Settings, own_database: str) -> None:
    """The figures of README/operations: 3 requests per project when nothing changed, +2 per task awaiting review
    whose PR was not updated lately (the PR, its reviews); the first run pages through the whole history."""
    pool = await create_pool(own_database, minsize=1, maxsize=2)
    publisher = KafkaPublisher(settings, settings.kafka_bootstrap)
    await publisher.start()
    try:
        async with fake_gitea() as api:
            repo_id = unique_repo_id()
            repo = api.repo(repo_id, "acme", f"cost{repo_id}")
            old = datetime.now(UTC) - timedelta(days=2)
            for number in range(1, PAGE_LIMIT + 3):  # two pages of pull requests
                repo.add_pull(number, branch=f"feature/{number}", created=old, updated=old + timedelta(seconds=number))
            repo.add_issue(1, labels=["aiworker"], created=old, updated=old)
            project = await insert_project(pool, repo_id=repo_id, owner=repo.owner, name=repo.name, secret=None)
            await insert_task(pool, project, "ready_to_test", branch="feature/1", pr=1)
            own = settings.model_copy(update={"database_url": SecretStr(own_database)})
            async with GiteaClient(api.url, TOKEN) as client:
                reconciler = Reconciler(own, pool, publisher, client, ReconcileMetrics())
                [first] = await reconciler.run_once()
                [steady] = await reconciler.run_once()
        assert first.error is None and steady.error is None
        # first: repository, 2 pages of pulls, 1 of issues (published: the labelled issue), reviews of PR #1 (listed)
        assert first.api_requests == 1 + 2 + 1 + 1 and [r.kind for r in first.records] == ["issue_opened"]
        # since the last run nothing changed: 1 page each, stopped at the first older PR; the PR awaiting review
        # was not listed, so it is read, then its reviews
        assert steady.api_requests == 1 + 1 + 1 + 2
    finally:
        await publisher.stop()
        pool.close()
        await pool.wait_closed()
