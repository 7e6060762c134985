"""Pod and Deployment objects in the shape the Kubernetes API server returns them (trimmed to what matters)."""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]


def pod(*, uid: str = "0a1b2c3d-0000-4000-8000-000000000001", name: str = "agent-7f9c4-xk2pq", rv: str = "1001",
        node: str | None = "node-a", restarts: int = 0, phase: str = "Running", deleting: bool = False) -> Obj:  # fmt: skip
    started = "2026-11-22T10:00:05Z" if restarts == 0 else f"2026-11-22T10:{10 + restarts:02d}:00Z"
    obj: Obj = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "generateName": "agent-7f9c4-",
            "namespace": "aiworker-agents",
            "uid": uid,
            "resourceVersion": rv,
            "creationTimestamp": "2026-11-22T10:00:00Z",
            "labels": {
                "app.kubernetes.io/component": "aiworker-agent",
                "aiworker.dev/agent-id": "agent-1",
                "pod-template-hash": "7f9c4",
            },
            "annotations": {"aiworker.dev/capabilities": "python, typescript", "aiworker.dev/max-concurrent-tasks": "2"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "agent-7f9c4", "uid": "rs-1"}],
        },
        "spec": {"containers": [{"name": "agent", "image": "registry.example.com/aiworker/agent:1.4.2"}]},
        "status": {
            "phase": phase if node else "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True" if node else "False", "lastTransitionTime": "2026-11-22T10:00:01Z"}
            ],
            "hostIP": "10.0.0.5",
            "podIP": "10.244.1.17",
            "startTime": "2026-11-22T10:00:01Z",
            "containerStatuses": [
                {
                    "name": "agent",
                    "ready": True,
                    "restartCount": restarts,
                    "image": "registry.example.com/aiworker/agent:1.4.2",
                    "state": {"running": {"startedAt": started}},
                }
            ],
        },
    }
    if node:
        obj["spec"]["nodeName"] = node
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-11-22T11:00:00Z"
        obj["metadata"]["deletionGracePeriodSeconds"] = 30
    return obj


def deployment(*, uid: str = "d0000000-0000-4000-8000-0000000000d1", rv: str = "2001", generation: int = 2,
               observed: int = 2, state: str = "progressing", namespace: str = "shop-staging") -> Obj:  # fmt: skip
    """A Deployment mid-rollout (`progressing`), finished (`complete`) or past its deadline (`failed`)."""
    progressing = {
        "progressing": ("True", "ReplicaSetUpdated", 'ReplicaSet "shop-web-5d8f" is progressing.'),
        "complete": ("True", "NewReplicaSetAvailable", 'ReplicaSet "shop-web-5d8f" has successfully progressed.'),
        "failed": ("False", "ProgressDeadlineExceeded", 'ReplicaSet "shop-web-5d8f" has timed out progressing.'),
    }[state]
    ready = 3 if state == "complete" else 1
    return copy.deepcopy(
        {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {
                "name": "shop-web",
                "namespace": namespace,
                "uid": uid,
                "resourceVersion": rv,
                "generation": generation,
                "creationTimestamp": "2026-11-22T09:00:00Z",
                "labels": {
                    "aiworker.dev/project-id": "p1",
                    "aiworker.dev/environment": "staging",
                    "aiworker.dev/task-group-id": "g1",
                },
                "annotations": {
                    "deployment.kubernetes.io/revision": str(generation),
                    "aiworker.dev/deployment-id": "dep-s1",
                    "aiworker.dev/commit": "a" * 40,
                    "aiworker.dev/branch": "staging/g1",
                },
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "shop-web"}},
                "template": {"spec": {"containers": [{"name": "web", "image": "registry.example.com/shop/web:2026.11.22-1"}]}},
                "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": observed,
                "replicas": 3 if state == "complete" else 4,
                "updatedReplicas": ready,
                "readyReplicas": ready,
                "availableReplicas": ready if state == "complete" else 3,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "reason": "MinimumReplicasAvailable",
                        "lastUpdateTime": "2026-11-22T09:00:30Z",
                        "lastTransitionTime": "2026-11-22T09:00:30Z",
                    },
                    {
                        "type": "Progressing",
                        "status": progressing[0],
                        "reason": progressing[1],
                        "message": progressing[2],
                        "lastUpdateTime": f"2026-11-22T12:0{['progressing', 'complete', 'failed'].index(state)}:00Z",
                        "lastTransitionTime": "2026-11-22T12:00:00Z",
                    },
                ],
            },
        }
    )
