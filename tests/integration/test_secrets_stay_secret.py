"""Secrets stay secret: the demo runs against a web and a worker that hold known, unique secrets (service token,
agent token key, Gitea secret, and a database user with a password made for the test); then everything the
system wrote is searched for them: both processes' logs, the demo's output, every record of every topic (key,
value, headers), every row of every table (but the columns that hold project webhook secrets), every HTTP
answer (status line, headers, body), /metrics and /readyz. A database outage answers what to do, not the
driver's text."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from app.commands.demo import run as run_demo
from app.settings import Settings
from db.pool import connect, create_pool, parse_database_url
from tests.gitea_samples import load_sample
from tests.harness import WebProcess, WorkerProcess, eventually, fetch_all, read_records
from tests.webhooks.ingest_helpers import web_client
from webhooks.auth import agent_mac, agent_token

pytestmark = pytest.mark.integration

TAG = uuid.uuid4().hex[:10]
SECRETS = {
    "service token": f"svc-{TAG}-Qx7",
    "agent token key": f"agk-{TAG}-Wp3",
    "gitea secret": f"gts-{TAG}-Zm9",
    "database password": f"dbpw-{TAG}-Kv5",
}
HOSTS = ("%", "localhost", "127.0.0.1")


@pytest.fixture
async def database_user(database_url: str) -> AsyncIterator[str]:
    """The test database's URL with a user of its own that logs in with a password (dropped afterwards)."""
    address = parse_database_url(database_url)
    user, password = f"aiw_{TAG}", SECRETS["database password"]
    conn = await connect(database_url, database=False)
    try:
        async with conn.cursor() as cur:
            for host in HOSTS:
                await cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
                await cur.execute(f"GRANT ALL PRIVILEGES ON `{address.database}`.* TO '{user}'@'{host}'")
        await conn.commit()
        yield f"mysql://{user}:{password}@{address.host}:{address.port}/{address.database}"
    finally:
        async with conn.cursor() as cur:
            for host in HOSTS:
                await cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
        await conn.commit()
        await conn.ensure_closed()


def with_secrets(settings: Settings, database_url: str) -> Settings:
    return settings.model_copy(
        update={
            "service_token": SecretStr(SECRETS["service token"]),
            "agent_token_key": SecretStr(SECRETS["agent token key"]),
            "gitea_secret": SecretStr(SECRETS["gitea secret"]),
            "database_url": SecretStr(database_url),
            "log_level": "debug",
        }
    )


