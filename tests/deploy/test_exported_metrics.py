"""Every metric a dashboard query or an alert names is exported by a running system (issue 13).

Web, worker and k8s-watch run as their own processes against the real broker and database (k8s-watch against
a local server speaking the Kubernetes list/watch protocol, tests/k8s); events go through the web's POST /events,
the fold folds them, k8s-watch reports one pod. Then each process's /readyz is asked (it sets aiworker_ready) and
its /metrics scraped. The metric names are read from the PromQL of deploy/grafana/aiworker-events.json and of the
PrometheusRule (tests/deploy/test_alerts.py): each must be a sample some process exports. `up` is Prometheus's own.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.commands.broker import free_port
from app.settings import Settings
from tests.deploy.test_alerts import rule_groups
from tests.harness import (
    ChildProcess,
    WebProcess,
    WorkerProcess,
    eventually,
    fold_caught_up,
    get_json,
    scrape,
    settings_env,
)  # fmt: skip
from tests.integration.test_fold_engine import agent_registered, project_upserted, task_created
from tests.k8s.objects import pod
from tests.k8s.test_k8s_watch import FakeApi

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/aiworker-events.json"
METRIC = re.compile(r"\b(aiworker_[a-z0-9_]+|up)\b")
PROMETHEUS_OWN = {"up"}


def queries() -> dict[str, str]:
    """Every PromQL expression of the dashboard and the alerts, by where it is."""
    out = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            out[f"dashboard: {panel['title']} ({target['refId']})"] = target["expr"]
    for group in rule_groups():
        for rule in group["rules"]:
            out[f"alert {rule['alert']}"] = rule["expr"]
    return out


def test_the_dashboard_has_the_panels_of_the_issue() -> None:
    exprs = " ".join(queries().values())
    for name in ("aiworker_http_requests_total", "aiworker_produce_seconds_bucket", "aiworker_spool_records",
                 "aiworker_fold_events_total", "aiworker_fold_lag_records", "aiworker_outbox_oldest_unpublished_seconds",
                 "aiworker_parked_events", "aiworker_dlq_records_total", "aiworker_agents"):  # fmt: skip
        assert name in exprs, f"no dashboard panel or alert reads {name}"


class K8sWatchProcess(ChildProcess):
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings.model_copy(update={"k8s_watch_http_port": free_port()})
        self.log_path, self.process = log_path, None

    def start(self) -> K8sWatchProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "k8s-watch"], env=settings_env(self.settings), stdout=log, stderr=log
        )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.k8s_watch_http_port}"


@pytest.fixture
async def kube_api() -> AsyncIterator[str]:
    api = FakeApi()
    api.lists["/api/v1/namespaces/aiworker-agents/pods"] = [("100", [pod(uid=str(uuid.uuid4()), rv="100")])]
    api.lists["/apis/apps/v1/namespaces/shop/deployments"] = [("1", [])]
    app = web.Application()
    app.router.add_get("/{tail:.*}", api.handle)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/")).rstrip("/")
    await server.close()


@pytest.fixture
def system(settings: Settings, worker: WorkerProcess, kube_api: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    web_process = WebProcess(settings, tmp_path / "web.log").start()
    watcher = K8sWatchProcess(
        settings.model_copy(update={"k8s_api_url": kube_api, "k8s_deployment_namespaces": "shop"}), tmp_path / "k8s.log"
    ).start()
    try:
        yield {"web": web_process.url, "worker": worker.url, "k8s-watch": watcher.url}
    finally:
        for process in (watcher, web_process):
            process.stop()
            print(f"---- {process.log_path.name} (tail) ----\n" + process.log()[-3000:])


async def test_every_metric_of_the_dashboard_and_the_alerts_is_exported(
    settings: Settings, pool: Any, system: dict[str, str]
) -> None:
    u = uuid.uuid4().hex[:8]
    body = "\n".join(json.dumps(e) for e in (project_upserted(f"p-m-{u}"), task_created(f"t-m-{u}", f"p-m-{u}"),
                                             agent_registered(f"a-m-{u}")))  # fmt: skip
    headers = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}", "Content-Type": "application/x-ndjson"}
    async with aiohttp.ClientSession() as session, session.post(f"{system['web']}/events", data=body, headers=headers) as r:
        assert r.status == 202, await r.text()
    await fold_caught_up(settings, pool)

    async def everything_ready() -> bool:
        answers = [await get_json(f"{url}/readyz") for url in system.values()]
        return all(status == 200 for status, _ in answers)

    await eventually(everything_ready, what="web, worker and k8s-watch to be ready")
    wanted = {name for expr in queries().values() for name in METRIC.findall(expr)} - PROMETHEUS_OWN

    async def exported() -> set[str] | None:
        names = {name for url in system.values() for name, _labels in await scrape(url)}
        return names if wanted <= names else None

    try:
        names = await eventually(exported, timeout=30, what="every metric of the dashboard and the alerts")
    except AssertionError:
        names = {name for url in system.values() for name, _labels in await scrape(url)}
        missing = {where: sorted(set(METRIC.findall(expr)) - names - PROMETHEUS_OWN) for where, expr in queries().items()}
        raise AssertionError(f"not exported: { {k: v for k, v in missing.items() if v} }") from None
    print("exported by web, worker and k8s-watch:\n" + "\n".join(sorted(n for n in names if n.startswith("aiworker_"))))
