"""What each input does to which rows: contract events through their machines, Gitea deliveries through
their intents. One entry point, `handle`; the fold owns transactions, positions, logs and parking."""

from __future__ import annotations

from app.agent_events import TaskQuestionAsked
from app.control_events import DeploymentEvent, TaskQuestionAnswered
from app.envelope import GiteaEnvelope
from streams.handlers import deploy, gitea, questions
from streams.handlers.common import Context, Handled
from streams.handlers.effects import EFFECTS, apply_effects
from streams.machines.domain import Input

__all__ = ["EFFECTS", "Context", "Handled", "handle"]


async def handle(ctx: Context, event: Input | GiteaEnvelope, scope: str | None = None) -> Handled:
    """Apply one event (or Gitea delivery) to every row it touches, or to none; transitions go to the outbox.

    `scope`: only the effects on the task ("task") or on the agent ("agent") of an event the router split."""
    if isinstance(event, GiteaEnvelope):
        return await gitea.delivery(ctx, event)
    if isinstance(event, TaskQuestionAsked):
        return await questions.asked(ctx, event)
    if isinstance(event, TaskQuestionAnswered):
        return await questions.answered(ctx, event)
    if isinstance(event, DeploymentEvent):
        return await deploy.deployment(ctx, event)
    return await apply_effects(ctx, event, scope)
