"""The topics of the service, declared in one place, and their creation up front."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from app import AiworkerError
from app.settings import Settings

log = logging.getLogger(__name__)

GITEA_WEBHOOKS = "gitea.webhooks"
AGENT_EVENTS = "agent.events"
CONTROL_EVENTS = "control.events"
TASK_TRANSITIONS = "task.transitions"
AGENT_TRANSITIONS = "agent.transitions"
DEPLOYMENT_TRANSITIONS = "deployment.transitions"
DLQ = "dlq"
# Internal: the fold's repartition topic, input records re-keyed by task (or agent, project, ...) id.
FOLD_TASKS = "fold.tasks"

INPUT_TOPICS = (GITEA_WEBHOOKS, AGENT_EVENTS, CONTROL_EVENTS)
OUTPUT_TOPICS = (TASK_TRANSITIONS, AGENT_TRANSITIONS, DEPLOYMENT_TRANSITIONS, DLQ)
INTERNAL_TOPICS = (FOLD_TASKS,)
ALL_TOPICS = INPUT_TOPICS + OUTPUT_TOPICS + INTERNAL_TOPICS


class TopicError(AiworkerError):
    """Topics could not be created or checked."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int


def topic_specs(settings: Settings) -> list[TopicSpec]:
    return [TopicSpec(settings.topic(name), settings.topic_partitions, settings.topic_replication) for name in ALL_TOPICS]


async def ensure_topics(settings: Settings, bootstrap: str, *, timeout: float = 30.0) -> list[str]:
    """Create the service's missing topics; returns the names created. Existing topics are left alone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await admin.list_topics())
        missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
        created: list[str] = []
        for spec in missing:
            try:
                await admin.create_topics(
                    [NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=spec.replication)]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                log.debug("topic %s was created meanwhile", spec.name)
        return created
    except (KafkaError, OSError, TimeoutError) as exc:
        raise TopicError(
            f"could not create topics on {bootstrap}: {exc!r}; check AIWORKER_KAFKA_BOOTSTRAP and that the broker is up"
        ) from exc
    finally:
        await admin.close()
