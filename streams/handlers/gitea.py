"""Gitea deliveries: intents (streams/gitea_map.py) become domain events once project and task are found.

The project is found by repository id, else owner/name; the task by its branch name, else its PR
number, else a task id in a `task/<id>` branch (CONTRACT.md, "Gitea → tasks"). Deliveries for
unknown repositories or tasks, and the types that concern no row, are counted by kind and dropped.
"""

from __future__ import annotations

import json
from typing import Any

from app.envelope import GiteaEnvelope
from streams import gitea_map as gm
from streams.handlers.common import Context, Handled
from streams.handlers.effects import apply_effects
from streams.machines.domain import (
    DomainEvent,
    GiteaIssueClosed,
    GiteaIssueOpened,
    GiteaPullRequestClosed,
    GiteaPullRequestOpened,
    GiteaReview,
)


async def _scalar(ctx: Context, sql: str, params: list[Any]) -> str | None:
    await ctx.uow.cur.execute(sql, params)
    row = await ctx.uow.cur.fetchone()
    return None if row is None else str(next(iter(row.values())))


async def find_project(ctx: Context, repo: gm.RepoRef) -> str | None:
    known = ctx.uow.find("projects", gitea_repo_id=repo.id) if repo.id is not None else None
    known = known or ctx.uow.find("projects", gitea_owner=repo.owner, gitea_repo_name=repo.name) if repo.name else known
    if known is not None:
        return str(known.id)
    if repo.id is not None:
        found = await _scalar(ctx, "SELECT id FROM projects WHERE gitea_repo_id = %s ORDER BY id LIMIT 1", [repo.id])
        if found is not None:
            return found
    if repo.owner and repo.name:
        sql = "SELECT id FROM projects WHERE gitea_owner = %s AND gitea_repo_name = %s ORDER BY id LIMIT 1"
        return await _scalar(ctx, sql, [repo.owner, repo.name])
    return None


async def find_task(ctx: Context, project_id: str, hint: gm.TaskHint) -> str | None:
    for column, value in (("branch_name", hint.branch), ("pr_number", hint.pr_number)):
        known = ctx.uow.find("tasks", project_id=project_id, **{column: value}) if value else None
        if known is not None:
            return str(known.id)
    if hint.branch:
        sql = "SELECT id FROM tasks WHERE project_id = %s AND branch_name = %s ORDER BY id LIMIT 1"
        if (found := await _scalar(ctx, sql, [project_id, hint.branch])) is not None:
            return found
    if hint.pr_number is not None:
        sql = "SELECT id FROM tasks WHERE project_id = %s AND pr_number = %s ORDER BY id LIMIT 1"
        if (found := await _scalar(ctx, sql, [project_id, hint.pr_number])) is not None:
            return found
    if hint.task_id is not None and await ctx.uow.get("tasks", hint.task_id) is not None:
        return hint.task_id
    return None


async def _issue_task(ctx: Context, project_id: str, intent: gm.CancelTaskForIssue) -> str | None:
    if await ctx.uow.get("tasks", intent.task_id) is not None:
        return intent.task_id
    sql = "SELECT id FROM tasks WHERE project_id = %s AND gitea_issue_number = %s ORDER BY id LIMIT 1"
    return await _scalar(ctx, sql, [project_id, intent.issue_number])


async def domain_event(ctx: Context, env: GiteaEnvelope, intent: gm.Intent) -> DomainEvent | str:
    """The domain event of one intent, or the kind under which it is counted and dropped."""
    if isinstance(intent, gm.Ignored):
        return f"gitea:{intent.event_type or env.event_type}"
    project_id = await find_project(ctx, intent.repo)
    if project_id is None:
        return "gitea:unknown_repository"
    base: dict[str, Any] = {"id": env.id, "time": env.received_at}
    if isinstance(intent, gm.CreateTaskFromIssue):
        return GiteaIssueOpened(
            **base, task_id=intent.task_id, project_id=project_id, title=intent.title, issue_number=intent.issue_number,
            description=intent.description, priority=intent.priority,
        )  # fmt: skip
    if isinstance(intent, gm.CancelTaskForIssue):
        task_id = await _issue_task(ctx, project_id, intent)
        return (
            "gitea:unknown_task"
            if task_id is None
            else GiteaIssueClosed(**base, task_id=task_id, issue_number=intent.issue_number)
        )
    if not isinstance(intent, gm.PullRequestOpened | gm.PullRequestClosed | gm.ReviewSubmitted):
        return f"gitea:{env.event_type}"  # branches, pushes, statuses, workflow runs: no row of ours holds them
    task_id = await find_task(ctx, project_id, intent.task_hint)
    if task_id is None:
        return "gitea:unknown_task"
    if isinstance(intent, gm.PullRequestOpened):
        return GiteaPullRequestOpened(
            **base, task_id=task_id, pr_number=intent.pr_number, branch_name=intent.head_branch, pr_url=intent.pr_url
        )
    if isinstance(intent, gm.PullRequestClosed):
        return GiteaPullRequestClosed(**base, task_id=task_id, merged=intent.merged, pr_number=intent.pr_number)
    return GiteaReview(**base, task_id=task_id, approved=intent.approved, pr_number=intent.pr_number, reviewer=intent.reviewer)


async def delivery(ctx: Context, env: GiteaEnvelope) -> Handled:
    try:
        payload = json.loads(env.payload)
    except json.JSONDecodeError as exc:
        return Handled(False, refused=f"Gitea delivery {env.delivery_id}: payload is not JSON: {exc}")
    results: list[Handled] = []
    for intent in gm.map_delivery(env.event_type or env.event_group, payload):
        event = await domain_event(ctx, env, intent)
        if isinstance(event, str):
            results.append(Handled(False, ignored=f"{env.event_type}: dropped", kind=event))
        else:
            results.append(await apply_effects(ctx, event))
    for result in results:
        if result.refused or result.parked:
            return result
    changed = [r for r in results if r.changed]
    return changed[0] if changed else (results[0] if results else Handled(False, ignored="no intents", kind="gitea:empty"))
