"""Helpers of the ingest tests: an in-process web app on the real broker and database, raw topic reads."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from app.settings import Settings
from tests.harness import from_beginning
from webhooks.server import init


@asynccontextmanager
async def web_client(settings: Settings, bootstrap: str | None = None) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(init(settings, bootstrap or settings.kafka_bootstrap))) as client:
        yield client


@dataclass(frozen=True)
class Raw:
    partition: int
    offset: int
    key: bytes | None
    value: bytes


async def read_raw(bootstrap: str, topic: str, *, timeout: float = 1.5, expect: int | None = None) -> list[Raw]:
    """Every record of a topic (key and value bytes), by partition then offset; stops early once `expect` are read."""
    out: list[Raw] = []
    async with from_beginning(bootstrap, topic) as (consumer, _tps):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (expect is None or len(out) < expect):
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                out.extend(Raw(r.partition, r.offset, r.key, r.value) for r in records)
    return sorted(out, key=lambda r: (r.partition, r.offset))


async def insert_project(
    pool: Any,
    *,
    repo_id: int | None,
    owner: str,
    name: str,
    secret: str | None,
    previous: str | None = None,
    rotated_at: datetime | None = None,
) -> str:
    project_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO projects (id, name, k8s_namespace, gitea_repo_id, gitea_owner, gitea_repo_name, "
            "gitea_webhook_secret, gitea_webhook_secret_previous, gitea_webhook_secret_rotated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [project_id, name, f"ns-{project_id}", repo_id, owner, name, secret, previous, rotated_at],
        )
        await conn.commit()
    return project_id


def unique_repo_id() -> int:
    return 1_000_000 + uuid.uuid4().int % 1_000_000_000
