"""Gitea deliveries: intents (streams/gitea_map.py) become domain events once the task is found.

The project is the one the web verified and wrote into the envelope (`project_id`: the per-project hook's,
or the repository's on the shared hook); it is never derived from the payload here. The task is found
within that project only: by its branch name, else its PR number, else a task id in a `task/<id>` branch
(CONTRACT.md, "Gitea → tasks"). Deliveries without a project (unknown repositories) or for unknown tasks,
and the types that concern no row, are counted by kind and dropped; a delivery whose event-type header
contradicts its signed payload is refused (dlq).

Early deliveries wait: a pull request or review of a `task/<id>` branch whose task does not exist yet (its
task.created travels on another input topic and is not folded yet) parks for that task row like a contract
event (streams/parking.py) and is folded right after the task.created, in the same transaction; if the task
never comes it goes to the dlq after AIWORKER_PARK_SECONDS (streams/sweeper.py). Nothing else parks: without a
`task/<id>` branch nothing says which task will come.
"""

from __future__ import annotations

from typing import Any

from app.envelope import GiteaEnvelope
from app.jsonio import JsonError
from streams import gitea_intents as gi
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


async def find_task(ctx: Context, project_id: str, hint: gi.TaskHint) -> str | None:
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
    if hint.task_id is not None:
        row = await ctx.uow.get("tasks", hint.task_id)
        if row is not None and str(row.project_id) == project_id:  # a `task/<id>` branch names only its project's task
            return hint.task_id
    return None


async def _issue_task(ctx: Context, project_id: str, intent: gi.CancelTaskForIssue) -> str | None:
    row = await ctx.uow.get("tasks", intent.task_id)
    if row is not None and str(row.project_id) == project_id:
        return intent.task_id
    sql = "SELECT id FROM tasks WHERE project_id = %s AND gitea_issue_number = %s ORDER BY id LIMIT 1"
    return await _scalar(ctx, sql, [project_id, intent.issue_number])


async def domain_event(ctx: Context, env: GiteaEnvelope, intent: gi.Intent) -> DomainEvent | str:
    """The domain event of one intent, or the kind under which it is counted and dropped."""
    if isinstance(intent, gi.Ignored):
        return f"gitea:{intent.event_type or env.event_type}"
    if isinstance(intent, gi.Contradicted):
        return "gitea:contradicted"  # `delivery` refuses these before any intent is applied
    project_id = env.project_id
    if project_id is None:
        return "gitea:unknown_repository"
    base: dict[str, Any] = {"id": env.id, "time": env.received_at}
    if isinstance(intent, gi.CreateTaskFromIssue):
        existing = await ctx.uow.get("tasks", intent.task_id)
        if existing is not None and str(existing.project_id) != project_id:
            return "gitea:foreign_task"  # another project's issue of the same repository id made this task
        return GiteaIssueOpened(
            **base, task_id=intent.task_id, project_id=project_id, title=intent.title, issue_number=intent.issue_number,
            description=intent.description, priority=intent.priority,
        )  # fmt: skip
    if isinstance(intent, gi.CancelTaskForIssue):
        task_id = await _issue_task(ctx, project_id, intent)
        return (
            "gitea:unknown_task"
            if task_id is None
            else GiteaIssueClosed(**base, task_id=task_id, issue_number=intent.issue_number)
        )
    if not isinstance(intent, gi.PullRequestOpened | gi.PullRequestClosed | gi.ReviewSubmitted):
        return f"gitea:{env.event_type}"  # branches, pushes, statuses, workflow runs: no row of ours holds them
    task_id = await find_task(ctx, project_id, intent.task_hint)
    if task_id is None:
        return "gitea:unknown_task"
    if isinstance(intent, gi.PullRequestOpened):
        return GiteaPullRequestOpened(
            **base, task_id=task_id, pr_number=intent.pr_number, branch_name=intent.head_branch, pr_url=intent.pr_url
        )
    if isinstance(intent, gi.PullRequestClosed):
        return GiteaPullRequestClosed(**base, task_id=task_id, merged=intent.merged, pr_number=intent.pr_number)
    return GiteaReview(**base, task_id=task_id, approved=intent.approved, pr_number=intent.pr_number, reviewer=intent.reviewer)


async def awaited_task(ctx: Context, env: GiteaEnvelope, intents: list[gi.Intent]) -> tuple[str, str] | None:
    """The task row (table, id) a delivery must wait for, or None: a pull request or review of a `task/<id>` branch
    of the delivery's project whose task is not there yet (unless the delivery opens that task itself)."""
    if env.project_id is None:
        return None
    opened = {i.task_id for i in intents if isinstance(i, gi.CreateTaskFromIssue)}
    for intent in intents:
        if not isinstance(intent, gi.PullRequestOpened | gi.PullRequestClosed | gi.ReviewSubmitted):
            continue
        task_id = intent.task_hint.task_id
        if task_id is None or task_id in opened or await ctx.uow.get("tasks", task_id) is not None:
            continue  # no branch to tell, or the task exists (in this project or, foreign, in another one)
        if await find_task(ctx, env.project_id, intent.task_hint) is None:
            return ("tasks", task_id)
    return None


async def delivery(ctx: Context, env: GiteaEnvelope) -> Handled:
    try:
        payload = env.payload_json()
    except JsonError as exc:
        return Handled(False, refused=f"Gitea delivery {env.delivery_id}: the payload is {exc}")
    intents = gm.map_delivery(env.event_type or env.event_group, payload)
    for intent in intents:
        if isinstance(intent, gi.Contradicted):
            return Handled(False, refused=f"Gitea delivery {env.delivery_id}: {intent.reason}", kind="gitea:contradicted")
    wait = await awaited_task(ctx, env, intents)
    if wait is not None:  # before any effect: the whole delivery is folded again once the task exists
        return Handled(False, parked=wait)
    results: list[Handled] = []
    for intent in intents:
        event = await domain_event(ctx, env, intent)
        if event == "gitea:foreign_task":
            return Handled(False, kind=event, refused=(
                f"Gitea delivery {env.delivery_id}: the task its issue makes exists in another project than "
                f"{env.project_id}; two projects name the same Gitea repository, give each its own"))  # fmt: skip
        if isinstance(event, str):
            results.append(Handled(False, ignored=f"{env.event_type}: dropped", kind=event))
        else:
            results.append(await apply_effects(ctx, event))
    for result in results:
        if result.refused or result.parked:
            return result
    changed = [r for r in results if r.changed]
    return changed[0] if changed else (results[0] if results else Handled(False, ignored="no intents", kind="gitea:empty"))
