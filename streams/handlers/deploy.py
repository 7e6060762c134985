"""deployment.*: the deployment row always, then its task group, then the tasks it carries along.

The deployment row reflects what the pipeline did, so it commits whenever its own machine allows the
event; a group or task that refuses to follow is reported (a dlq record naming what did not move)
rather than blocking the deployment.
"""

from __future__ import annotations

from app.control_events import DeploymentEvent
from streams.handlers.common import Context, Handled, emit, missing
from streams.machines import Changed, Refused
from streams.machines import deployment as deployment_machine
from streams.machines import task as task_machine
from streams.machines import task_group as group_machine
from streams.machines.task_group import TaskGroupRow


async def deployment(ctx: Context, event: DeploymentEvent) -> Handled:
    needs = [("projects", event.project_id), ("task_groups", event.task_group_id)]
    if (wait := await missing(ctx, needs)) is not None:
        return Handled(False, parked=wait)
    row = await ctx.uow.get("deployments", event.deployment_id)
    outcome = deployment_machine.apply(row, event)
    if isinstance(outcome, Refused):
        return Handled(False, refused=outcome.reason)
    if not isinstance(outcome, Changed):
        return Handled(False)
    emit(ctx, "deployments", outcome, event)
    warnings: list[str] = []
    group: TaskGroupRow | None = None
    group_id = outcome.row.task_group_id
    if group_id is not None:
        group = await ctx.uow.get("task_groups", group_id)
        moved = group_machine.apply(group, event)
        if isinstance(moved, Refused):
            warnings.append(f"task group {group_id}: {moved.reason}")
        elif isinstance(moved, Changed):
            emit(ctx, "task_groups", moved, event)
            group = moved.row
    for step in group_machine.tasks_moved_by(outcome.row, event, group):
        task = await ctx.uow.get("tasks", step.task_id)
        if task is None:
            warnings.append(f"task {step.task_id} does not exist")
            continue
        carried = task_machine.apply(task, step)
        if isinstance(carried, Refused):
            warnings.append(f"task {step.task_id}: {carried.reason}")
        elif isinstance(carried, Changed):
            emit(ctx, "tasks", carried, step)
    if warnings:
        warnings.insert(0, f"deployment {outcome.row.id} is {outcome.row.status}, but")
    return Handled(True, warnings=tuple(warnings))
