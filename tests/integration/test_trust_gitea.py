"""Issue 11's Gitea attacks, each against the real web, broker, database and a fold worker: a tenant holding only
its own project's webhook secret cannot touch another tenant's task, an unsigned header cannot change what a
signed payload means, and the same signed bytes under a fresh delivery id change nothing.

Every scenario ends with a legitimate delivery that does change the victim's task, so that "unchanged" cannot
come from a fold that stopped."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from app.settings import Settings
from tests.gitea_samples import load_sample, sign
from tests.harness import WorkerProcess, eventually, fetch_all, fold_caught_up, read_topic
from tests.webhooks.ingest_helpers import insert_project, unique_repo_id, web_client

T0 = "2026-11-22T10:00:00Z"
PR = 23


@dataclass
class Tenant:
    project_id: str
    repo_id: int
    owner: str
    name: str
    secret: str

    def repository(self, **changes: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"id": self.repo_id, "name": self.name, "full_name": f"{self.owner}/{self.name}",
                                "owner": {"id": 1, "login": self.owner, "username": self.owner}}  # fmt: skip
        return {**base, **changes}


async def tenant(pool: Any, label: str, *, repo_id: int | None = None) -> Tenant:
    repo = repo_id or unique_repo_id()
    owner, name, secret = f"{label}-{repo}", "shop", f"secret-{label}-{uuid.uuid4().hex}"
    project_id = await insert_project(pool, repo_id=repo, owner=owner, name=name, secret=secret)
    return Tenant(project_id, repo, owner, name, secret)


def review(kind: str, repository: dict[str, Any], branch: str, edit: Callable[[dict[str, Any]], None] | None = None) -> bytes:
    payload = load_sample(f"pull_request_review_{kind}").payload
    payload["repository"] = repository
    payload["number"] = payload["pull_request"]["number"] = PR
    payload["pull_request"]["head"]["ref"] = branch
    if edit is not None:
        edit(payload)
    return json.dumps(payload, separators=(",", ":")).encode()


def headers(kind: str, body: bytes, secret: str, *, delivery: str | None = None) -> dict[str, str]:
    grouped = {"approved": "pull_request_approved", "rejected": "pull_request_rejected"}[kind]
    return {"Content-Type": "application/json", "X-Gitea-Event": grouped, "X-Gitea-Event-Type": f"pull_request_review_{kind}",
            "X-Gitea-Delivery": delivery or str(uuid.uuid4()), **sign(body, secret)}  # fmt: skip


async def post_events(client: TestClient[Any, Any], settings: Settings, *events: dict[str, Any]) -> None:
    auth = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    for event in events:
        response = await client.post("/events", json=event, headers=auth)
        assert response.status == 202, await response.text()


async def state(pool: Any, task_id: str) -> str | None:
    rows = await fetch_all(pool, "SELECT state FROM tasks WHERE id = %s", [task_id])
    return str(rows[0]["state"]) if rows else None


async def task_ready_to_test(client: TestClient[Any, Any], settings: Settings, pool: Any, owner: Tenant) -> tuple[str, str]:
    """A task of `owner`'s project, started by an agent and ready for review on PR #23 of branch task/<id>."""
    task_id = f"t-{uuid.uuid4().hex[:12]}"
    agent_id, branch = f"a-{task_id}", f"task/{task_id}"
    await post_events(
        client, settings,
        {"id": f"c-{task_id}", "type": "task.created", "time": T0, "task_id": task_id, "project_id": owner.project_id,
         "title": "Add a cart"},
        {"id": f"r-{task_id}", "type": "agent.registered", "time": T0, "agent_id": agent_id, "pod_name": f"pod-{task_id}"},
    )  # fmt: skip
    await eventually(lambda: state(pool, task_id), what="the task.created fold")
    await post_events(
        client, settings,
        {"id": f"s-{task_id}", "type": "task.started", "time": T0, "agent_id": agent_id, "task_id": task_id},
        {"id": f"f-{task_id}", "type": "task.ready_for_review", "time": T0, "agent_id": agent_id, "task_id": task_id,
         "branch_name": branch, "pr_number": PR},
    )  # fmt: skip

    async def ready() -> bool:
        return await state(pool, task_id) == "ready_to_test"

    await eventually(ready, what="the task to be ready_to_test")
    return task_id, branch


