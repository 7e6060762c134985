"""`aiworker-events reconcile [--once]`: what Gitea could not deliver still reaches the rows.

Gitea sends a webhook once and never retries. Every AIWORKER_RECONCILE_SECONDS (or once), for each active project
whose row names a repository, this reads Gitea's REST API (app/commands/gitea_client.py) and compares it with the
project's tasks (app/commands/reconcile_map.py):
- `GET /repos/{owner}/{repo}`: the repository must be the one the project's row names (its id), else nothing of
  the project is reconciled;
- `GET /repos/{owner}/{repo}/pulls?state=all&sort=recentupdate`, newest first, down to the last successful run
  (less OVERLAP): a pull request opened on a task's branch but unknown to the task, closed, or merged;
- `GET /repos/{owner}/{repo}/pulls/{index}/reviews` for the pull request of each task awaiting review
  (ready_to_test): an approving or rejecting review not yet applied;
- `GET /repos/{owner}/{repo}/issues?state=all&type=issues&labels=aiworker&since=…`: a labelled issue without a
  task, a closed issue whose task lives on.
What differs is published onto gitea.webhooks as the envelope a delivery would have made, through the web's
producer code (webhooks/publisher.py), keyed like a delivery (the repository full name), marked
`origin="reconcile"`, its project the project's own row, its id derived from Gitea's object id and time: the fold
treats it exactly like a delivery, and a second run, or the real delivery coming late, changes nothing.
One project's failure (a refused token, a 404, Gitea down) is logged and counted; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from asyncmy.errors import MySQLError
from prometheus_client import CollectorRegistry, Counter, Gauge

from app import AiworkerError, topics
from app.commands.gitea_client import GiteaClient, GiteaError, GiteaRefused
from app.commands.reconcile_map import KINDS, Reconciled, TaskRef, delivery_order, diff_issue, diff_pull, diff_reviews, parse_time
from app.envelope import GiteaEnvelope, make_envelope
from app.gitea_repository import RepositoryError, repository_of
from app.settings import Settings
from db.reconcile import ProjectRepo, active_projects, project_tasks, record_run
from streams.gitea_map import AIWORKER_LABEL
from webhooks.publisher import KafkaPublisher, OutRecord, PublishError

log = logging.getLogger(__name__)
OVERLAP = timedelta(minutes=10)  # listed again before the last run's start: clock skew, deliveries in flight
PUBLISH_TIMEOUT = 30.0


class ReconcileError(AiworkerError):
    """One project could not be reconciled; the message names it and what to do."""


class ReconcileMetrics:
    """Prometheus metrics of the reconcile process (its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.records = Counter("aiworker_reconcile_records", "records reconciled (published) by kind", ["kind"],
                               registry=self.registry)  # fmt: skip
        for kind in KINDS:
            self.records.labels(kind)
        self.api_errors = Counter(
            "aiworker_reconcile_api_errors", "Gitea API answers that were errors, by kind (HTTP status, timeout, network)",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.api_requests = Counter("aiworker_reconcile_api_requests", "Gitea API requests sent", registry=self.registry)
        self.runs = Counter("aiworker_reconcile_project_runs", "project runs by outcome (ok, error)", ["outcome"],
                            registry=self.registry)  # fmt: skip
        self.last_success = Gauge(
            "aiworker_reconcile_last_success_timestamp_seconds", "when a project's last successful run started (Unix time)",
            ["project_id"], registry=self.registry,
        )  # fmt: skip


@dataclass
class ProjectResult:
    project_id: str
    records: list[Reconciled] = field(default_factory=list)
    error: str | None = None
    api_requests: int = 0


def task_refs(rows: list[dict[str, Any]]) -> list[TaskRef]:
    return [
        TaskRef(str(r["id"]), str(r["state"]), r["branch_name"], r["pr_number"], r["gitea_issue_number"], r["updated_at"])
        for r in rows
    ]


def envelope_of(record: Reconciled, project_id: str, full_name: str) -> GiteaEnvelope:
    """The gitea.webhooks envelope of a reconciled record: a delivery's, with origin "reconcile" and its own id."""
    return make_envelope(
        delivery_id=record.delivery_id, event_type=record.event_type, event_group=record.event_group,
        received_at=record.happened_at, repository=full_name, payload=orjson.dumps(record.payload),
        project_id=project_id, event_id=record.event_id, origin="reconcile",
    )  # fmt: skip


class Reconciler:
    """One pass over every project, or a loop of passes."""

    def __init__(self, settings: Settings, pool: Any, publisher: KafkaPublisher, client: GiteaClient,
                 metrics: ReconcileMetrics) -> None:  # fmt: skip
        self.settings, self.pool, self.publisher, self.client, self.metrics = settings, pool, publisher, client, metrics
        self.topic = settings.topic(topics.GITEA_WEBHOOKS)

    async def run_once(self) -> list[ProjectResult]:
        results = []
        for project in await active_projects(self.pool):
            if project.last_reconciled_at is not None:
                self.metrics.last_success.labels(project.id).set(project.last_reconciled_at.timestamp())
            results.append(await self.run_project(project))
        return results

    async def run_project(self, project: ProjectRepo) -> ProjectResult:
        started, result = datetime.now(UTC), ProjectResult(project.id)
        before = self.client.counts.requests, dict(self.client.counts.errors or {})
        try:
            full_name, records = await self.differences(project)
            result.records = records
            if records:
                await self.publish(project, full_name, records)
        except (GiteaError, ReconcileError, PublishError) as exc:
            where = f"project {project.id} ({project.owner}/{project.name})"
            result.error = f"{where}: {exc}"
            if isinstance(exc, PublishError):
                result.error += "; nothing is marked reconciled, the next run tries again"
            log.error("reconcile: %s", result.error)
        result.api_requests = self.client.counts.requests - before[0]
        self.metrics.api_requests.inc(result.api_requests)
        for kind, count in (self.client.counts.errors or {}).items():
            if count > before[1].get(kind, 0):
                self.metrics.api_errors.labels(kind).inc(count - before[1].get(kind, 0))
        ok = result.error is None
        self.metrics.runs.labels("ok" if ok else "error").inc()
        await record_run(self.pool, project.id, ran_at=started, reconciled_at=started if ok else None,
                         error=result.error, published=len(result.records) if ok else 0)  # fmt: skip
        if ok:
            self.metrics.last_success.labels(project.id).set(started.timestamp())
            for record in result.records:
                self.metrics.records.labels(record.kind).inc()
            log.info("reconcile: project %s: %d record(s) published, %d API request(s)", project.id,
                     len(result.records), result.api_requests)  # fmt: skip
        return result

    @staticmethod
    def checked(project: ProjectRepo, repository: Any) -> str:
        """The repository's full name (the record key, read as the web reads a delivery's), once it is sure that
        Gitea's repository is the one the project's row names (its id, else its owner/name): else nothing is
        reconciled, as the signed path would refuse it."""
        try:
            named = repository_of({"repository": repository})
        except RepositoryError as exc:
            raise ReconcileError(f"Gitea's repository object contradicts itself: {exc}") from exc
        if named is None or named.id is None:
            raise ReconcileError("Gitea's answer for the repository has no id")
        ours = f"{project.owner}/{project.name}"
        if project.repo_id is not None and named.id != project.repo_id:
            raise ReconcileError(
                f"Gitea's {ours} is repository {named.id}, but the project's row names repository {project.repo_id}: "
                "nothing reconciled (the name now belongs to another repository); fix the project's gitea_repo_id or "
                "gitea_owner/gitea_repo_name with project.upserted"
            )
        if project.repo_id is None and named.key != ours.lower():
            raise ReconcileError(
                f"Gitea answered for {ours} with {named.describe()} (renamed or moved): nothing reconciled; set the "
                "project's gitea_owner/gitea_repo_name (and gitea_repo_id) to the repository's with project.upserted"
            )
        return named.full_name or ours

    async def differences(self, project: ProjectRepo) -> tuple[str, list[Reconciled]]:
        client = self.client
        repository, _ = await client.get(client.repo_path(project.owner, project.name))
        full_name = self.checked(project, repository)
        since = None if project.last_reconciled_at is None else project.last_reconciled_at - OVERLAP
        tasks = task_refs(await project_tasks(self.pool, project.id))
        records: list[Reconciled] = []
        pulls: dict[int, dict[str, Any]] = {}
        async for page in client.pages(client.repo_path(project.owner, project.name, "/pulls"),
                                       {"state": "all", "sort": "recentupdate"}):  # fmt: skip
            older = False
            for pull in page:
                updated = parse_time(pull.get("updated_at"))
                if since is not None and updated is not None and updated < since:
                    older = True  # newest first: the rest was looked at by an earlier run
                    break
                if isinstance(pull.get("number"), int):
                    pulls[pull["number"]] = pull
                if (found := diff_pull(pull, repository, tasks)) is not None:
                    records.append(found)
            if older:
                break
        records.extend(await self.verdicts(project, repository, tasks, pulls, records))
        params: dict[str, str | int] = {"state": "all", "type": "issues", "labels": AIWORKER_LABEL}
        if since is not None:
            params["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        async for page in client.pages(client.repo_path(project.owner, project.name, "/issues"), params):
            records.extend(found for issue in page if (found := diff_issue(issue, repository, tasks)) is not None)
        return full_name, delivery_order(records)

    async def verdicts(self, project: ProjectRepo, repository: dict[str, Any], tasks: list[TaskRef],
                       pulls: dict[int, dict[str, Any]], found: list[Reconciled]) -> list[Reconciled]:  # fmt: skip
        """The review verdicts of tasks awaiting review (ready_to_test) on their open pull request."""
        client, records = self.client, []
        opened = {r.task_id: r.payload.get("number") for r in found if r.kind == "pull_request_opened"}
        for task in tasks:
            number = opened.get(task.id, task.pr_number)
            if task.state != "ready_to_test" or not isinstance(number, int):
                continue
            pull = pulls.get(number)
            if pull is None:
                try:
                    pull, _ = await client.get(client.repo_path(project.owner, project.name, f"/pulls/{number}"))
                except GiteaRefused as exc:
                    if exc.status != 404:
                        raise
                    log.warning("reconcile: project %s: task %s names PR #%d, which Gitea does not have", project.id,
                                task.id, number)  # fmt: skip
                    continue
            if not isinstance(pull, dict) or pull.get("state") != "open":
                continue
            reviews: list[Any] = []
            async for page in client.pages(client.repo_path(project.owner, project.name, f"/pulls/{number}/reviews"), {}):
                reviews.extend(page)
            if (verdict := diff_reviews(pull, reviews, repository, task)) is not None:
                records.append(verdict)
        return records

    async def publish(self, project: ProjectRepo, full_name: str, records: list[Reconciled]) -> None:
        out = [OutRecord(self.topic, full_name.encode(), envelope_of(r, project.id, full_name).encode()) for r in records]
        await self.publisher.publish(out, timeout=PUBLISH_TIMEOUT)

    async def loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            began = time.monotonic()
            try:
                await self.run_once()
            except (OSError, MySQLError, AiworkerError) as exc:  # the database is down: the next pass tries again
                log.error("reconcile: the pass stopped: %r", exc)
            rest = self.settings.reconcile_seconds - (time.monotonic() - began)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), max(rest, 1.0))
