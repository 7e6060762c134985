"""`aiworker-events k8s-watch`: agent pods and app Deployments into contract events on the input topics.

Each watched collection runs the Kubernetes list/watch protocol: list (remember the list's
resourceVersion), then watch from it (`?watch=1&resourceVersion=…&allowWatchBookmarks=true`, a stream of
JSON lines), advancing the resourceVersion with every event and bookmark. A watch that ends is resumed
from the last resourceVersion; a `410 Gone` (the version is too old) relists; any other failure
reconnects with exponential backoff and jitter (up to AIWORKER_K8S_BACKOFF_MAX): the error policy of every
retrying loop (db/errors.py). API and connection errors are trouble; anything else (an object the mapping
cannot read, a record the broker refuses for good) holds the collection (`Watcher.health`), which relists after
the backoff; no exception ends a collection. Pods seen before a
relist and absent after it were deleted in the gap: they are reported stopped.

Events go to agent.events (agent.registered, agent.stopped) and control.events (deployment.started,
succeeded, failed) through an acks=all producer; ids come from `app.commands.k8s_map` (uid + change), and a
change already sent by this process is not sent again, so one observed change is one event.

No cluster exists where this was written: tests/k8s runs it against a local aiohttp server speaking the
list/watch protocol (list with resourceVersion, watch streams, a 410 Gone ERROR event) with Pod and
Deployment objects of the shape the API server returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from app import AiworkerError, jsonio, topics
from app.commands.k8s_map import Obj, deployment_events, pod_events
from app.event_base import Event
from app.settings import Settings
from db.errors import Backoff, Health

log = logging.getLogger(__name__)

Emit = Callable[[Event], Awaitable[None]]
Lister = Callable[..., Awaitable[Any]]
WATCH_SECONDS = 300  # server-side end of one watch request; it is resumed at once


class K8sWatchError(AiworkerError):
    """The watcher cannot reach or read the Kubernetes API."""


class Gone(Exception):
    """The resourceVersion is too old (HTTP 410): relist."""


class Collection:
    """One list/watch loop over one kind of object in one namespace (or all)."""

    def __init__(self, name: str, lister: Lister, kwargs: dict[str, Any], on_change: Callable[[str, Obj], Awaitable[None]],
                 on_relist: Callable[[list[Obj]], Awaitable[None]], backoff_max: float,
                 health: Health | None = None) -> None:  # fmt: skip
        self.name, self.lister, self.kwargs = name, lister, kwargs
        self.health = health or Health()
        self.on_change, self.on_relist, self.backoff_max = on_change, on_relist, backoff_max
        self.resource_version: str | None = None
        self.relists = 0
        self.errors = 0
        self.problem: str | None = "not listed yet"
        """Why the collection is not watching now (None: it is)."""

    async def run(self, stopping: asyncio.Event) -> None:
        backoff = Backoff(min(0.5, self.backoff_max), self.backoff_max)
        while not stopping.is_set():
            try:
                if self.resource_version is None:
                    await self._list()
                    self.health.ok(self.name)
                self.problem = None
                async for event in self._watch():
                    await self._apply(event)
                    backoff.reset()
                    self.health.ok(self.name)
            except Gone:
                log.info("%s: resourceVersion %s is gone (410); relisting", self.name, self.resource_version)
                self.resource_version = None
            except Exception as exc:  # noqa: BLE001 - db/errors.py: trouble (API, connection) or a hold, retried either way
                self.errors += 1
                self.problem = f"{exc!r}; reconnecting"
                self.health.failed(self.name, exc, backoff.next, ApiException, aiohttp.ClientError, ValueError)
                if not isinstance(exc, ApiException | aiohttp.ClientError | OSError | ValueError):
                    self.resource_version = None  # held: read the collection again from a list
                await backoff.sleep(stopping)

    async def _list(self) -> None:
        response = await self.lister(**self.kwargs, _preload_content=False)
        body = jsonio.parse(await response.read())
        items: list[Obj] = body.get("items") or []
        await self.on_relist(items)
        for item in items:
            await self.on_change("ADDED", item)
        self.resource_version = str(body["metadata"]["resourceVersion"])
        self.relists += 1

    async def _watch(self) -> AsyncIterator[Obj]:
        response = await self.lister(
            **self.kwargs, watch=True, resource_version=self.resource_version, allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS, _preload_content=False,
        )  # fmt: skip
        try:
            async for line in response.content:
                if line.strip():
                    yield jsonio.parse(line)
        finally:
            response.release()

    async def _apply(self, event: Obj) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ValueError(f"watch error {obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            await self.on_change(str(kind), obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)


class Watcher:
    """Maps what the collections see to events and sends each change once."""

    def __init__(self, settings: Settings, api: client.ApiClient, emit: Emit) -> None:
        self.settings, self.emit = settings, emit
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.sent: dict[str, set[str]] = {}
        self.sent_by_type: dict[str, int] = {}
        self.pods: dict[str, Obj] = {}
        backoff = settings.k8s_backoff_max
        self.health = Health()
        self.collections = [
            Collection(f"pods in {settings.k8s_agent_namespace}", core.list_namespaced_pod,
                       {"namespace": settings.k8s_agent_namespace, "label_selector": settings.k8s_agent_selector},
                       self.pod_changed, self.pods_relisted, backoff, self.health),
        ]  # fmt: skip
        namespaces = [n.strip() for n in settings.k8s_deployment_namespaces.split(",") if n.strip()]
        selector = {"label_selector": settings.k8s_deployment_selector}
        for namespace in namespaces:
            self.collections.append(
                Collection(f"deployments in {namespace}", apps.list_namespaced_deployment,
                           {"namespace": namespace, **selector}, self.deployment_changed, self.nothing, backoff, self.health)
            )  # fmt: skip
        if not namespaces:
            self.collections.append(
                Collection("deployments in all namespaces", apps.list_deployment_for_all_namespaces, selector,
                           self.deployment_changed, self.nothing, backoff, self.health)
            )  # fmt: skip

    async def run(self, stopping: asyncio.Event) -> None:
        """Run every collection until `stopping` is set (a watch blocks, so they are cancelled then)."""
        loops = [asyncio.create_task(c.run(stopping), name=c.name) for c in self.collections]
        stopper = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait([*loops, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in [*loops, stopper]:
            task.cancel()
        await asyncio.gather(*loops, stopper, return_exceptions=True)
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                raise K8sWatchError(f"{task.get_name()} stopped: {task.exception()!r}")

    async def send(self, uid: str, events: list[Event]) -> None:
        done = self.sent.setdefault(uid, set())
        for event in events:
            if event.id not in done:
                await self.emit(event)
                done.add(event.id)
                self.sent_by_type[event.type] = self.sent_by_type.get(event.type, 0) + 1

    async def pod_changed(self, change: str, pod: Obj) -> None:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        await self.send(uid, pod_events(pod, change, datetime.now(UTC)))
        if change == "DELETED":
            self.pods.pop(uid, None)
            self.sent.pop(uid, None)
        else:
            self.pods[uid] = pod

    async def pods_relisted(self, items: list[Obj]) -> None:
        listed = {str((p.get("metadata") or {}).get("uid")) for p in items}
        for uid in [u for u in self.pods if u not in listed]:
            log.info("pod %s disappeared while the watch was down: reporting it stopped", uid)
            await self.pod_changed("DELETED", self.pods[uid])

    async def deployment_changed(self, change: str, deployment: Obj) -> None:
        uid = str((deployment.get("metadata") or {}).get("uid") or "")
        await self.send(uid, deployment_events(deployment, change, datetime.now(UTC)))
        if change == "DELETED":
            self.sent.pop(uid, None)

    async def nothing(self, items: list[Obj]) -> None:
        return None


async def api_client(settings: Settings) -> client.ApiClient:
    """An API client for AIWORKER_K8S_API_URL, else the pod's service account, else ~/.kube/config."""
    if settings.k8s_api_url:
        configuration = client.Configuration(host=settings.k8s_api_url.rstrip("/"))
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        try:
            await config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise K8sWatchError(
                f"no Kubernetes API: not in a pod and no usable kubeconfig ({exc}); set AIWORKER_K8S_API_URL"
            ) from exc
    return client.ApiClient()


