"""`reconcile` end to end: a fake Gitea API (paginated, rate limiting, failing now and then), the real broker and
database, a worker process folding what reconcile publishes onto gitea.webhooks exactly as it folds deliveries.

Lost: an approval, a rejection, a close, a merge, a pull request opening, a labelled issue, an issue close. Then
reconcile again (nothing changes), then the real deliveries arrive late through the web (nothing changes), and a
project whose repository the token may not read fails alone.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from app.commands.gitea_client import GiteaClient
from app.commands.reconcile import ReconcileMetrics, Reconciler
from app.envelope import GiteaEnvelope
from app.settings import Settings
from db.pool import create_pool
from streams.gitea_map import task_id_for_issue
from tests.gitea_samples import load_sample, sign
from tests.harness import WorkerProcess, fetch_all, fold_caught_up, read_topic, run_cli
from tests.reconcile.fake_gitea import TOKEN, FakeGitea, Repo, fake_gitea
from tests.reconcile.rows import NOW, insert_task
from tests.webhooks.ingest_helpers import insert_project, unique_repo_id, web_client
from webhooks.publisher import KafkaPublisher


async def tasks(pool: Any, project_id: str) -> dict[str, dict[str, Any]]:
    rows = await fetch_all(pool, "SELECT * FROM tasks WHERE project_id = %s", [project_id])
    return {str(r["id"]): r for r in rows}


def review_delivery(repo: Repo, pull: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The real delivery of an approval, as Gitea sends it (recorded headers, this repository's objects)."""
    sample = load_sample("pull_request_review_approved")
    payload = {**sample.payload, "number": pull["number"], "pull_request": pull, "repository": repo.api()}
    return json.dumps(payload).encode(), {**sample.headers, "X-Gitea-Delivery": str(uuid.uuid4())}


