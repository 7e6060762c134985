"""The Gitea client against the fake API server: pages, retries on 429/500 with Retry-After, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.commands.gitea_client import PAGE_LIMIT, GiteaClient, GiteaError, GiteaRefused, next_link
from tests.reconcile.fake_gitea import TOKEN, fake_gitea

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_next_link() -> None:
    link = '<https://g/api/v1/x?page=2&limit=50>; rel="next",<https://g/api/v1/x?page=3&limit=50>; rel="last"'
    assert next_link(link) == "https://g/api/v1/x?page=2&limit=50"
    assert next_link('<https://g/api/v1/x?page=1>; rel="first"') is None and next_link(None) is None


async def test_every_page_is_read_through_rate_limits_and_errors() -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async with fake_gitea(fault_every=3) as api:
        repo = api.repo(77, "acme", "shop")
        count = 2 * PAGE_LIMIT + 7
        for number in range(1, count + 1):
            repo.add_pull(number, branch=f"b{number}", created=T0, updated=T0 + timedelta(seconds=number))
        async with GiteaClient(api.url, TOKEN, sleep=sleep, backoff=0.01) as client:
            pages = client.pages(client.repo_path("acme", "shop", "/pulls"), {"state": "all", "sort": "recentupdate"})
            seen = [p["number"] async for page in pages for p in page]
    assert seen == list(range(count, 0, -1))  # newest first, each once, across 3 pages
    assert api.faults >= 1 and client.counts.retries == api.faults
    assert set(client.counts.errors or {}) <= {"429", "500"} and client.counts.errors
    assert 0.0 in delays  # a 429's Retry-After: 0 was honoured instead of the backoff
    assert api.requests_to("page=3") >= 1


async def test_refusals_name_the_repository_and_never_the_token() -> None:
    async with fake_gitea() as api:
        repo = api.repo(78, "acme", "secret")
        async with GiteaClient(api.url, "wrong-token-value") as client:
            with pytest.raises(GiteaRefused) as refused:
                await client.get(client.repo_path("acme", "secret"))
        assert refused.value.status == 401 and "wrong-token-value" not in str(refused.value)
        assert "AIWORKER_GITEA_TOKEN" in str(refused.value)
        repo.refuse = 403
        async with GiteaClient(api.url, TOKEN) as client:
            with pytest.raises(GiteaRefused) as forbidden:
                await client.get(client.repo_path("acme", "secret", "/pulls"))
            assert forbidden.value.status == 403 and "/repos/acme/secret/pulls" in str(forbidden.value)
            with pytest.raises(GiteaRefused) as missing:
                await client.get(client.repo_path("acme", "gone"))
            assert missing.value.status == 404 and "acme/gone" in str(missing.value)
        assert client.counts.retries == 0  # refusals are not retried


async def test_a_server_that_keeps_failing_gives_up_with_a_clear_error() -> None:
    async def sleep(seconds: float) -> None:
        return None

    async with fake_gitea(fault_every=1) as api:
        api.repo(79, "acme", "down")
        async with GiteaClient(api.url, TOKEN, attempts=3, sleep=sleep) as client:
            with pytest.raises(GiteaError, match="after 3 attempts"):
                await client.get(client.repo_path("acme", "down"))
        assert client.counts.requests == 3


def test_the_gitea_url_setting() -> None:
    from app.settings import SettingsError, load_settings

    assert load_settings(gitea_url="https://git.example.com/api/v1/").gitea_url == "https://git.example.com"
    assert load_settings().gitea_url == "" and load_settings().reconcile_seconds == 300
    with pytest.raises(SettingsError, match="AIWORKER_GITEA_URL"):
        load_settings(gitea_url="git.example.com")
    with pytest.raises(SettingsError, match="AIWORKER_RECONCILE_SECONDS"):
        load_settings(reconcile_seconds="1")
    assert "tok-123" not in repr(load_settings(gitea_token="tok-123"))
