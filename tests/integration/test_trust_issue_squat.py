"""A tenant whose project row names its repository by owner/name only (no repository id) cannot take another
project's issue task ids (issue 11 red team), on the real web, broker, database and a fold worker.

An issue's task id is uuid5(repository id, issue number), the id taken from the signed payload. Before: on such a
project's own hook the payload was checked by owner/name only, so the tenant could sign an "issue opened" naming
its own owner/name and the victim's repository id, and so create, in its own project, the task of the victim's
issue #N before that issue existed: the victim's real issue #N was then refused in the fold ("the task its issue
makes exists in another project") and never became a task."""

from __future__ import annotations

import json
import uuid
from typing import Any

from app.settings import Settings
from tests.gitea_samples import load_sample, sign
from tests.harness import WorkerProcess, eventually, fetch_all, fold_caught_up
from tests.webhooks.ingest_helpers import insert_project, unique_repo_id, web_client


def issue_opened(repository: dict[str, Any], number: int) -> bytes:
    payload = load_sample("issues__opened_aiworker").payload
    payload["repository"] = repository
    payload["issue"]["number"] = number
    return json.dumps(payload, separators=(",", ":")).encode()


def sent(body: bytes, secret: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Gitea-Event": "issues", "X-Gitea-Event-Type": "issues",
            "X-Gitea-Delivery": str(uuid.uuid4()), **sign(body, secret)}  # fmt: skip


async def test_a_project_without_a_repository_id_cannot_take_another_projects_issue_task_ids(
    settings: Settings, pool: Any, worker: WorkerProcess
) -> None:
    victim_repo, evil_repo = unique_repo_id(), unique_repo_id()
    victim_secret, evil_secret = f"v-{uuid.uuid4().hex}", f"e-{uuid.uuid4().hex}"
    victim = await insert_project(pool, repo_id=victim_repo, owner=f"v{victim_repo}", name="shop", secret=victim_secret)
    evil = await insert_project(pool, repo_id=None, owner=f"e{evil_repo}", name="shop", secret=evil_secret)
    own = {"id": victim_repo, "name": "shop", "full_name": f"v{victim_repo}/shop", "owner": {"login": f"v{victim_repo}"}}
    squat = {**own, "full_name": f"e{evil_repo}/shop", "owner": {"login": f"e{evil_repo}"}}  # evil's names, victim's id
    async with web_client(settings) as client:
        body = issue_opened(squat, 7)
        response = await client.post(f"/webhooks/gitea/{evil}", data=body, headers=sent(body, evil_secret))
        assert response.status == 403, await response.text()  # before: 202, the victim's task id made in evil's project
        problem = await response.json()
        assert f"id {victim_repo}" in problem["detail"] and "another project's repository" in problem["detail"]
        # evil's own repository (an id no project names) still opens evil's tasks
        body = issue_opened({**squat, "id": evil_repo}, 7)
        response = await client.post(f"/webhooks/gitea/{evil}", data=body, headers=sent(body, evil_secret))
        assert response.status == 202, await response.text()
        await fold_caught_up(settings, pool)
        # the victim's real issue #7 becomes the victim's task
        body = issue_opened(own, 7)
        response = await client.post(f"/webhooks/gitea/{victim}", data=body, headers=sent(body, victim_secret))
        assert response.status == 202, await response.text()

    async def tasks() -> list[dict[str, Any]] | None:
        rows = await fetch_all(pool, "SELECT project_id FROM tasks WHERE project_id IN (%s, %s) ORDER BY project_id",
                               [victim, evil])  # fmt: skip
        return rows if len(rows) == 2 else None

    rows = await eventually(tasks, what="one task in each project")
    assert sorted(r["project_id"] for r in rows) == sorted([victim, evil])