async def rejected_then_resubmitted(
    client: TestClient[Any, Any], settings: Settings, pool: Any, owner: Tenant, task_id: str, rejected: bytes
) -> None:
    """The rejected review `rejected`, signed with its own headers, sends the task back to in_progress; its agent
    resubmits (task.ready_for_review) and the task is ready_to_test again."""
    response = await client.post(f"/webhooks/gitea/{owner.project_id}", data=rejected,
                                 headers=headers("rejected", rejected, owner.secret))  # fmt: skip
    assert response.status == 202, await response.text()

    async def sent_back() -> bool:
        return await state(pool, task_id) == "in_progress"

    await eventually(sent_back, what="the rejected review")
    [row] = await fetch_all(pool, "SELECT assigned_agent_id FROM tasks WHERE id = %s", [task_id])
    await post_events(client, settings, {"id": f"f2-{task_id}", "type": "task.ready_for_review", "time": T0,
                                         "agent_id": row["assigned_agent_id"], "task_id": task_id})  # fmt: skip

    async def ready_again() -> bool:
        return await state(pool, task_id) == "ready_to_test"

    await eventually(ready_again, what="the task ready again")


async def test_a_tenant_with_its_own_secret_cannot_approve_another_tenants_task(
    settings: Settings, pool: Any, worker: WorkerProcess
) -> None:
    victim, attacker = await tenant(pool, "victim"), await tenant(pool, "evil")
    twin = await tenant(pool, "twin", repo_id=victim.repo_id)  # a second project claiming the victim's repository id
    async with web_client(settings) as client:
        task_id, branch = await task_ready_to_test(client, settings, pool, victim)
        mine = f"/webhooks/gitea/{attacker.project_id}"
        forged = [
            # today's attack: owner.login of the attacker's repository, full_name of the victim's, no name
            (mine, attacker.repository(full_name=f"{victim.owner}/{victim.name}", name=None), attacker.secret, 400),
            (mine, {"full_name": f"{victim.owner}/{victim.name}", "owner": {"login": victim.owner}}, attacker.secret, 403),
            (mine, victim.repository(owner={"login": 12345}), attacker.secret, 403),  # non-string login
            (mine, victim.repository(owner={"login": "  "}, name=None), attacker.secret, 403),  # blank login, no name
            (mine, {"id": victim.repo_id, "full_name": f"{victim.owner}/{victim.name}"}, attacker.secret, 403),
            # the attacker's secret on the victim's URL, and on the shared hook
            (f"/webhooks/gitea/{victim.project_id}", victim.repository(), attacker.secret, 401),
            ("/webhooks/gitea", victim.repository(), attacker.secret, 401),
            # two projects sharing a repository id: the twin's own URL is accepted, but folds into the twin only
            (f"/webhooks/gitea/{twin.project_id}", victim.repository(), twin.secret, 202),
            # ... and the shared hook cannot tell whose it is
            ("/webhooks/gitea", victim.repository(), settings.gitea_secret.get_secret_value(), 409),
        ]  # fmt: skip
        for url, repository, secret, status in forged:
            body = review("approved", repository, branch)
            response = await client.post(url, data=body, headers=headers("approved", body, secret))
            assert response.status == status, (url, repository, await response.text())
            if status != 202:
                problem = await response.json()
                assert response.content_type == "application/problem+json" and problem["status"] == status
        await fold_caught_up(settings, pool)
        assert await state(pool, task_id) == "ready_to_test"
        # the victim's own hook with the victim's secret still approves: the fold was running all along
        body = review("approved", victim.repository(), branch)
        response = await client.post(f"/webhooks/gitea/{victim.project_id}", data=body,
                                     headers=headers("approved", body, victim.secret))  # fmt: skip
        assert response.status == 202 and (await response.json())["project_id"] == victim.project_id

        async def approved() -> bool:
            return await state(pool, task_id) == "approved"

        await eventually(approved, what="the victim's own approval")


