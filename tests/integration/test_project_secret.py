"""A project's webhook secret is set through PUT /projects/{id}/webhook-secret, never through an event: it takes
effect on the project's own hook at once (with the previous one valid during the rotation window), only the
service token may set it, and it appears on no topic."""

from __future__ import annotations

import json
import uuid
from typing import Any

from app.settings import Settings
from tests.gitea_samples import load_sample, sign
from tests.harness import WorkerProcess, eventually, fetch_all, read_records
from tests.webhooks.ingest_helpers import unique_repo_id, web_client

T0 = "2026-11-22T10:00:00Z"


async def test_a_project_secret_is_set_by_the_service_and_never_travels_on_a_topic(
    settings: Settings, pool: Any, worker: WorkerProcess
) -> None:
    project_id, repo_id = f"p-{uuid.uuid4().hex[:12]}", unique_repo_id()
    owner = f"o{repo_id}"
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    first, second = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    payload = load_sample("push__main").payload
    payload["repository"] = {"id": repo_id, "name": "shop", "full_name": f"{owner}/shop", "owner": {"login": owner}}
    body = json.dumps(payload, separators=(",", ":")).encode()

    def signed(secret: str) -> dict[str, str]:
        return {"Content-Type": "application/json", "X-Gitea-Event-Type": "push", "X-Gitea-Event": "push",
                "X-Gitea-Delivery": str(uuid.uuid4()), **sign(body, secret)}  # fmt: skip

    async with web_client(settings) as client:
        upserted = {"id": f"u-{project_id}", "type": "project.upserted", "time": T0, "project_id": project_id,
                    "name": "Shop", "k8s_namespace": project_id, "gitea_repo_id": repo_id, "gitea_owner": owner,
                    "gitea_repo_name": "shop"}  # fmt: skip
        with_secret = {**upserted, "id": f"s-{project_id}", "gitea_webhook_secret": first}
        response = await client.post("/events", json=with_secret, headers=service)
        assert response.status == 422, await response.text()
        assert "PUT /projects/{project_id}/webhook-secret" in (await response.json())["errors"][0]["reason"]
        url = f"/projects/{project_id}/webhook-secret"
        response = await client.put(url, json={"secret": first}, headers=service)
        assert response.status == 404  # the project's row does not exist yet
        response = await client.post("/events", json=upserted, headers=service)
        assert response.status == 202

        async def project_row() -> bool:
            return bool(await fetch_all(pool, "SELECT id FROM projects WHERE id = %s", [project_id]))

        await eventually(project_row, what="the project row")
        agent = {"Authorization": "Bearer a1.0000"}
        refusals = [
            (client.put(url, json={"secret": first}), 401),
            (client.put(url, json={"secret": first}, headers=agent), 401),
            (client.put(url, json={"secret": "short"}, headers=service), 422),
            (client.put(url, data=b"{", headers={**service, "Content-Type": "application/json"}), 400),
            (client.put(url, data=b"x", headers={**service, "Content-Type": "text/plain"}), 415),
        ]
        for request, status in refusals:
            response = await request
            assert response.status == status, await response.text()
            assert first not in await response.text()
        response = await client.put(url, json={"secret": first}, headers=service)
        assert response.status == 204 and await response.read() == b""
        hook = f"/webhooks/gitea/{project_id}"
        assert (await client.post(hook, data=body, headers=signed(first))).status == 202
        assert (await client.post(hook, data=body, headers=signed(second))).status == 401
        # rotation: the new secret at once, the previous one still during the window
        response = await client.put(url, json={"secret": second}, headers=service)
        assert response.status == 204
        assert (await client.post(hook, data=body, headers=signed(second))).status == 202
        assert (await client.post(hook, data=body, headers=signed(first))).status == 202
        # without keep_previous the old one stops at once
        response = await client.put(url, json={"secret": first, "keep_previous": False}, headers=service)
        assert response.status == 204
        assert (await client.post(hook, data=body, headers=signed(second))).status == 401
        assert (await client.post(hook, data=body, headers=signed(first))).status == 202
        # a later project.upserted leaves the secret alone
        response = await client.post("/events", json={**upserted, "id": f"u2-{project_id}", "name": "Shop 2"}, headers=service)
        assert response.status == 202

        async def renamed() -> bool:
            rows = await fetch_all(pool, "SELECT name FROM projects WHERE id = %s", [project_id])
            return bool(rows) and rows[0]["name"] == "Shop 2"

        await eventually(renamed, what="the second project.upserted")
        rows = await fetch_all(pool, "SELECT gitea_webhook_secret, gitea_webhook_secret_previous FROM projects WHERE id = %s",
                               [project_id])  # fmt: skip
        assert rows == [{"gitea_webhook_secret": first, "gitea_webhook_secret_previous": None}]
    for short in ("control.events", "agent.events", "gitea.webhooks", "dlq"):
        for record in await read_records(settings.kafka_bootstrap, settings.topic(short), timeout=1.0):
            value = bytes(record.value or b"")
            assert first.encode() not in value and second.encode() not in value, short
