"""The topics of the service, declared in one place, their creation up front, and the check of their size limit.

Bounded by bytes, end to end: the web refuses (413) an event whose record is over AIWORKER_MAX_EVENT_BYTES, and
every topic is made with `max.message.bytes` = that + TOPIC_HEADROOM (room for the router's frame on fold.tasks
and the record batch's headers), so that whatever the door accepts every topic takes. Topics this service does
not create (Strimzi, deploy/k8s) declare the same value; `check_topic_limits` tells at start-up when a topic
takes less, instead of the broker refusing records one by one later.

Also the names the worker puts on its topics that others read: the router's consumer group (the console shows its
lag) and the scopes of an event routed in two halves, with the id each half is de-duplicated and parked by (the
trace finds a parked half by it). Their meaning is the worker's (streams/route.py, streams/router.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
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
TOPIC_HEADROOM = 64 * 1024
KAFKA_DEFAULT_MESSAGE_BYTES = 1048588  # Kafka's message.max.bytes when a topic does not set its own
TASK_SCOPE, AGENT_SCOPE = "task", "agent"
SCOPES = frozenset({TASK_SCOPE, AGENT_SCOPE})
"""The halves of an event the router sends twice onto fold.tasks (a frame's `"s"`, streams/route.py)."""


class TopicError(AiworkerError):
    """Topics could not be created or checked."""


class TopicLimitError(TopicError):
    """A topic takes smaller records than the service accepts (its max.message.bytes is too low)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str]


def router_group(settings: Settings) -> str:
    """The router's consumer group on the input topics, and the consumer its positions are stored under."""
    return f"{settings.worker_id}.router"


def scoped_id(event_id: str, scope: str | None) -> str:
    """The id a half is de-duplicated and parked by: the event id for the task half (and a whole event)."""
    if scope is None or scope == TASK_SCOPE:
        return event_id
    scoped = f"{event_id}|{scope}"
    return scoped if len(scoped) <= 191 else "sha256:" + hashlib.sha256(scoped.encode()).hexdigest()


def topic_message_bytes(settings: Settings) -> int:
    """The `max.message.bytes` every topic is made with (and must have at least)."""
    return settings.max_event_bytes + TOPIC_HEADROOM


def topic_specs(settings: Settings) -> list[TopicSpec]:
    configs = {"max.message.bytes": str(topic_message_bytes(settings))}
    return [
        TopicSpec(settings.topic(name), settings.topic_partitions, settings.topic_replication, configs) for name in ALL_TOPICS
    ]


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
                await admin.create_topics([NewTopic(spec.name, spec.partitions, spec.replication, topic_configs=spec.configs)])
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


def limits_too_small(settings: Settings, limits: dict[str, int | None]) -> list[str]:
    """What is wrong with the topics' `max.message.bytes` (None: the topic does not say, Kafka's default applies)."""
    needed = topic_message_bytes(settings)
    return [
        f"{name} takes records of at most {KAFKA_DEFAULT_MESSAGE_BYTES if limit is None else limit} bytes"
        f"{' (the default)' if limit is None else ''}, below AIWORKER_MAX_EVENT_BYTES + 64 KiB = {needed}"
        for name, limit in sorted(limits.items())
        if (KAFKA_DEFAULT_MESSAGE_BYTES if limit is None else limit) < needed
    ]


async def check_topic_limits(settings: Settings, bootstrap: str, *, timeout: float = 10.0) -> None:
    """Raise TopicLimitError naming each topic of the service whose max.message.bytes is below what the web accepts
    (TopicError when the broker cannot be asked; topics that do not exist yet are not checked)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await admin.list_topics())
        names = [settings.topic(name) for name in ALL_TOPICS if settings.topic(name) in existing]
        if not names:
            return
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]  # all configs: Tansu
        responses = await asyncio.wait_for(admin.describe_configs(resources), timeout)  # answers no filtered ask
    except (KafkaError, OSError, TimeoutError) as exc:
        raise TopicError(f"could not read the topics' configs on {bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()
    limits: dict[str, int | None] = dict.fromkeys(names)
    for response in responses:
        for error, _message, _type, name, entries in response.resources:
            if error:  # this topic's configs could not be read: not judged
                limits.pop(name, None)
                continue
            for entry in entries:
                if entry[0] == "max.message.bytes" and str(entry[1]).isdigit():
                    limits[name] = int(entry[1])
    problems = limits_too_small(settings, limits)
    if problems:
        raise TopicLimitError(
            "; ".join(problems) + ": events the web accepts would be refused by the broker. Raise the topics' "
            "max.message.bytes (deploy/k8s/base/kafka-topics.yaml) or lower AIWORKER_MAX_EVENT_BYTES"
        )
