"""A read-only client of Gitea's REST API (/api/v1) for `reconcile`: pagination, timeouts, retries.

- `Authorization: token <AIWORKER_GITEA_TOKEN>`; the token never appears in an error, a log line or a metric.
- Pagination as Gitea does it: `page` (1-based) and `limit`; the `Link` header's `rel="next"` is followed while
  there is one, else the next page is asked for while a page came back full and `X-Total-Count` says more exist.
- Every request has a timeout; 5xx, 429 and network errors are retried with exponential backoff and jitter (a 429's
  or 503's `Retry-After` is honoured, bounded); 401, 403 and 404 raise `GiteaRefused` at once, naming the
  repository and what to do, so that the caller can report that project and go on with the others.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from app import AiworkerError
from db.errors import Backoff

PAGE_LIMIT = 50  # Gitea's default MAX_RESPONSE_ITEMS: a larger limit is cut to it anyway
MAX_RETRY_AFTER = 60.0
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class GiteaError(AiworkerError):
    """Gitea's API could not be read (after the retries); the message names the request, never the token."""


class GiteaRefused(GiteaError):
    """Gitea answered 401, 403 or 404: the token is wrong, lacks access to the repository, or the repository is gone."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class CallCounts:
    """What one client did, for metrics and the cost figures of docs/operations.md."""

    requests: int = 0
    retries: int = 0
    errors: dict[str, int] | None = None

    def error(self, kind: str) -> None:
        self.errors = self.errors or {}
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return min(max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0), MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return None


def next_link(link: str | None) -> str | None:
    """The `rel="next"` URL of a Link header, or None."""
    found = _NEXT.search(link or "")
    return found.group(1) if found else None


def _refusal(status: int, what: str) -> str:
    if status == 401:
        return f"Gitea refused the token (401) on {what}: AIWORKER_GITEA_TOKEN is wrong or expired; create a new one"
    if status == 403:
        return (f"Gitea refused access (403) on {what}: give the token's user read access to this repository and the "
                "token the read:repository and read:issue scopes")  # fmt: skip
    return (f"Gitea has no {what} (404): the repository was renamed, deleted or is private to the token's user; fix "
            "the project's gitea_owner/gitea_repo_name or give the user read access")  # fmt: skip


class GiteaClient:
    """One aiohttp session against one Gitea; `attempts` tries per request, backoff from `backoff` seconds."""

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 10.0, attempts: int = 5, backoff: float = 0.5,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:  # fmt: skip
        self.base = base_url.rstrip("/") + "/api/v1"
        self.attempts, self.backoff, self.sleep = max(1, attempts), backoff, sleep
        headers = {"Accept": "application/json", "User-Agent": "aiworker-events-reconcile"}
        if token:
            headers["Authorization"] = f"token {token}"
        self.session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=timeout))
        self.counts = CallCounts()

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> GiteaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def repo_path(self, owner: str, name: str, tail: str = "") -> str:
        return f"{self.base}/repos/{quote(owner, safe='')}/{quote(name, safe='')}{tail}"

    async def get(self, url: str, params: Mapping[str, str | int] | None = None) -> tuple[Any, Mapping[str, str]]:
        """The decoded JSON body and the headers of a GET, retried on 5xx/429/network errors."""
        what = "GET " + url.removeprefix(self.base)
        backoff = Backoff(self.backoff, self.backoff * 2 ** (self.attempts - 1))  # db/errors.py: with jitter
        for attempt in range(1, self.attempts + 1):
            self.counts.requests += 1
            wait: float | None = None
            try:
                async with self.session.get(url, params=params) as response:
                    if response.status in (401, 403, 404):
                        self.counts.error(str(response.status))
                        raise GiteaRefused(_refusal(response.status, what), response.status)
                    if response.status == 429 or response.status >= 500:
                        self.counts.error(str(response.status))
                        wait = _retry_after(response.headers)
                        problem = f"HTTP {response.status}"
                    elif response.status >= 400:
                        self.counts.error(str(response.status))
                        text = (await response.text())[:200]
                        raise GiteaError(f"Gitea answered {response.status} on {what}: {text}")
                    else:
                        try:
                            return await response.json(content_type=None), response.headers
                        except ValueError as exc:
                            self.counts.error("invalid_json")
                            raise GiteaError(f"Gitea's answer to {what} is not JSON: {exc}") from exc
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self.counts.error("timeout" if isinstance(exc, TimeoutError) else "network")
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == self.attempts:
                raise GiteaError(f"Gitea did not answer {what} after {self.attempts} attempts (last: {problem})")
            self.counts.retries += 1
            await self.sleep(wait if wait is not None else backoff.delay())
        raise AssertionError("unreachable")

    async def pages(self, url: str, params: Mapping[str, str | int]) -> AsyncIterator[list[Any]]:
        """Each page of a list endpoint, in Gitea's order, until the last one.

        The next page is asked for by number (not by the Link URL itself, which names Gitea's public ROOT_URL, not
        necessarily AIWORKER_GITEA_URL) while the `Link` header has a `rel="next"`; without a Link header, while a
        page came back full and `X-Total-Count` (when sent) says more exist.
        """
        page, seen = 1, 0
        while True:
            body, headers = await self.get(url, {**params, "limit": PAGE_LIMIT, "page": page})
            items = body if isinstance(body, list) else []
            seen += len(items)
            yield items
            count = headers.get("X-Total-Count", "")
            if "Link" in headers:
                more = next_link(headers.get("Link")) is not None
            else:
                more = len(items) >= PAGE_LIMIT and (not count.isdigit() or seen < int(count))
            if not more or not items:
                return
            page += 1