async def test_the_verdict_comes_from_the_signed_payload_and_a_replay_changes_nothing(
    settings: Settings, pool: Any, worker: WorkerProcess
) -> None:
    owner = await tenant(pool, "owner")
    url = f"/webhooks/gitea/{owner.project_id}"
    async with web_client(settings) as client:
        task_id, branch = await task_ready_to_test(client, settings, pool, owner)
        # a correctly signed rejected review, sent again with the approved event type header
        rejected = review("rejected", owner.repository(), branch)
        swapped = {**headers("rejected", rejected, owner.secret), "X-Gitea-Event-Type": "pull_request_review_approved",
                   "X-Gitea-Event": "pull_request_approved"}  # fmt: skip
        response = await client.post(url, data=rejected, headers=swapped)
        assert response.status == 202, await response.text()
        swapped_delivery = (await response.json())["delivery_id"]
        await fold_caught_up(settings, pool)
        assert await state(pool, task_id) == "ready_to_test"

        async def refusal() -> dict[str, Any] | None:
            for record in await read_topic(settings.kafka_bootstrap, settings.topic("dlq"), timeout=0.5):
                if swapped_delivery in json.dumps(record):
                    return dict(record)
            return None

        dead = await eventually(refusal, what="the contradicted delivery in the dlq")
        assert "review.type" in dead["reason"] and "pull_request_review_rejected" in dead["reason"], dead["reason"]

        # the same rejected review with its own headers sends the task back; the same bytes again change nothing
        await rejected_then_resubmitted(client, settings, pool, owner, task_id, rejected)
        replay = headers("rejected", rejected, owner.secret, delivery=str(uuid.uuid4()))  # Gitea's "redeliver"
        response = await client.post(url, data=rejected, headers=replay)
        assert response.status == 202
        await fold_caught_up(settings, pool)
        assert await state(pool, task_id) == "ready_to_test"


async def test_a_project_created_or_rotated_a_moment_ago_is_not_refused_for_the_caches_lifetime(
    settings: Settings, pool: Any
) -> None:
    project_id = str(uuid.uuid4())
    repo_id, secret = unique_repo_id(), f"fresh-{uuid.uuid4().hex}"
    repository = {"id": repo_id, "name": "shop", "full_name": f"o{repo_id}/shop", "owner": {"login": f"o{repo_id}"}}
    body = review("approved", repository, "task/x")
    assert settings.gitea_secret_cache_seconds >= 30
    async with web_client(settings) as client:
        url = f"/webhooks/gitea/{project_id}"
        response = await client.post(url, data=body, headers=headers("approved", body, secret))
        assert response.status == 401  # no such project yet: cached as such
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO projects (id, name, k8s_namespace, gitea_repo_id, gitea_owner, gitea_repo_name, "
                "gitea_webhook_secret) VALUES (%s, 'shop', %s, %s, %s, 'shop', %s)",
                [project_id, f"ns-{repo_id}", repo_id, f"o{repo_id}", secret],
            )
            await conn.commit()
        await _after_refresh_interval()
        response = await client.post(url, data=body, headers=headers("approved", body, secret))
        assert response.status == 202, await response.text()
        rotated = f"rotated-{uuid.uuid4().hex}"
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("UPDATE projects SET gitea_webhook_secret = %s WHERE id = %s", [rotated, project_id])
            await conn.commit()
        await _after_refresh_interval()
        response = await client.post(url, data=body, headers=headers("approved", body, rotated))
        assert response.status == 202, await response.text()
        response = await client.post(url, data=body, headers=headers("approved", body, "never-the-secret"))
        assert response.status == 401


async def _after_refresh_interval() -> None:
    import asyncio

    from webhooks.secrets import REFRESH_SECONDS

    await asyncio.sleep(REFRESH_SECONDS + 0.1)


async def test_the_shared_hook_with_the_global_secret_still_creates_tasks_from_issues(
    settings: Settings, pool: Any, worker: WorkerProcess
) -> None:
    owner = await tenant(pool, "org")
    payload = load_sample("issues__opened_aiworker").payload
    payload["repository"] = owner.repository()
    body = json.dumps(payload, separators=(",", ":")).encode()
    sent = {"Content-Type": "application/json", "X-Gitea-Event": "issues", "X-Gitea-Event-Type": "issues",
            "X-Gitea-Delivery": str(uuid.uuid4()), **sign(body, settings.gitea_secret.get_secret_value())}  # fmt: skip
    async with web_client(settings) as client:
        response = await client.post("/webhooks/gitea", data=body, headers=sent)
        assert response.status == 202, await response.text()
        assert (await response.json())["project_id"] == owner.project_id

    async def created() -> list[dict[str, Any]] | None:
        rows = await fetch_all(pool, "SELECT project_id, state FROM tasks WHERE project_id = %s", [owner.project_id])
        return rows or None

    assert await eventually(created, what="the issue's task") == [{"project_id": owner.project_id, "state": "backlog"}]
