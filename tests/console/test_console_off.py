"""Without AIWORKER_CONSOLE_TOKEN there is no console: every /console path is a 404, the rest of the web serves."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

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
