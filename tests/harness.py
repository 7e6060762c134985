"""Helpers of the integration tests: worker processes, reading topics, waiting for rows."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.settings import Settings

T = TypeVar("T")


def settings_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.environment()}


class ChildProcess:
    """A `python -m app ...` process of a test: stopped with SIGTERM (kill -9 on demand), its output in a log file."""

    log_path: Path
    process: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class WorkerProcess(ChildProcess):
    """A worker (`python -m app worker`) with its own port for /healthz, /readyz and /metrics."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        from app.commands.broker import free_port

        self.settings = settings.model_copy(update={"worker_http_port": free_port()})
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"], env=settings_env(self.settings), stdout=log, stderr=log
        )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.worker_http_port}"


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout: float = 45.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something other than None (or False), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def from_beginning(bootstrap: str, topic: str) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A group-less consumer assigned every partition of `topic`, at the beginning; stopped afterwards."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        yield consumer, tps
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str, *, timeout: float = 2.0) -> list[Any]:
    """Every record of a topic from the beginning (decoded JSON values), without a consumer group."""
    values: list[Any] = []
    async with from_beginning(bootstrap, topic) as (consumer, _tps):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                values.extend(json.loads(r.value) for r in records)
    return values


async def fetch_all(pool: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    from asyncmy.cursors import DictCursor

    async with pool.acquire() as conn:
        async with conn.cursor(DictCursor) as cur:
            await cur.execute(sql, params or [])
            rows = list(await cur.fetchall())
        await conn.commit()
    return rows


# ---- additive: helpers of the replay, fuzz and fault suites ----


async def produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes]], *, partition: int | None = None) -> None:
    """Produce (topic, key, value) records with acks=all, as a direct producer would."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key, partition=partition) for topic, key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topics: list[str], *, timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """The end offset of every partition of these topics, from a fetch's high watermark.

    Not ListOffsets alone: Tansu answers it with the last batch's base offset + 1, which falls short
    of the end after a batch of several records.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or set())]
        if not tps:
            return {}
        consumer.assign(tps)
        listed = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(listed[tp] - 1, 0))
        deadline = time.monotonic() + timeout
        while any(consumer.highwater(tp) is None for tp in tps) and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=200, max_records=1)
        return {(tp.topic, tp.partition): max(int(listed[tp]), int(consumer.highwater(tp) or 0)) for tp in tps}
    finally:
        await consumer.stop()


async def fold_drained(settings: Settings, pool: Any) -> bool:
    """Whether the router took in every input record and the fold folded every record it reads (agent.events
    straight, fold.tasks), by their stored positions (the router's under `<worker id>.router`)."""
    from app import topics
    from app.topics import router_group

    inputs = {settings.topic(t) for t in topics.INPUT_TOPICS}
    folded = {settings.topic(topics.AGENT_EVENTS), settings.topic(topics.FOLD_TASKS)}
    router = router_group(settings)
    rows = await fetch_all(  # before the end offsets: what the router stored, it produced to fold.tasks before
        pool, "SELECT consumer, topic, `partition`, next_offset FROM fold_positions WHERE consumer IN (%s, %s)",
        [settings.worker_id, router],
    )  # fmt: skip
    stored = {(r["consumer"], r["topic"], int(r["partition"])): int(r["next_offset"]) for r in rows}
    ends = await end_offsets(settings.kafka_bootstrap, sorted(inputs | folded))
    return all(
        stored.get((router, topic, partition), 0) >= end
        for (topic, partition), end in ends.items() if topic in inputs and end > 0
    ) and all(
        stored.get((settings.worker_id, topic, partition), 0) >= end
        for (topic, partition), end in ends.items() if topic in folded and end > 0
    )  # fmt: skip


async def fold_caught_up(settings: Settings, pool: Any, *, timeout: float = 60.0) -> None:
    """Wait until the worker has routed and folded every record of the input topics (`fold_drained`)."""
    await eventually(lambda: fold_drained(settings, pool), timeout=timeout, what="the fold to reach the end of its topics")


async def read_records(bootstrap: str, topic: str, *, timeout: float = 2.0) -> list[Any]:
    """Every record of a topic from the beginning (aiokafka ConsumerRecords, raw bytes), without a group."""
    ends = await end_offsets(bootstrap, [topic])
    records: list[Any] = []
    async with from_beginning(bootstrap, topic) as (consumer, tps):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and [tp for tp in tps if await consumer.position(tp) < ends[(topic, tp.partition)]]:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
    return records


async def run_cli(settings: Settings, *args: str, timeout: float = 120.0) -> tuple[int, str]:
    """`python -m app <args>` with the test's settings; (exit code, stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", *args, env=settings_env(settings),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        text = output.decode(errors="replace")
        raise AssertionError(f"`{' '.join(args)}` did not finish within {timeout:.0f}s:\n{text}") from None
    return int(process.returncode or 0), output.decode(errors="replace")


class WebProcess(ChildProcess):
    """The web process (`python -m app web`) on its own port, as a deployment runs it."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        from app.commands.broker import free_port

        self.settings = settings.model_copy(update={"http_host": "127.0.0.1", "http_port": free_port()})
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def start(self, timeout: float = 30.0) -> WebProcess:
        import urllib.error
        import urllib.request

        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "web"], env=settings_env(self.settings), stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the web process exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise AssertionError(f"the web process did not answer /healthz within {timeout:.0f}s:\n{self.log()[-3000:]}")


async def produce_at(bootstrap: str, records: list[tuple[str, bytes | None, bytes]]) -> list[tuple[str, int, int]]:
    """Produce (topic, key, value) records with acks=all; the (topic, partition, offset) of each."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for topic, key, value in records]
        metadata = await asyncio.gather(*futures)
        return [(m.topic, m.partition, m.offset) for m in metadata]
    finally:
        await producer.stop()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    """GET <url>/metrics, parsed: {(sample name, labels): value}."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200, f"GET {url}/metrics answered {response.status}"
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels` (summed when several match), or None."""
    wanted = set(labels.items())
    values = [value for (n, have), value in samples.items() if n == name and wanted <= have]
    return sum(values) if values else None


async def get_json(url: str) -> tuple[int, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()
