"""The pure mapping of Pods and Deployments to contract events."""

from __future__ import annotations

from datetime import UTC, datetime

from app.agent_events import AgentRegistered, AgentStopped
from app.commands.k8s_map import deployment_events, pod_events, rollout_state
from app.control_events import DeploymentEvent
from tests.k8s.objects import deployment, pod

NOW = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)


def test_a_scheduled_pod_registers_its_agent() -> None:
    [event] = pod_events(pod(), "ADDED", NOW)
    assert isinstance(event, AgentRegistered)
    assert (event.agent_id, event.pod_name, event.k8s_namespace, event.node_name) == (
        "agent-1", "agent-7f9c4-xk2pq", "aiworker-agents", "node-a",
    )  # fmt: skip
    assert event.capabilities == ["python", "typescript"] and event.max_concurrent_tasks == 2
    assert event.time == datetime(2026, 11, 22, 10, 0, 1, tzinfo=UTC)


def test_an_unscheduled_pod_says_nothing() -> None:
    assert pod_events(pod(node=None), "ADDED", NOW) == []


def test_the_same_observation_gives_the_same_id_and_a_restart_a_new_one() -> None:
    first = pod_events(pod(rv="1"), "ADDED", NOW)[0]
    again = pod_events(pod(rv="2"), "MODIFIED", NOW)[0]  # a status update, no restart
    restarted = pod_events(pod(rv="3", restarts=1), "MODIFIED", NOW)[0]
    assert first.id == again.id
    assert restarted.id != first.id and restarted.type == "agent.registered"
    assert restarted.time == datetime(2026, 11, 22, 10, 11, tzinfo=UTC)


def test_a_deleted_or_terminating_pod_stops_its_agent_once() -> None:
    [terminating] = pod_events(pod(deleting=True), "MODIFIED", NOW)
    [deleted] = pod_events(pod(deleting=True), "DELETED", NOW)
    assert isinstance(terminating, AgentStopped) and terminating.id == deleted.id
    assert pod_events(pod(phase="Succeeded"), "MODIFIED", NOW)[0].type == "agent.stopped"


def test_rollout_states() -> None:
    assert rollout_state(deployment(state="progressing"))[0] == "started"
    assert rollout_state(deployment(state="complete"))[0] == "succeeded"
    state, _, message = rollout_state(deployment(state="failed"))
    assert state == "failed" and message and "timed out" in message
    assert rollout_state(deployment(state="complete", generation=3, observed=2))[0] == "started"


def test_a_rollout_maps_to_deployment_events() -> None:
    [started] = deployment_events(deployment(state="progressing"), "MODIFIED", NOW)
    [done] = deployment_events(deployment(state="complete"), "MODIFIED", NOW)
    [failed] = deployment_events(deployment(state="failed"), "MODIFIED", NOW)
    assert isinstance(done, DeploymentEvent)
    assert [e.type for e in (started, done, failed)] == ["deployment.started", "deployment.succeeded", "deployment.failed"]
    assert done.deployment_id == "dep-s1" and done.environment == "staging" and done.task_group_id == "g1"
    assert done.image_tag == "2026.11.22-1" and done.k8s_namespace == "shop-staging" and done.commit_hash == "a" * 40
    assert failed.error_message and "timed out" in failed.error_message
    assert len({started.id, done.id, failed.id}) == 3
    assert deployment_events(deployment(state="complete", rv="9999"), "MODIFIED", NOW)[0].id == done.id


def test_deployments_without_project_or_environment_are_ignored() -> None:
    unlabelled = deployment()
    del unlabelled["metadata"]["labels"]["aiworker.dev/project-id"]
    assert deployment_events(unlabelled, "ADDED", NOW) == []
    other = deployment()
    del other["metadata"]["labels"]["aiworker.dev/environment"]
    assert deployment_events(other, "ADDED", NOW) == []
    preview = deployment(namespace="preview-t1")
    del preview["metadata"]["labels"]["aiworker.dev/environment"]
    preview["metadata"]["labels"]["aiworker.dev/task-id"] = "t1"
    assert deployment_events(preview, "ADDED", NOW)[0].environment == "preview"  # type: ignore[attr-defined]
    assert deployment_events(deployment(), "DELETED", NOW) == []
