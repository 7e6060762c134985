"""k8s-watch against a local aiohttp server that speaks the Kubernetes list/watch protocol.

No cluster here: the fake API server answers list requests with a resourceVersion, streams watch
events as JSON lines (`?watch=true&resourceVersion=…`), sends BOOKMARKs, a `410 Gone` ERROR event, and
a 500 once, from recorded-shape Pod and Deployment objects (tests/k8s/objects.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.commands.k8s_watch import Watcher, api_client
from app.event_base import Event
from app.settings import load_settings
from tests.k8s.objects import deployment, pod

POD1, POD2, POD3 = (f"0a1b2c3d-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))


class FakeApi:
    """Scripted answers per collection path: lists (rv, items) and watches (events, or an HTTP status)."""

    def __init__(self) -> None:
        self.lists: dict[str, list[tuple[str, list[Any]]]] = {}
        self.watches: dict[str, list[list[Any] | int]] = {}
        self.requests: dict[str, list[str]] = {}
        self.selectors: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path, query = request.path, request.query
        self.selectors.append(query.get("labelSelector", ""))
        if query.get("watch") not in ("true", "1", "True"):
            self.requests.setdefault(path, []).append("list")
            rv, items = self.lists[path].pop(0)
            return web.json_response({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items})
        self.requests.setdefault(path, []).append(query.get("resourceVersion", ""))
        script = self.watches.get(path) or []
        step = script.pop(0) if script else None
        if isinstance(step, int):
            return web.json_response({"kind": "Status", "code": step, "message": "injected failure"}, status=step)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for event in step or []:
            await response.write(json.dumps(event).encode() + b"\n")
            await asyncio.sleep(0.01)
        if step is None:  # script done: hold the watch open, as the API server does
            await asyncio.sleep(3600)
        return response


def gone(rv: str) -> dict[str, Any]:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
              "message": f"too old resource version: {rv} (900)"}  # fmt: skip
    return {"type": "ERROR", "object": status}


@pytest.fixture
async def fake() -> Any:
    api = FakeApi()
    app = web.Application()
    app.router.add_get("/{tail:.*}", api.handle)
    server = TestServer(app)
    await server.start_server()
    yield api, str(server.make_url("/")).rstrip("/")
    await server.close()


async def run_until(watcher: Watcher, sent: list[Event], count: int) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(watcher.run(stopping))
    try:
        for _ in range(300):
            if len(sent) >= count or task.done():
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # anything extra would show up now
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)


async def test_list_watch_resume_relist_on_410_and_reconnect(fake: Any) -> None:
    api, url = fake
    pods = "/api/v1/namespaces/aiworker-agents/pods"
    deps = "/apis/apps/v1/namespaces/shop-staging/deployments"
    api.lists[pods] = [
        ("100", [pod(uid=POD1, rv="100"), pod(uid=POD3, name="agent-old", rv="90")]),
        ("300", [pod(uid=POD1, rv="290", restarts=1), pod(uid=POD2, name="agent-new", rv="295")]),
    ]
    api.watches[pods] = [
        [{"type": "MODIFIED", "object": pod(uid=POD1, rv="101")},  # status churn: nothing new
         {"type": "MODIFIED", "object": pod(uid=POD1, rv="102", restarts=1)},  # a restart
         {"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "150"}}}],
        [gone("150")],  # history compacted while we were away: relist (POD3 vanished in the gap)
        500,  # the API server hiccups: back off and reconnect from the same resourceVersion
        [{"type": "DELETED", "object": pod(uid=POD1, rv="310", restarts=1, deleting=True)}],
    ]  # fmt: skip
    api.lists[deps] = [("500", [deployment(rv="500", state="progressing")])]
    api.watches[deps] = [
        [{"type": "MODIFIED", "object": deployment(rv="501", state="progressing")},
         {"type": "MODIFIED", "object": deployment(rv="502", state="complete")},
         {"type": "MODIFIED", "object": deployment(rv="503", state="complete")}],
    ]  # fmt: skip

    settings = load_settings(k8s_api_url=url, k8s_deployment_namespaces="shop-staging", k8s_backoff_max=0.2)
    sent: list[Event] = []

    async def emit(event: Event) -> None:
        sent.append(event)

    async with await api_client(settings) as client:
        watcher = Watcher(settings, client, emit)
        await run_until(watcher, sent, count=7)

    agent = [(e.type, e.pod_name if e.type == "agent.registered" else e.agent_id) for e in sent if e.type.startswith("agent")]  # type: ignore[attr-defined]
    assert agent == [
        ("agent.registered", "agent-7f9c4-xk2pq"),
        ("agent.registered", "agent-old"),
        ("agent.registered", "agent-7f9c4-xk2pq"),  # the restart
        ("agent.stopped", "agent-1"),  # agent-old, gone during the 410 gap
        ("agent.registered", "agent-new"),
        ("agent.stopped", "agent-1"),  # POD1 deleted
    ]
    assert [e.type for e in sent if e.type.startswith("deployment")] == ["deployment.started", "deployment.succeeded"]
    assert len({e.id for e in sent}) == len(sent), "one observed change, one event"
    assert api.requests[pods] == ["list", "100", "150", "list", "300", "300", "310"]  # each watch resumes from the last rv
    assert api.requests[deps][:2] == ["list", "500"]
    assert "app.kubernetes.io/component=aiworker-agent" in api.selectors
    assert "aiworker.dev/project-id" in api.selectors


async def test_a_new_watcher_sends_the_same_ids_again(fake: Any) -> None:
    """A restarted watcher repeats what it saw with the same ids: the fold drops them (processed_events)."""
    api, url = fake
    pods = "/api/v1/namespaces/aiworker-agents/pods"
    settings = load_settings(k8s_api_url=url, k8s_deployment_namespaces="shop-staging")
    runs: list[list[str]] = []
    for _ in range(2):
        api.lists[pods] = [("100", [pod(uid=POD1, rv="100")])]
        api.lists["/apis/apps/v1/namespaces/shop-staging/deployments"] = [("1", [])]
        sent: list[Event] = []

        async def emit(event: Event, into: list[Event] = sent) -> None:
            into.append(event)

        async with await api_client(settings) as client:
            await run_until(Watcher(settings, client, emit), sent, count=1)
        runs.append([e.id for e in sent])
    assert runs[0] == runs[1] and len(runs[0]) == 1


async def test_probes_and_metrics_follow_the_watches(fake: Any) -> None:
    """/readyz is 503 until every collection lists and watches, and again while one reconnects; /metrics counts."""
    from aiohttp.test_utils import TestClient

    from app.commands.k8s_observe import probes
    from tests.harness import eventually, sample

    api, url = fake
    pods, deps = "/api/v1/namespaces/aiworker-agents/pods", "/apis/apps/v1/namespaces/shop-staging/deployments"
    api.lists[pods] = [("100", [pod(uid=POD1, rv="100")])]
    api.lists[deps] = [("1", [])]
    failure = {"type": "ERROR", "object": {"kind": "Status", "code": 500, "reason": "InternalError", "message": "injected"}}
    api.watches[pods] = [[failure]]  # the first watch fails once; the next one is held open
    settings = load_settings(k8s_api_url=url, k8s_deployment_namespaces="shop-staging", k8s_backoff_max=0.2)
    sent: list[Event] = []

    async def emit(event: Event) -> None:
        sent.append(event)

    async with await api_client(settings) as client:
        watcher = Watcher(settings, client, emit)
        http = TestClient(TestServer(probes(watcher).app()))
        await http.start_server()
        try:
            before = await http.get("/readyz")
            assert before.status == 503 and "not listed yet" in json.dumps(await before.json())
            stopping = asyncio.Event()
            task = asyncio.create_task(watcher.run(stopping))

            async def watching_again() -> bool:
                return bool(watcher.collections[0].errors) and (await http.get("/readyz")).status == 200

            await eventually(watching_again, timeout=30, what="the watch to fail once and watch again")
            after = await http.get("/readyz")
            assert after.status == 200, await after.text()
            assert (await http.get("/healthz")).status == 200
            from prometheus_client.parser import text_string_to_metric_families

            text = await (await http.get("/metrics")).text()
            got = {
                (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
            }
            assert sample(got, "aiworker_k8s_events_sent_total", type="agent.registered") == 1
            assert sample(got, "aiworker_k8s_watch_errors_total", collection="pods in aiworker-agents") == 1
            assert sample(got, "aiworker_k8s_watch_relists_total", collection="deployments in shop-staging") == 1
            assert sample(got, "aiworker_ready") == 1
            stopping.set()
            await asyncio.wait_for(task, 5)
        finally:
            await http.close()


async def test_a_failure_that_is_not_trouble_holds_a_collection_it_goes_on_and_healthz_says_so(fake: Any) -> None:
    """An object the mapping cannot read (a stand-in: the pod handler raises) ends no collection: it is held, relists
    with backoff, /healthz is 503 naming it; once the objects can be read again it watches and /healthz is 200."""
    from aiohttp.test_utils import TestClient

    from app.commands.k8s_observe import probes

    api, url = fake
    pods, deps = "/api/v1/namespaces/aiworker-agents/pods", "/apis/apps/v1/namespaces/shop-staging/deployments"
    api.lists[pods] = [("100", [pod(uid=POD1, rv="100")])] * 500  # listed again after every hold
    api.lists[deps] = [("1", [])]
    settings = load_settings(k8s_api_url=url, k8s_deployment_namespaces="shop-staging", k8s_backoff_max=0.2)
    sent: list[Event] = []

    async def emit(event: Event) -> None:
        sent.append(event)

    class Broken(Watcher):
        broken = True

        async def pod_changed(self, change: str, obj: Any) -> None:
            if self.broken:
                raise KeyError("status")
            await super().pod_changed(change, obj)

    async with await api_client(settings) as client:
        watcher = Broken(settings, client, emit)
        http = TestClient(TestServer(probes(watcher).app()))
        await http.start_server()
        stopping = asyncio.Event()
        task = asyncio.create_task(watcher.run(stopping))
        try:
            for _ in range(300):
                if watcher.health.held_since is not None:
                    break
                await asyncio.sleep(0.02)
            answer = await http.get("/healthz")
            assert answer.status == 503 and "KeyError" in json.dumps(await answer.json())
            assert not task.done()  # held, not ended
            watcher.broken = False
            for _ in range(300):
                if sent:
                    break
                await asyncio.sleep(0.02)
            assert [e.type for e in sent] == ["agent.registered"]
            for _ in range(300):
                if (await http.get("/healthz")).status == 200:
                    break
                await asyncio.sleep(0.02)
            assert (await http.get("/healthz")).status == 200
        finally:
            stopping.set()
            await asyncio.wait_for(task, 5)
            await http.close()
