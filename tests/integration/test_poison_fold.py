"""The error policy in the fold (db/errors.py), against the real database and broker.

A record that makes a handler raise (any exception) goes to the dlq with its reason and position, its batch-mates
apply and the worker goes on; a failure that hits every record alike holds the partition (unhealthy) instead of
dead-lettering the stream; trouble (a lock wait timeout, a killed connection) is retried, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from app import topics
from app.envelope import GiteaEnvelope
from app.settings import Settings
from db.errors import HOLD_AFTER, Backoff, Health, HeldError, until_done
from db.pool import create_pool
from streams.fold import Fold
from streams.gitea_map import task_id_for_issue
from streams.outcomes import FoldStats
from streams.parking import WorkItem
from tests.gitea_samples import load_sample
from tests.harness import WorkerProcess, eventually, fetch_all, produce, read_topic
from tests.integration.test_fold_engine import T0, Feed, project_upserted, task_created


async def _dlq(pool: Any, settings: Settings) -> dict[int, dict[str, Any]]:
    """The fold's dlq records (outbox rows bound for the dlq) by source offset, of this test's topics."""
    rows = await fetch_all(pool, "SELECT payload FROM outbox WHERE topic = %s", [settings.topic(topics.DLQ)])
    records = [json.loads(bytes(r["payload"])) for r in rows]
    return {d["source"]["offset"]: d for d in records if d.get("source")}


async def _position(pool: Any, settings: Settings, topic: str, partition: int = 0) -> int:
    rows = await fetch_all(
        pool, "SELECT next_offset FROM fold_positions WHERE consumer = %s AND topic = %s AND `partition` = %s",
        [settings.worker_id, topic, partition],
    )  # fmt: skip
    return int(rows[0]["next_offset"]) if rows else 0


async def test_a_record_whose_handler_raises_goes_to_the_dlq_and_its_batch_mates_apply(settings: Settings, pool: Any) -> None:
    u = uuid.uuid4().hex[:8]
    project, tasks = f"p-f-{u}", [f"t-f{i}-{u}" for i in range(3)]
    faulted = settings.model_copy(update={"fault_event_id": f"c{tasks[1]}"})
    fold, feed = Fold(pool, faulted), Feed(settings)
    batch = [feed.record(topics.CONTROL_EVENTS, project_upserted(project))]
    batch += [feed.record(topics.CONTROL_EVENTS, task_created(task, project)) for task in tasks]
    stats = await fold.apply_batch(batch)
    assert (stats.applied, stats.refused) == (3, 1), stats
    rows = await fetch_all(pool, "SELECT id FROM tasks WHERE project_id = %s ORDER BY id", [project])
    assert [r["id"] for r in rows] == [tasks[0], tasks[2]]
    dead = (await _dlq(pool, settings))[batch[2].offset]
    assert "FaultInjectedError" in dead["reason"] and tasks[1] in dead["reason"]
    assert dead["source"] == {"topic": batch[2].topic, "partition": 0, "offset": batch[2].offset}
    assert json.loads(dead["value"])["id"] == f"c{tasks[1]}"
    assert await _position(pool, settings, batch[0].topic) == batch[-1].offset + 1


class BrokenFold(Fold):
    """A fold whose handler path fails for every record while `broken` (a stand-in for a bug every record hits)."""

    broken = True

    async def _one(self, work: WorkItem, refuse: str | None, *args: Any) -> Any:
        if self.broken and refuse is None:  # the handlers fail; writing a dlq record still works
            raise KeyError("a column every record needs")
        return await super()._one(work, refuse, *args)


async def test_a_failure_that_hits_every_record_holds_the_partition_instead_of_dead_lettering_it(
    settings: Settings, pool: Any
) -> None:
    u = uuid.uuid4().hex[:8]
    project = f"p-h-{u}"
    fold, feed = BrokenFold(pool, settings), Feed(settings)
    setup = feed.record(topics.CONTROL_EVENTS, project_upserted(project))
    fold.broken = False
    assert (await fold.apply_batch([setup])).applied == 1
    fold.broken = True
    batch = [feed.record(topics.CONTROL_EVENTS, task_created(f"t-h{i}-{u}", project)) for i in range(6)]
    health = Health()
    folding = asyncio.create_task(until_done("fold", lambda: fold.apply_batch(batch), health, backoff=Backoff(0.05, 0.2)))

    async def held() -> bool:
        return health.held_since is not None

    await eventually(held, what="the fold to hold")
    assert not health.healthy and "KeyError" in health.held()["fold"].reason
    for _ in range(3):  # it retries, held: the run does not restart on the records it already dead-lettered
        await asyncio.sleep(0.2)
        assert not folding.done()
        assert sorted(await _dlq(pool, settings)) == [r.offset for r in batch[: HOLD_AFTER - 1]]
        assert await _position(pool, settings, setup.topic) == batch[HOLD_AFTER - 1].offset
    fold.broken = False  # the fix is deployed
    stats: FoldStats = await asyncio.wait_for(folding, 30)
    assert stats.applied == len(batch) - (HOLD_AFTER - 1) and stats.replayed == HOLD_AFTER - 1
    assert health.healthy and health.held_since is None
    rows = await fetch_all(pool, "SELECT id FROM tasks WHERE project_id = %s", [project])
    assert len(rows) == len(batch) - (HOLD_AFTER - 1)


async def test_held_error_says_the_code_fails_and_what_to_do(settings: Settings, pool: Any) -> None:
    u = uuid.uuid4().hex[:8]
    fold, feed = BrokenFold(pool, settings), Feed(settings)
    batch = [feed.record(topics.CONTROL_EVENTS, project_upserted(f"p-x{i}-{u}")) for i in range(HOLD_AFTER)]
    try:
        await fold.apply_batch(batch)
    except HeldError as exc:
        assert "the code fails, not the record" in str(exc) and "KeyError" in str(exc)
    else:
        raise AssertionError("a failure every record hits must hold the partition")


async def test_trouble_is_retried_not_dead_lettered(settings: Settings, pool: Any, database_url: str) -> None:
    """A lock wait timeout (1205), then the fold's connection killed while it waits: both retried; the record
    applies once, nothing reaches the dlq."""
    u = uuid.uuid4().hex[:8]
    project = f"p-t-{u}"
    own = await create_pool(database_url, minsize=1, maxsize=1)  # one connection: the one the test slows and kills
    try:
        async with own.acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
                await cur.execute("SELECT CONNECTION_ID()")
                (connection_id,) = await cur.fetchone()
            await conn.commit()
        fold, feed = Fold(own, settings), Feed(settings)
        assert (await fold.apply_batch([feed.record(topics.CONTROL_EVENTS, project_upserted(project))])).applied == 1
        record = feed.record(topics.CONTROL_EVENTS, task_created(f"t-t-{u}", project))
        health = Health()
        async with pool.acquire() as locker:
            async with locker.cursor() as cur:
                await locker.begin()
                await cur.execute(
                    "SELECT next_offset FROM fold_positions WHERE consumer = %s AND topic = %s FOR UPDATE",
                    [settings.worker_id, record.topic],
                )  # fmt: skip
                folding = asyncio.create_task(
                    until_done("fold", lambda: fold.apply_batch([record]), health, backoff=Backoff(0.05, 0.2))
                )

                async def troubled() -> bool:
                    return "1205" in health.troubled().get("fold", _NO).reason

                await eventually(troubled, what="a lock wait timeout, retried")

                async def waiting_again() -> bool:
                    sql = "SELECT 1 FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = %s AND trx_state = 'LOCK WAIT'"
                    return bool(await fetch_all(pool, sql, [connection_id]))

                await eventually(waiting_again, what="the retry waiting for the lock")
                await cur.execute("KILL CONNECTION %s", [connection_id])  # the retry's connection, while it waits

                async def killed() -> bool:
                    return "1205" not in health.troubled().get("fold", _NO).reason and bool(health.troubled())

                await eventually(killed, what="the killed connection, retried")
                assert not folding.done() and health.healthy  # trouble is waited out, not a hold
            await locker.rollback()
        stats = await asyncio.wait_for(folding, 30)
        assert stats.applied == 1 and not health.troubled()
        assert not await _dlq(pool, settings)
        assert await fetch_all(pool, "SELECT id FROM tasks WHERE id = %s", [f"t-t-{u}"])
    finally:
        own.close()
        await own.wait_closed()


class _No:
    reason = ""


_NO: Any = _No()


def _issue(repo_id: int, number: int, title: str, project: str) -> bytes:
    """A gitea.webhooks record of an issue opened with the aiworker label, as the web writes it (direct produce:
    the poison must reach the fold even when the door refuses it)."""
    sample = load_sample("issues__opened_aiworker")
    payload = sample.payload
    payload["repository"]["id"] = repo_id
    payload["issue"]["number"] = number
    payload["number"] = number
    payload["issue"]["title"] = title
    envelope: dict[str, Any] = {
        "delivery_id": str(uuid.uuid4()), "event_type": sample.event_type,
        "event_group": sample.headers.get("X-Gitea-Event", ""), "received_at": T0,
        "repository": payload["repository"]["full_name"], "payload": json.dumps(payload, separators=(",", ":")),
    }  # fmt: skip
    if "project_id" in GiteaEnvelope.model_fields:  # the project verified at the door (issue 11)
        envelope["project_id"] = project
    return json.dumps(envelope).encode()


async def test_in_the_worker_a_poison_record_is_dead_lettered_and_nothing_stops(
    settings: Settings, pool: Any, tmp_path: Path
) -> None:
    """The worker process with the test-only fault hook, and a Gitea issue titled with a lone surrogate (on main
    before this, its UnicodeEncodeError crashed the fold agent, and the issue after it never became a task)."""
    u = uuid.uuid4().hex[:8]
    project, tasks, repo_id = f"p-w-{u}", [f"t-w{i}-{u}" for i in range(3)], 50_000 + int(u[:4], 16)
    faulted = settings.model_copy(update={"fault_event_id": f"c{tasks[1]}"})
    worker = WorkerProcess(faulted, log_path=tmp_path / "worker.log").start()
    try:
        control, gitea = settings.topic(topics.CONTROL_EVENTS), settings.topic(topics.GITEA_WEBHOOKS)
        upsert = {**project_upserted(project), "gitea_repo_id": repo_id, "gitea_owner": "acme", "gitea_repo_name": f"r{u}"}
        await produce(settings.kafka_bootstrap, [(control, project.encode(), json.dumps(upsert).encode())])

        async def project_known() -> bool:
            return bool(await fetch_all(pool, "SELECT id FROM projects WHERE id = %s", [project]))

        await eventually(project_known, timeout=90, what="the project")
        created = [(control, t.encode(), json.dumps(task_created(t, project)).encode()) for t in tasks]
        poison, ordinary = _issue(repo_id, 1, "\ud800", project), _issue(repo_id, 2, "Fine", project)
        await produce(settings.kafka_bootstrap, [*created, (gitea, b"acme/r", poison), (gitea, b"acme/r", ordinary)])
        good = [tasks[0], tasks[2], task_id_for_issue(repo_id, 2)]

        async def applied() -> bool:
            rows = await fetch_all(pool, "SELECT id FROM tasks WHERE id IN (%s, %s, %s)", good)
            return len(rows) == 3

        await eventually(applied, timeout=60, what="the faulted record's batch-mates and the ordinary issue")

        async def dead() -> list[dict[str, Any]] | None:
            values = await read_topic(settings.kafka_bootstrap, settings.topic(topics.DLQ))
            mine = [v for v in values if v.get("source") and v["source"]["topic"] in (control, gitea)]
            return mine if len(mine) >= 2 else None

        records = await eventually(dead, timeout=60, what="two dlq records")
        by_topic = {r["source"]["topic"]: r for r in records}
        assert "FaultInjectedError" in by_topic[control]["reason"]
        assert json.loads(by_topic[control]["value"])["id"] == f"c{tasks[1]}"
        assert "ud800" in by_topic[gitea]["value"]  # the poison issue, with its reason
        assert by_topic[gitea]["reason"]
        assert not await fetch_all(pool, "SELECT id FROM tasks WHERE id IN (%s, %s)", [tasks[1], task_id_for_issue(repo_id, 1)])
        assert worker.process is not None and worker.process.poll() is None
        assert "Crashed reason" not in worker.log()  # no Faust agent or task crashed (and was restarted)
    finally:
        worker.stop()
        print("---- worker log (tail) ----\n" + worker.log()[-6000:])