def close_delivery(repo: Repo, pull: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    sample = load_sample("pull_request__closed_unmerged")
    payload = {**sample.payload, "number": pull["number"], "pull_request": pull, "repository": repo.api()}
    return json.dumps(payload).encode(), {**sample.headers, "X-Gitea-Delivery": str(uuid.uuid4())}


async def scenario(api: FakeGitea, pool: Any) -> dict[str, Any]:
    """Two projects; the first lost one of each kind of delivery, the second's repository is refused."""
    repo_id = unique_repo_id()
    repo = api.repo(repo_id, "acme", f"shop{repo_id}")
    project = await insert_project(pool, repo_id=repo_id, owner=repo.owner, name=repo.name, secret=None)
    locked_id = unique_repo_id()
    locked = api.repo(locked_id, "acme", f"locked{locked_id}")
    locked.refuse = 403
    locked_project = await insert_project(pool, repo_id=locked_id, owner=locked.owner, name=locked.name, secret=None)
    recent = NOW - timedelta(minutes=3)  # within the next run's overlap: the second run looks at everything again
    t: dict[str, str] = {}
    lost = (("approval", "ready_to_test", 1), ("rejection", "ready_to_test", 2), ("close", "ready_to_test", 3),
            ("merge", "approved", 4), ("opened", "in_progress", None))  # fmt: skip
    for name, state, number in lost:
        branch = f"task/{uuid.uuid4()}"
        t[name] = await insert_task(pool, project, state, branch=branch, pr=number, task_id=branch.removeprefix("task/"))
        pr = number or 5
        repo.add_pull(pr, branch=branch, state="open" if name in ("approval", "rejection", "opened") else "closed",
                      merged=name == "merge", created=recent - timedelta(minutes=30), updated=recent)  # fmt: skip
    repo.add_review(1, 101, state="REQUEST_CHANGES", submitted=recent - timedelta(minutes=90))  # an earlier round
    repo.add_review(1, 102, state="COMMENT", submitted=recent - timedelta(minutes=1))
    repo.add_review(1, 103, state="APPROVED", submitted=recent - timedelta(minutes=2))
    repo.add_review(1, 104, state="PENDING", submitted=recent)
    repo.add_review(2, 201, state="REQUEST_CHANGES", submitted=recent - timedelta(minutes=1))
    for number in range(100, 160):  # pull requests of no task, newer: three pages to walk through
        repo.add_pull(number, branch=f"feature/{number}", created=recent, updated=NOW - timedelta(minutes=1))
    repo.add_issue(10, labels=["aiworker", "priority/high"], created=recent, updated=recent)
    t["issue"] = task_id_for_issue(repo_id, 10)
    t["issue_close"] = await insert_task(pool, project, "backlog", task_id=task_id_for_issue(repo_id, 11), issue=11)
    repo.add_issue(11, labels=["aiworker"], state="closed", created=recent - timedelta(days=1), updated=recent)
    repo.add_issue(12, labels=["bug"], created=recent, updated=recent)  # not ours: not listed (labels=aiworker)
    t["gone_pr"] = await insert_task(pool, project, "ready_to_test", branch="task/gone", pr=99)  # Gitea has no PR #99
    return {"repo": repo, "project": project, "locked_project": locked_project, "tasks": t}


async def test_lost_deliveries_reach_the_rows_once_and_late_deliveries_change_nothing(
    settings: Settings, own_database: str, tmp_path: Any
) -> None:
    pool = await create_pool(own_database, minsize=1, maxsize=4)
    async with fake_gitea(fault_every=4) as api:
        own = settings.model_copy(
            update={"database_url": SecretStr(own_database), "gitea_url": api.url, "gitea_token": SecretStr(TOKEN)}
        )
        worker = WorkerProcess(own, log_path=tmp_path / "worker.log").start()
        try:
            s = await scenario(api, pool)
            project, t, repo = s["project"], s["tasks"], s["repo"]

            metrics = ReconcileMetrics()
            publisher = KafkaPublisher(own, own.kafka_bootstrap)
            await publisher.start()
            async with GiteaClient(api.url, TOKEN, backoff=0.01) as client:
                results = await Reconciler(own, pool, publisher, client, metrics).run_once()
            await publisher.stop()

            by_project = {r.project_id: r for r in results}
            assert by_project[project].error is None
            kinds = sorted(r.kind for r in by_project[project].records)
            assert kinds == sorted(["review_approved", "review_rejected", "pull_request_closed", "pull_request_merged",
                                    "pull_request_opened", "issue_opened", "issue_closed"])  # fmt: skip
            refused = by_project[s["locked_project"]].error or ""
            assert s["locked_project"] in refused and "403" in refused and "read access" in refused
            assert api.faults > 0  # the run went through 429s and 500s
            assert api.requests_to("/pulls/99?") >= 1  # asked for the missing PR (404), and went on

            value = metrics.registry.get_sample_value
            assert value("aiworker_reconcile_records_total", {"kind": "review_approved"}) == 1
            assert value("aiworker_reconcile_api_errors_total", {"kind": "403"}) == 1
            assert (value("aiworker_reconcile_api_errors_total", {"kind": "429"}) or 0) >= 1
            assert value("aiworker_reconcile_last_success_timestamp_seconds", {"project_id": project}) is not None
            assert value("aiworker_reconcile_last_success_timestamp_seconds", {"project_id": s["locked_project"]}) is None

            records = [GiteaEnvelope.decode(json.dumps(v).encode()) for v in
                       await read_topic(own.kafka_bootstrap, own.topic("gitea.webhooks"))]  # fmt: skip
            assert len(records) == 7
            for envelope in records:
                assert envelope.origin == "reconcile" and envelope.project_id == project
                assert envelope.repository == repo.full_name and envelope.id.startswith("gitea:reconcile-")
            reviews = {e.event_type: e for e in records if e.event_type.startswith("pull_request_review")}
            assert reviews["pull_request_review_approved"].payload_json()["review"]["type"] == "pull_request_review_approved"
            assert reviews["pull_request_review_approved"].event_group == "pull_request_approved"

            await fold_caught_up(own, pool)
            rows = await tasks(pool, project)
            assert rows[t["approval"]]["state"] == "approved"  # lost approval
            assert rows[t["rejection"]]["state"] == "in_progress"  # lost rejection
            assert rows[t["close"]]["state"] == "cancelled"  # lost close
            assert rows[t["merge"]]["state"] == "approved"  # lost merge: folded, and a merge cancels nothing
            assert rows[t["opened"]]["pr_number"] == 5  # lost opening of a PR on the task's branch
            created = rows[t["issue"]]  # lost labelled issue
            assert (created["state"], created["title"], created["priority"], created["gitea_issue_number"]) == (
                "backlog", "Issue 10", "high", 10)  # fmt: skip
            assert rows[t["issue_close"]]["state"] == "cancelled"  # lost issue close
            assert rows[t["gone_pr"]]["state"] == "ready_to_test"  # its PR is gone: skipped, the project went on
            folded = await fetch_all(pool, "SELECT event_id FROM processed_events WHERE event_id LIKE 'gitea:reconcile-%%'")
            assert {r["event_id"] for r in folded} >= {e.id for e in records}  # the merge too: folded, not dropped
            state = await fetch_all(pool, "SELECT * FROM reconcile_state ORDER BY project_id")
            assert {r["project_id"]: r["last_reconciled_at"] is not None for r in state} == {
                project: True, s["locked_project"]: False}  # fmt: skip

            # Twice: the command, as an operator or the pod runs it; the refused project makes it exit 1.
            code, output = await run_cli(own, "reconcile", "--once")
            assert code == 1, output
            assert s["locked_project"] in output and "403" in output and f"{project}: " in output
            await fold_caught_up(own, pool)
            assert await tasks(pool, project) == rows

            # The real deliveries arrive late (Gitea was slow, or an operator replays them): nothing changes.
            approved_pull = next(p for p in repo.pulls if p["number"] == 1)
            closed_pull = next(p for p in repo.pulls if p["number"] == 3)
            async with web_client(own) as web:
                for body, headers in (review_delivery(repo, copy.deepcopy(approved_pull)),
                                      close_delivery(repo, copy.deepcopy(closed_pull))):  # fmt: skip
                    answer = await web.post(
                        "/webhooks/gitea", data=body, headers={**headers, **sign(body, own.gitea_secret.get_secret_value())}
                    )
                    assert answer.status == 202, await answer.text()
            await fold_caught_up(own, pool)
            assert await tasks(pool, project) == rows
            assert await read_topic(own.kafka_bootstrap, own.topic("dlq")) == []
        finally:
            worker.stop()
            print("---- worker log (tail) ----\n" + worker.log()[-4000:])
            pool.close()
            await pool.wait_closed()
