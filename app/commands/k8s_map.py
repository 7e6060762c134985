"""Pure mapping from Kubernetes objects (as the API returns them, plain dicts) to contract events.

No I/O: `pod_events` and `deployment_events` look at one observed object and answer the contract
events it stands for, each with an id derived from the object's uid and the kind of change (and the
restart count or the Deployment's generation), so observing the same change again, after a relist or
a restart of the watcher, gives the same ids and the fold drops the repeats.

Labels and annotations the watcher reads (set them in the agent pod template and in the deploy
pipeline's Deployments):
- pods: `aiworker.dev/agent-id` (label or annotation; default: the pod name),
  `aiworker.dev/capabilities` (comma-separated), `aiworker.dev/max-concurrent-tasks`;
- Deployments: `aiworker.dev/project-id` (required), `aiworker.dev/environment` (preview, staging,
  production; default preview in a namespace starting with `preview`, else skipped),
  `aiworker.dev/deployment-id` (the pipeline's id of this rollout; default derived from uid and
  generation), `aiworker.dev/task-id`, `aiworker.dev/task-group-id`, `aiworker.dev/branch`,
  `aiworker.dev/commit`, `aiworker.dev/url`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.event_base import Event
from app.events import parse_event

ID_NAMESPACE = uuid.UUID("3b8f2a9e-6c1d-4f57-9e0a-7d4c2b1a5e60")
log = logging.getLogger(__name__)
PREFIX = "aiworker.dev/"
ENVIRONMENTS = ("preview", "staging", "production")

Obj = dict[str, Any]


def event_id(uid: str, change: str, detail: str | int = "") -> str:
    """The id of the event for one observed change of one object: same change, same id."""
    return "k8s-" + str(uuid.uuid5(ID_NAMESPACE, f"{uid}|{change}|{detail}"))


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def _tag(obj: Obj, name: str) -> str | None:
    """A label, else an annotation, `aiworker.dev/<name>`."""
    meta = _meta(obj)
    value = (meta.get("labels") or {}).get(PREFIX + name) or (meta.get("annotations") or {}).get(PREFIX + name)
    return str(value) if value else None


def _time(value: Any, now: datetime) -> str:
    return str(value) if value else now.isoformat()


def _validated(raw: Obj) -> Event | None:
    try:
        return parse_event(raw)
    except ValidationError as exc:
        log.warning(
            "skipping %s %s: not a valid contract event (%s); fix the object's aiworker.dev/ labels",
            raw.get("type"),
            raw.get("id"),
            exc.errors()[0].get("msg"),
        )
        return None


def restart_count(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def _last_start(pod: Obj) -> Any:
    starts = [
        s.get("state", {}).get("running", {}).get("startedAt") for s in (pod.get("status") or {}).get("containerStatuses") or []
    ]
    return max((s for s in starts if s), default=None)


def pod_events(pod: Obj, change: str, now: datetime) -> list[Event]:
    """Events of an agent pod seen as ADDED/MODIFIED/DELETED: registered (again per restart) or stopped."""
    meta, status = _meta(pod), pod.get("status") or {}
    uid, name = meta.get("uid"), meta.get("name")
    if not uid or not name:
        return []
    agent_id = _tag(pod, "agent-id") or name
    if change == "DELETED" or meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
        at = meta.get("deletionTimestamp") or now.isoformat()
        stopped = {"id": event_id(uid, "stopped"), "type": "agent.stopped", "time": at, "agent_id": agent_id}
        return [e for e in [_validated(stopped)] if e]
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:  # not scheduled yet: nothing to say
        return []
    restarts = restart_count(pod)
    scheduled = next(
        (c.get("lastTransitionTime") for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
    )
    at = _last_start(pod) if restarts else (scheduled or status.get("startTime") or meta.get("creationTimestamp"))
    registered: Obj = {
        "id": event_id(uid, "registered", restarts),
        "type": "agent.registered",
        "time": _time(at, now),
        "agent_id": agent_id,
        "pod_name": name,
        "k8s_namespace": meta.get("namespace") or "default",
        "node_name": node,
        "capabilities": [c.strip() for c in (_tag(pod, "capabilities") or "").split(",") if c.strip()],
        "restart_count": restarts,
        "pod_uid": uid,
    }
    concurrent = _tag(pod, "max-concurrent-tasks")
    if concurrent and concurrent.isdigit():
        registered["max_concurrent_tasks"] = int(concurrent)
    return [e for e in [_validated(registered)] if e]


def rollout_state(deployment: Obj) -> tuple[str, Any, str | None]:
    """(started | succeeded | failed, when, message) of the Deployment's current rollout."""
    meta, spec, status = _meta(deployment), deployment.get("spec") or {}, deployment.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing, available = conditions.get("Progressing") or {}, conditions.get("Available") or {}
    when = progressing.get("lastUpdateTime") or progressing.get("lastTransitionTime") or meta.get("creationTimestamp")
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 1):
        return "started", meta.get("creationTimestamp") if int(meta.get("generation") or 1) == 1 else None, None
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return "failed", when, progressing.get("message")
    wanted = int(spec.get("replicas", 1))
    done = (
        progressing.get("reason") == "NewReplicaSetAvailable"
        and available.get("status") == "True"
        and int(status.get("updatedReplicas") or 0) >= wanted
        and int(status.get("availableReplicas") or 0) >= wanted
        and int(status.get("replicas") or 0) <= int(status.get("updatedReplicas") or 0)
    )
    return ("succeeded", when, None) if done else ("started", when, None)


def _image_tag(deployment: Obj) -> str | None:
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    image = str(containers[0].get("image") or "") if containers else ""
    tail = image.rsplit("/", 1)[-1]
    return tail.split("@", 1)[0].split(":", 1)[1] if ":" in tail.split("@", 1)[0] else None


def deployment_events(deployment: Obj, change: str, now: datetime) -> list[Event]:
    """The deployment.started/succeeded/failed event of a Deployment's current rollout (none when deleted)."""
    meta = _meta(deployment)
    uid, name, namespace = meta.get("uid"), meta.get("name"), meta.get("namespace") or "default"
    project_id = _tag(deployment, "project-id")
    if change == "DELETED" or not uid or not name or not project_id:
        return []
    environment = _tag(deployment, "environment") or ("preview" if namespace.startswith("preview") else None)
    if environment not in ENVIRONMENTS:
        return []
    generation = int(meta.get("generation") or 1)
    state, when, message = rollout_state(deployment)
    deployment_id = _tag(deployment, "deployment-id") or str(uuid.uuid5(ID_NAMESPACE, f"{uid}|{generation}"))
    raw: Obj = {
        "id": event_id(uid, state, f"{generation}|{deployment_id}"),
        "type": f"deployment.{state}",
        "time": _time(when, now),
        "deployment_id": deployment_id,
        "project_id": project_id,
        "environment": environment,
        "task_id": _tag(deployment, "task-id"),
        "task_group_id": _tag(deployment, "task-group-id"),
        "deployment_type": "automatic",
        "branch": _tag(deployment, "branch"),
        "commit_hash": _tag(deployment, "commit"),
        "k8s_namespace": namespace,
        "k8s_deployment_name": name,
        "image_tag": _image_tag(deployment),
        "url": _tag(deployment, "url"),
        "error_message": message,
        "triggered_by": "k8s-watch",
        "k8s_generation": generation,
    }
    return [e for e in [_validated({k: v for k, v in raw.items() if v is not None})] if e]
