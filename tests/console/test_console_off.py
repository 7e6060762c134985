"""Without AIWORKER_CONSOLE_TOKEN there is no console: every /console path is a 404, the rest of the web serves."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from app.settings import Settings
from webhooks.server import init


async def test_no_console_token_no_console(settings: Settings) -> None:
    assert not settings.console_token.get_secret_value()
    async with TestClient(TestServer(init(settings, settings.kafka_bootstrap))) as client:
        for path in ("/console", "/console/", "/console/login", "/console/static/console.css", "/console/dlq"):
            response = await client.get(path, headers={"Authorization": "Bearer "})
            assert response.status == 404, path
        response = await client.post("/console/login", data={"token": ""})
        assert response.status == 404
        assert (await client.get("/healthz")).status == 200


async def test_a_database_that_does_not_answer_is_a_503_that_says_so(settings: Settings) -> None:
    down = settings.model_copy(
        update={"database_url": SecretStr("mysql://root@127.0.0.1:1/nowhere"), "console_token": SecretStr("console-t")}
    )
    async with TestClient(TestServer(init(down, down.kafka_bootstrap))) as client:
        headers = {"Authorization": "Bearer console-t", "Accept": "application/json"}
        for path in ("/console/", "/console/agents", "/console/deliveries", "/console/projects/p1", "/console/tasks/t1"):
            response = await client.get(path, headers=headers)
            assert response.status == 503, (path, response.status, await response.text())
            body = await response.json()
            assert "database did not answer" in body["detail"] and "nowhere" not in body["detail"], body
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
