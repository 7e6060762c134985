"""Early Gitea deliveries wait (issue 12, point 9): a pull request or review of a `task/<id>` branch that is folded
before its task.created parks for the task row and applies right after it; deliveries of unknown repositories,
and of branches that name no task, are still counted and dropped."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from app import topics
from app.envelope import make_envelope
from app.settings import Settings
from streams.fold import Fold
from streams.intake import ConsumedRecord
from streams.sweeper import Sweeper
from tests.gitea_samples import load_sample
from tests.harness import fetch_all
from tests.integration.test_fold_engine import Feed, project_upserted, task_created

RECEIVED = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def delivery(feed: Feed, name: str, project: str | None, branch: str | None, number: int = 7) -> ConsumedRecord:
    sample = load_sample(name)
    payload = sample.payload
    if branch is not None:
        payload["pull_request"]["head"]["ref"] = branch
    payload["number"] = payload["pull_request"]["number"] = number
    body = json.dumps(payload, separators=(",", ":")).encode()
    envelope = make_envelope(
        delivery_id=str(uuid.uuid4()), event_type=sample.event_type, event_group=sample.headers.get("X-Gitea-Event", ""),
        received_at=RECEIVED, repository=payload["repository"]["full_name"], payload=body, project_id=project,
    )  # fmt: skip
    topic = feed.settings.topic(topics.GITEA_WEBHOOKS)
    offset = feed.offsets.get((topic, 0), 0)
    feed.offsets[(topic, 0)] = offset + 1
    return ConsumedRecord(topic, 0, offset, payload["repository"]["full_name"].encode(), envelope.encode())


async def task_row(pool: Any, task: str) -> dict[str, Any] | None:
    rows = await fetch_all(pool, "SELECT id, state, pr_number, branch_name FROM tasks WHERE id = %s", [task])
    return rows[0] if rows else None


async def test_a_pull_request_folded_before_its_task_waits_for_it_and_then_applies(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    tag = uuid.uuid4().hex[:8]
    project, task = f"p-early-{tag}", f"t-early-{tag}"
    await fold.apply_batch([feed.record(topics.CONTROL_EVENTS, project_upserted(project))])
    early = await fold.apply_batch([delivery(feed, "pull_request__opened", project, f"task/{task}", 41)])
    assert early.parked == 1 and not early.ignored and early.refused == 0
    assert await task_row(pool, task) is None
    parked = await fetch_all(pool, "SELECT waits_table, waits_id, reason FROM parked_events WHERE waits_id = %s", [task])
    assert [(p["waits_table"], p["reason"]) for p in parked] == [("tasks", f"tasks {task} does not exist yet")]
    review = await fold.apply_batch([delivery(feed, "pull_request_review_approved", project, f"task/{task}", 41)])
    assert review.parked == 1  # behind the pull request, in order
    created = await fold.apply_batch([feed.record(topics.CONTROL_EVENTS, task_created(task, project))])
    assert created.applied >= 2  # the task, then what waited for it, in the same transaction
    row = await task_row(pool, task)
    assert row is not None and row["pr_number"] == 41 and row["branch_name"] == f"task/{task}"
    assert await fetch_all(pool, "SELECT id FROM parked_events WHERE waits_id = %s", [task]) == []


async def test_unknown_repositories_and_branches_without_a_task_are_still_dropped(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    tag = uuid.uuid4().hex[:8]
    project = f"p-drop-{tag}"
    await fold.apply_batch([feed.record(topics.CONTROL_EVENTS, project_upserted(project))])
    stats = await fold.apply_batch([
        delivery(feed, "pull_request__opened", None, f"task/t-nowhere-{tag}"),  # no project: unknown repository
        delivery(feed, "pull_request__opened", project, f"feature/{tag}"),  # names no task: nothing to wait for
    ])  # fmt: skip
    assert stats.parked == 0
    assert stats.ignored == {"gitea:unknown_repository": 1, "gitea:unknown_task": 1}


async def test_a_task_that_never_comes_sends_the_waiting_delivery_to_the_dlq(settings: Settings, pool: Any) -> None:
    fold, feed = Fold(pool, settings), Feed(settings)
    tag = uuid.uuid4().hex[:8]
    project, task = f"p-never-{tag}", f"t-never-{tag}"
    await fold.apply_batch([feed.record(topics.CONTROL_EVENTS, project_upserted(project))])
    assert (await fold.apply_batch([delivery(feed, "pull_request__opened", project, f"task/{task}")])).parked == 1
    await fetch_all(pool, "UPDATE parked_events SET parked_at = parked_at - INTERVAL 2 HOUR WHERE waits_id = %s", [task])
    await Sweeper(pool, settings).sweep_once()
    assert await fetch_all(pool, "SELECT id FROM parked_events WHERE waits_id = %s", [task]) == []
    dlq = await fetch_all(pool, "SELECT payload FROM outbox WHERE topic = %s", [settings.topic(topics.DLQ)])
    reasons = [json.loads(bytes(d["payload"]))["reason"] for d in dlq]
    assert [r for r in reasons if task in r], reasons
