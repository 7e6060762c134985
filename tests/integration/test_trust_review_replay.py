"""The same signed review bytes under another name of the pull request family change nothing (issue 11 red team),
on the real web, broker, database and a fold worker.

A delivery's event id is a digest of its event type and payload. Before: the event type was the header as sent,
and the fold takes a review under three names (`pull_request_review_rejected`, the grouped
`pull_request_rejected` when X-Gitea-Event-Type is absent, and the family `pull_request`), so an old rejection,
replayed under another name after the agent had finished again, was a new event and sent the task back again."""

from __future__ import annotations

import uuid
from typing import Any

from app.settings import Settings
from tests.harness import WorkerProcess, fold_caught_up
from tests.integration.test_trust_gitea import headers, rejected_then_resubmitted, review, state, task_ready_to_test, tenant
from tests.webhooks.ingest_helpers import web_client


async def test_an_old_rejection_under_another_event_name_does_not_send_the_task_back_again(
    settings: Settings, pool: Any, worker: WorkerProcess
) -> None:
    owner = await tenant(pool, "replay")
    url = f"/webhooks/gitea/{owner.project_id}"
    async with web_client(settings) as client:
        task_id, branch = await task_ready_to_test(client, settings, pool, owner)
        rejected = review("rejected", owner.repository(), branch)
        await rejected_then_resubmitted(client, settings, pool, owner, task_id, rejected)
        signed = headers("rejected", rejected, owner.secret)
        family = {**signed, "X-Gitea-Event-Type": "pull_request", "X-Gitea-Event": "pull_request"}
        grouped = {k: v for k, v in signed.items() if k != "X-Gitea-Event-Type"}  # X-Gitea-Event: pull_request_rejected
        for replay in (family, grouped):
            response = await client.post(url, data=rejected, headers={**replay, "X-Gitea-Delivery": str(uuid.uuid4())})
            assert response.status == 202, await response.text()
        await fold_caught_up(settings, pool)
        assert await state(pool, task_id) == "ready_to_test"  # before: in_progress, rejected again by old bytes
