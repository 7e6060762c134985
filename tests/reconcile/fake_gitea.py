"""A local Gitea REST API for the reconcile tests (aiohttp), answering as Gitea's swagger says.

Objects are built from the recorded deliveries' own objects (tests/data/gitea: a delivery's `pull_request`,
`issue` and `repository` are the API's PullRequest, Issue and Repository structs), with PullReview objects of the
swagger's fields. Lists are paginated by `page`/`limit` with `X-Total-Count` and `Link` headers as Gitea sends
them; every request must carry `Authorization: token <token>`; a repository can be refused (401/403/404); and the
server rate-limits (429 with Retry-After) and fails (500) now and then, on a fixed schedule.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.gitea_samples import load_sample

TOKEN = "gitea-token-for-tests"
MAX_LIMIT = 50  # Gitea's MAX_RESPONSE_ITEMS


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    pulls: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    refuse: int | None = None  # answer every request of this repository with this status

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def api(self) -> dict[str, Any]:
        """The Repository object, from a recorded delivery's, with this repository's id and names."""
        repo = copy.deepcopy(load_sample("pull_request__closed_merged").payload["repository"])
        url = f"https://git.test/{self.full_name}"
        repo.update(id=self.id, name=self.name, full_name=self.full_name, html_url=url, clone_url=f"{url}.git")
        repo["owner"] = {**repo["owner"], "login": self.owner, "username": self.owner}
        return repo

    def meta(self) -> dict[str, Any]:
        """RepositoryMeta: what an Issue carries as `repository`."""
        return {"id": self.id, "name": self.name, "owner": self.owner, "full_name": self.full_name}

    def add_pull(self, number: int, *, branch: str, state: str = "open", merged: bool = False, created: datetime,
                 updated: datetime, head_sha: str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4") -> dict[str, Any]:  # fmt: skip
        pull = copy.deepcopy(load_sample("pull_request__closed_merged").payload["pull_request"])
        closed = stamp(updated) if state == "closed" else None
        pull.update(
            id=self.id * 1000 + number, number=number, state=state, merged=merged, title=f"PR {number}",
            html_url=f"https://git.test/{self.full_name}/pulls/{number}", url=f"https://git.test/{self.full_name}/pulls/{number}",
            created_at=stamp(created), updated_at=stamp(updated), closed_at=closed,
            merged_at=closed if merged else None, merge_commit_sha="1d2c3b4a59687f6e5d4c3b2a1908f7e6d5c4b3a2" if merged else None,
            merged_by=pull["user"] if merged else None, mergeable=state == "open",
        )  # fmt: skip
        for side, ref in (("head", branch), ("base", "main")):
            pull[side] = {**pull[side], "ref": ref, "label": ref, "repo_id": self.id, "repo": self.api()}
        pull["head"]["sha"] = head_sha
        self.pulls.append(pull)
        return pull

    def add_review(self, number: int, review_id: int, *, state: str, submitted: datetime, stale: bool = False,
                   dismissed: bool = False) -> dict[str, Any]:  # fmt: skip
        """A PullReview with the swagger's fields; `state` APPROVED, REQUEST_CHANGES, COMMENT, PENDING..."""
        user = copy.deepcopy(load_sample("pull_request_review_approved").payload["sender"])
        review = {
            "id": review_id, "user": user, "team": None, "state": state, "body": f"review {review_id}",
            "commit_id": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4", "stale": stale, "official": True,
            "dismissed": dismissed, "comments_count": 0, "submitted_at": stamp(submitted), "updated_at": stamp(submitted),
            "html_url": f"https://git.test/{self.full_name}/pulls/{number}#issuecomment-{review_id}",
            "pull_request_url": f"https://git.test/{self.full_name}/pulls/{number}",
        }  # fmt: skip
        self.reviews.setdefault(number, []).append(review)
        return review

    def add_issue(self, number: int, *, labels: list[str], state: str = "open", created: datetime,
                  updated: datetime) -> dict[str, Any]:  # fmt: skip
        issue = copy.deepcopy(load_sample("issues__opened_aiworker").payload["issue"])
        label = issue["labels"][0]
        issue.update(
            id=self.id * 1000 + 500 + number, number=number, state=state, title=f"Issue {number}", body=f"Do {number}",
            labels=[{**label, "id": i + 1, "name": name} for i, name in enumerate(labels)],
            html_url=f"https://git.test/{self.full_name}/issues/{number}", created_at=stamp(created),
            updated_at=stamp(updated), closed_at=stamp(updated) if state == "closed" else None, pull_request=None,
            repository=self.meta(),
        )  # fmt: skip
        self.issues.append(issue)
        return issue