def kafka_emitter(producer: Any, settings: Settings) -> Emit:
    async def emit(event: Event) -> None:
        topic = settings.topic(topics.AGENT_EVENTS if event.source == "agent" else topics.CONTROL_EVENTS)
        await producer.send_and_wait(topic, event.model_dump_json().encode(), key=event.routing_key().encode())
        context = {"event_id": event.id, "event_type": event.type, "agent_id": getattr(event, "agent_id", None), "topic": topic}
        log.info("sent %s %s (%s) to %s", event.type, event.routing_key(), event.id, topic, extra=context)

    return emit


async def watch(settings: Settings, bootstrap: str, stopping: asyncio.Event) -> None:
    from app.producer import kafka_producer

    producer = kafka_producer(settings, bootstrap)
    await producer.start()
    from app.commands.k8s_observe import serve_probes

    runner = None
    try:
        async with await api_client(settings) as api:
            watcher = Watcher(settings, api, kafka_emitter(producer, settings))
            runner = await serve_probes(settings, watcher)
            await watcher.run(stopping)
    finally:
        if runner is not None:
            await runner.cleanup()
        await producer.stop()


def run_k8s_watch(settings: Settings, bootstrap: str) -> int:
    import signal

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await watch(settings, bootstrap, stopping)

    asyncio.run(main())
    return 0