class Answers:
    """Every HTTP answer an aiohttp client session of this test received: status, headers and body."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_end.append(self._ended)

    async def _ended(self, session: Any, context: Any, params: aiohttp.TraceRequestEndParams) -> None:
        response = params.response
        body = await response.read()  # cached: the caller reads it again
        self.texts.append(f"{response.status} {response.reason}\n{dict(response.headers)}\n{body.decode(errors='replace')}")

    def session_factory(self, real: Callable[..., aiohttp.ClientSession]) -> Callable[..., aiohttp.ClientSession]:
        def make(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
            return real(*args, trace_configs=[self.trace], **kwargs)

        return make


async def provoke_refusals(http: aiohttp.ClientSession, url: str) -> None:
    """Requests that get refusals and errors, so that their answers and log lines are searched too."""
    sample = load_sample("push__main")
    other = agent_token(SECRETS["agent token key"], "not-this-agent")
    json_type = {"Content-Type": "application/json"}
    service = {"Authorization": f"Bearer {SECRETS['service token']}", **json_type}
    requests: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("POST", "/events", b'{"type": "agent.heartbeat"}', {"Authorization": "Bearer wrong", **json_type}),
        ("POST", "/events", b"{not json", service),
        ("POST", "/events", b'{"type": "no.such.type", "id": "x"}', service),
        ("POST", "/events", b'{"type": "agent.heartbeat", "id": "h", "time": "2026-12-01T00:00:00Z", '
         b'"agent_id": "someone", "status": "idle"}', {"Authorization": f"Bearer {other}", "Content-Type": "application/json"}),
        ("POST", "/webhooks/gitea", sample.payload_bytes, sample.signed_headers("not-the-secret")),
        ("POST", "/webhooks/gitea", sample.payload_bytes, sample.headers),
        ("POST", "/webhooks/gitea", b"{not json", sample.signed_headers(SECRETS["gitea secret"])),
        ("GET", "/nowhere", b"", {}),
        ("GET", "/readyz", b"", {}),
        ("GET", "/metrics", b"", {}),
    ]  # fmt: skip
    for method, path, body, headers in requests:
        async with http.request(method, f"{url}{path}", data=body or None, headers=headers) as response:
            await response.read()


async def every_record(bootstrap: str, prefix: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        names = sorted(t for t in await consumer.topics() if t.startswith(prefix))
    finally:
        await consumer.stop()
    out: list[bytes] = []
    for topic in names:
        for record in await read_records(bootstrap, topic, timeout=5.0):
            out.append(b"%s\n%s\n%s" % (record.key or b"", record.value or b"", repr(record.headers).encode()))
    assert names and out, f"no records under {prefix}"
    return out


async def every_row(pool: Any) -> list[str]:
    """Every row of every table as text, without the columns that hold project webhook secrets."""
    rows: list[str] = []
    for table_row in await fetch_all(pool, "SHOW TABLES"):
        table = next(iter(table_row.values()))
        for row in await fetch_all(pool, f"SELECT * FROM `{table}`"):
            rows.append(f"{table}: " + repr({k: v for k, v in row.items() if "secret" not in k}))
    return rows


def leaks(haystacks: dict[str, list[str]], needles: dict[str, str]) -> list[str]:
    return [
        f"{needle_name} in {where} #{index}: …{text[max(0, text.find(needle) - 120):text.find(needle) + 60]}…"
        for where, texts in haystacks.items()
        for index, text in enumerate(texts)
        for needle_name, needle in needles.items()
        if needle in text
    ]  # fmt: skip


async def test_the_demo_writes_no_secret_anywhere(
    settings: Settings, database_user: str, pool: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    running = with_secrets(settings, database_user)
    worker = WorkerProcess(running, log_path=tmp_path / "worker.log").start()
    web = WebProcess(running, log_path=tmp_path / "web.log")
    answers = Answers()
    try:
        web.start()
        monkeypatch.setattr(aiohttp, "ClientSession", answers.session_factory(aiohttp.ClientSession))
        results = dict(await run_demo(web.settings.model_copy(update={"web_url": web.url})))
        assert results["project.upserted"] is None and results["agent registered"] is None, results
        async with aiohttp.ClientSession() as http:
            await provoke_refusals(http, web.url)
            async with http.get(f"{web.url}/metrics") as metrics:
                assert "aiworker_" in await metrics.text()
        monkeypatch.undo()
        agents = await eventually(lambda: fetch_all(pool, "SELECT id FROM agents"), what="the demo's agent row")
        await eventually(
            lambda: fetch_all(pool, "SELECT id FROM outbox LIMIT 1"), what="a transition in the outbox"
        )  # the worker folded and wrote transitions with its password user
    finally:
        web.stop()
        worker.stop()
    key = SECRETS["agent token key"]
    needles = {**SECRETS, **{f"token MAC of agent {a['id']}": agent_mac(key, a["id"]) for a in agents}}
    haystacks = {
        "web log": [web.log()],
        "worker log": [worker.log()],
        "demo output": [capsys.readouterr().out],
        "HTTP answers": answers.texts,
        "topic records": [r.decode(errors="replace") for r in await every_record(running.kafka_bootstrap, running.topic_prefix)],
        "rows": await every_row(pool),
    }
    assert len(answers.texts) >= 20 and all(haystacks.values()), {k: len(v) for k, v in haystacks.items()}
    assert any(a["id"] in text for text in haystacks["topic records"] for a in agents)  # the search sees what was written
    found = leaks(haystacks, needles)
    assert not found, "\n".join(found)


async def test_a_database_outage_answers_what_to_do_not_the_drivers_text(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"mysql://aiw:{SECRETS['database password']}@127.0.0.1:1/nowhere"  # nothing listens on port 1
    down = with_secrets(settings, url)
    sample = load_sample("push__main")
    caplog.set_level(logging.WARNING)
    async with web_client(down) as client:
        response = await client.post(
            "/webhooks/gitea", data=sample.payload_bytes, headers=sample.signed_headers(SECRETS["gitea secret"])
        )
        body = await response.text()
        assert response.status == 503 and response.headers.get("Retry-After"), body
        assert "redeliver it from Gitea" in body
        ready = await (await client.get("/readyz")).text()
    assert "OperationalError 2003" in ready, ready
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "OperationalError 2003" in logged, logged
    for text in (body, ready, logged):
        for driver_text in ("Connect call failed", "Can't connect", "Errno", SECRETS["database password"]):
            assert driver_text not in text, text


async def test_the_password_user_can_work(database_user: str) -> None:
    """The fixture's user logs in with its password: the search above covers a password that was really used."""
    created = await create_pool(database_user, minsize=1, maxsize=1)
    try:
        assert await fetch_all(created, "SELECT 1 AS one") == [{"one": 1}]
    finally:
        created.close()
        await created.wait_closed()