class FakeGitea:
    """The API server's state and its request log; `faults` maps a request count to 429 or 500."""

    def __init__(self, *, fault_every: int = 0) -> None:
        self.repos: dict[str, Repo] = {}
        self.log: list[str] = []
        self.fault_every = fault_every
        self.faults = 0
        self.url = ""

    def repo(self, repo_id: int, owner: str, name: str) -> Repo:
        made = self.repos[f"{owner}/{name}"] = Repo(repo_id, owner, name)
        return made

    def _fault(self) -> web.Response | None:
        if not self.fault_every or len(self.log) % self.fault_every:
            return None
        self.faults += 1
        if self.faults % 2:
            return web.json_response({"message": "rate limit exceeded"}, status=429, headers={"Retry-After": "0"})
        return web.json_response({"message": "internal error"}, status=500)

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        page = max(int(request.query.get("page", "1") or 1), 1)
        limit = min(max(int(request.query.get("limit", str(MAX_LIMIT)) or MAX_LIMIT), 1), MAX_LIMIT)
        chunk = items[(page - 1) * limit : page * limit]
        last = max((len(items) + limit - 1) // limit, 1)
        links = []
        base = f"https://git.public.example{request.path}"  # Gitea's ROOT_URL, not the address it was asked at
        for rel, number in (("next", page + 1), ("last", last), ("first", 1), ("prev", page - 1)):
            if (rel == "next" and page < last) or (rel in ("last",) and page < last) or (rel in ("first", "prev") and page > 1):
                links.append(f'<{base}?{urlencode({**request.query, "page": number})}>; rel="{rel}"')
        headers = {"X-Total-Count": str(len(items))}
        if links:
            headers["Link"] = ",".join(links)
        return web.json_response(chunk, headers=headers)

    async def handle(self, request: web.Request) -> web.Response:
        self.log.append(f"{request.path}?{request.query_string}")
        if request.headers.get("Authorization") != f"token {TOKEN}":
            return web.json_response({"message": "token is required", "url": "https://git.test/api/swagger"}, status=401)
        if (fault := self._fault()) is not None:
            return fault
        parts = request.path.removeprefix("/api/v1/repos/").split("/")
        repo = self.repos.get("/".join(parts[:2]))
        if repo is None:
            return web.json_response({"message": "The target couldn't be found.", "errors": []}, status=404)
        if repo.refuse is not None:
            return web.json_response({"message": "user does not have permission"}, status=repo.refuse)
        rest, query = parts[2:], request.query
        if not rest:
            return web.json_response(repo.api())
        if rest == ["pulls"]:
            assert query.get("sort") == "recentupdate" and query.get("state") == "all", query
            return self._page(request, sorted(repo.pulls, key=lambda p: p["updated_at"], reverse=True))
        if len(rest) == 2 and rest[0] == "pulls":
            found = [p for p in repo.pulls if str(p["number"]) == rest[1]]
            return web.json_response(found[0]) if found else web.json_response({"message": "not found"}, status=404)
        if len(rest) == 3 and rest[0] == "pulls" and rest[2] == "reviews":
            return self._page(request, sorted(repo.reviews.get(int(rest[1]), []), key=lambda r: r["id"]))
        if rest == ["issues"]:
            assert query.get("type") == "issues", query
            wanted = {name for name in query.get("labels", "").split(",") if name}
            since = query.get("since")
            items = [
                i for i in repo.issues
                if (query.get("state") == "all" or i["state"] == query.get("state", "open"))
                and wanted <= {label["name"] for label in i["labels"]} and (since is None or i["updated_at"] >= since)
            ]  # fmt: skip
            return self._page(request, sorted(items, key=lambda i: i["created_at"], reverse=True))
        return web.json_response({"message": "not found"}, status=404)

    def requests_to(self, fragment: str) -> int:
        return sum(1 for line in self.log if fragment in line)


@asynccontextmanager
async def fake_gitea(*, fault_every: int = 0) -> AsyncIterator[FakeGitea]:
    api = FakeGitea(fault_every=fault_every)
    app = web.Application()
    app.router.add_get("/api/v1/{tail:.*}", api.handle)
    server = TestServer(app)
    await server.start_server()
    api.url = str(server.make_url("/")).rstrip("/")
    try:
        yield api
    finally:
        await server.close()
