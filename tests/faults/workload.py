"""A mixed load whose final rows are known in advance.

Setup (sent first, folded before the faults start): projects with a Gitea repository, and every task.
Main load, per agent, in order (one agent's events travel on one partition, keyed by agent): registration,
then for each of its tasks task.started, log lines, task.ready_for_review; plus signed Gitea deliveries for
the projects' repositories (push, status, comments: recorded or ignored, each exactly once), and requests that
must be refused (their ids must never reach a topic). Final rows: every task ready_to_test with its agent,
branch and PR; every agent idle with tasks_completed = its task count; every log line exactly once.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.gitea_samples import load_sample

T0 = "2026-11-22T10:00:00Z"
GITEA_SAMPLES = ("push__main", "status__success", "issue_comment", "pull_request_comment")


def default_events(fallback: int) -> int:
    """AIWORKER_FAULT_EVENTS overrides the size of every fault run (`make soak` sets it high)."""
    return int(os.environ.get("AIWORKER_FAULT_EVENTS", fallback))


@dataclass
class Workload:
    tag: str
    projects: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    agents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # agent id -> its events, in order
    gitea: list[tuple[bytes, dict[str, str], str]] = field(default_factory=list)  # (payload, headers, delivery id)
    refused: list[dict[str, Any]] = field(default_factory=list)  # invalid events: must be answered 422
    expected_tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected_completed: dict[str, int] = field(default_factory=dict)
    log_ids: set[str] = field(default_factory=set)

    @property
    def size(self) -> int:
        return len(self.projects) + len(self.tasks) + sum(len(e) for e in self.agents.values()) + len(self.gitea)


def build(total: int, *, agents: int = 16, tasks_per_agent: int = 6, projects: int = 2) -> Workload:
    """About `total` events: the log lines per task are what scales."""
    tag = uuid.uuid4().hex[:6]
    load = Workload(tag)
    fixed = projects + agents * (1 + 3 * tasks_per_agent) + 2 * len(GITEA_SAMPLES) * projects
    logs_per_task = max(1, (total - fixed) // (agents * tasks_per_agent))
    for p in range(projects):
        repo_id = 7_000_000 + uuid.uuid4().int % 1_000_000_000
        pid = f"{tag}-p{p}"
        load.projects.append({"id": f"{pid}-up", "type": "project.upserted", "time": T0, "project_id": pid, "name": f"P{p}",
                              "k8s_namespace": f"ns-{pid}", "gitea_repo_id": repo_id, "gitea_owner": "org",
                              "gitea_repo_name": f"r{repo_id}"})  # fmt: skip
    pr = 1
    for a in range(agents):
        agent = f"{tag}-a{a}"
        events: list[dict[str, Any]] = [
            {"id": f"{agent}-reg", "type": "agent.registered", "time": T0, "agent_id": agent, "pod_name": f"pod-{agent}"}
        ]
        for k in range(tasks_per_agent):
            task = f"{tag}-t{a}-{k}"
            project = load.projects[(a + k) % projects]["project_id"]
            load.tasks.append({"id": f"{task}-c", "type": "task.created", "time": T0, "task_id": task, "project_id": project,
                               "title": f"Task {a}/{k}"})  # fmt: skip
            minute = f"2026-11-22T11:{k:02d}:00Z"
            events.append({"id": f"{task}-s", "type": "task.started", "time": minute, "agent_id": agent, "task_id": task})
            for n in range(logs_per_task):
                line = f"{task}-l{n}"
                load.log_ids.add(line)
                events.append({"id": line, "type": "log", "time": minute, "agent_id": agent, "task_id": task,
                               "level": "info", "message": f"line {line}"})  # fmt: skip
            events.append({"id": f"{task}-r", "type": "task.ready_for_review", "time": minute, "agent_id": agent,
                           "task_id": task, "branch_name": f"task/{task}", "pr_number": pr})  # fmt: skip
            events.append({"id": f"{task}-h", "type": "agent.heartbeat", "time": minute, "agent_id": agent, "status": "idle"})
            load.expected_tasks[task] = {"state": "ready_to_test", "assigned_agent_id": agent, "pr_number": pr}
            pr += 1
        load.agents[agent] = events
        load.expected_completed[agent] = tasks_per_agent
    for project in load.projects:
        for name in GITEA_SAMPLES:
            for _ in range(2):
                sample = load_sample(name)
                payload = sample.payload
                name_ = project["gitea_repo_name"]
                owner = {**payload["repository"].get("owner", {}), "login": "org", "username": "org"}
                payload["repository"] = {**payload["repository"], "id": project["gitea_repo_id"], "name": name_,
                                         "full_name": f"org/{name_}", "owner": owner}  # fmt: skip
                body = json.dumps(payload, separators=(",", ":")).encode()
                delivery = str(uuid.uuid4())
                load.gitea.append((body, {**sample.headers, "X-Gitea-Delivery": delivery}, delivery))
    for n in range(5):
        load.refused.append({"id": f"{tag}-bad{n}", "type": "task.started", "time": T0, "agent_id": f"{tag}-a0"})
    return load
