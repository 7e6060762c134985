"""The load driver: sends a Workload over HTTP as real clients do, and remembers what was answered 2xx.

Each agent's events go in order, in batches (a JSON array per request), one request at a time per agent;
agents run concurrently. A 503 or a connection failure is retried after a pause, as a client would. A
request answered 2xx counts as accepted; one whose answer was lost (the connection broke) is sent again
and, if it then succeeds, counts once (duplicates on the topic carry the same ids).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.faults.workload import Workload
from tests.gitea_samples import sign


@dataclass
class Sent:
    events: int = 0  # events sent at least once
    accepted: set[str] = field(default_factory=set)
    deliveries: set[str] = field(default_factory=set)  # the fold event ids (gitea:<uuid5>) of accepted deliveries
    refused_ids: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    spooled: int = 0


class Driver:
    def __init__(
        self, url: Callable[[], str], service_token: str, gitea_secret: str, *, batch: int = 250, rate: float | None = None
    ) -> None:
        self.url = url  # a function: the web process may move (restart) during the run
        self.headers = {"Authorization": f"Bearer {service_token}"}
        self.gitea_secret = gitea_secret
        self.batch = batch
        self.sent = Sent()
        self.progress = 0  # events accepted so far (the fault schedule watches it)
        self.rate = rate  # events per second of the main load (None: as fast as the service takes them)
        self._started = 0.0
        self._paced = 0

    async def _pace(self, count: int) -> None:
        """Keep the main load at `rate`, so that the run lasts long enough for faults to land in it."""
        if self.rate is None or not self._started:
            return
        self._paced += count
        ahead = self._started + self._paced / self.rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)

    async def _post(self, session: aiohttp.ClientSession, path: str, *, deadline: float, **kwargs: Any) -> dict[str, Any]:
        while True:
            try:
                async with session.post(self.url() + path, timeout=aiohttp.ClientTimeout(total=30), **kwargs) as response:
                    self.sent.statuses[response.status] += 1
                    assert response.status < 500 or response.status == 503, (response.status, await response.text())
                    if response.status < 300:
                        body: dict[str, Any] = await response.json()
                        return body
                    if response.status != 503:
                        return {"status": response.status}
            except (aiohttp.ClientError, TimeoutError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: not accepted before the run's deadline")
            self.sent.retries += 1
            await asyncio.sleep(0.3)

    async def send_events(self, session: aiohttp.ClientSession, events: list[dict[str, Any]], deadline: float) -> None:
        for start in range(0, len(events), self.batch):
            chunk = events[start : start + self.batch]
            await self._pace(len(chunk))
            self.sent.events += len(chunk)
            body = await self._post(session, "/events", json=chunk, headers=self.headers, deadline=deadline)
            assert "ids" in body, f"a valid batch was refused: {body}"
            self.sent.accepted.update(body["ids"])
            self.sent.spooled += len(chunk) if body.get("durable") == "spool" else 0
            self.progress += len(chunk)

    async def send_gitea(self, session: aiohttp.ClientSession, load: Workload, deadline: float) -> None:
        for payload, headers, delivery in load.gitea:
            self.sent.events += 1
            signed = {**headers, **sign(payload, self.gitea_secret), "Content-Type": "application/json"}
            body = await self._post(session, "/webhooks/gitea", data=payload, headers=signed, deadline=deadline)
            assert body.get("delivery_id") == delivery, body
            self.sent.deliveries.add(body["event_id"])  # what the fold records (the same bytes twice are one event)
            self.progress += 1

    async def send_refused(self, session: aiohttp.ClientSession, load: Workload, deadline: float) -> None:
        for event in load.refused:
            self.sent.events += 1
            body = await self._post(session, "/events", json=event, headers=self.headers, deadline=deadline)
            assert body.get("status") == 422, body
            self.sent.refused_ids.add(event["id"])

    async def setup(self, load: Workload, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            await self.send_events(session, load.projects, deadline)
            await self.send_events(session, load.tasks, deadline)

    async def run(self, load: Workload, timeout: float = 600.0, concurrency: int = 8) -> None:
        deadline = time.monotonic() + timeout
        self._started = time.monotonic()
        gate = asyncio.Semaphore(concurrency)

        async def agent(events: list[dict[str, Any]]) -> None:
            async with gate:
                await self.send_events(session, events, deadline)

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(
                *(agent(events) for events in load.agents.values()),
                self.send_gitea(session, load, deadline),
                self.send_refused(session, load, deadline),
            )
