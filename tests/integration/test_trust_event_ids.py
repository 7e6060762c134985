"""POST /events refuses event ids in the Gitea deliveries' namespace (issue 11 red team), on the real broker.

The fold de-duplicates every event by its id in one table (processed_events, whose collation ignores case). A
Gitea delivery's id is `gitea:<uuid5>`, and a reconcile record's `gitea:reconcile-<uuid5 of kind, repository id,
object, time>`, all of it readable from the repository. Before: an agent (or any caller) could send an event with
such an id first, in any case, and the fold then skipped the delivery or the reconcile record as seen."""

from __future__ import annotations

import uuid
from typing import Any

from app.settings import Settings
from tests.webhooks.ingest_helpers import read_raw, web_client
from webhooks.auth import agent_token

T0 = "2026-11-22T10:00:00Z"


def heartbeat(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "type": "agent.heartbeat", "time": T0, "agent_id": "a1", "status": "idle"}


async def test_an_event_id_in_the_gitea_namespace_is_refused_and_nothing_is_published(settings: Settings) -> None:
    agent = {"Authorization": f"Bearer {agent_token(settings.agent_token_key.get_secret_value(), 'a1')}"}
    service = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    taken = f"gitea:reconcile-{uuid.uuid4()}"
    async with web_client(settings) as client:
        for auth, event_id in [(agent, taken), (agent, taken.upper()), (service, f"Gitea:{uuid.uuid4()}")]:
            response = await client.post("/events", json=[heartbeat(f"hb-{uuid.uuid4()}"), heartbeat(event_id)], headers=auth)
            assert response.status == 422, await response.text()  # before: 202, and the fold skipped the real one
            answer = await response.json()
            assert [(e["index"], e["field"]) for e in answer["errors"]] == [(1, "id")]
            assert "ids beginning 'gitea:' (in any case) are the fold's ids of Gitea deliveries" in answer["errors"][0]["reason"]
        response = await client.post("/events", json=[heartbeat("hb-gitea:not-a-prefix")], headers=agent)
        assert response.status == 202, await response.text()
    records = await read_raw(settings.kafka_bootstrap, settings.topic("agent.events"), expect=1)
    assert len(records) == 1 and b"hb-gitea:not-a-prefix" in records[0].value
