"""Render every kustomize overlay in deploy/k8s with `kubectl kustomize` and check it against the code.

kubectl comes from Debian's kubernetes-client (`make test` installs it when missing and run as root);
the manifests use only kustomize features that its old embedded kustomize (v2) and current ones share.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import topics
from app.commands.cli import build_parser
from app.settings import Settings, load_settings
from app.topics import topic_message_bytes

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p for p in (ROOT / "deploy/k8s/overlays").iterdir() if (p / "kustomization.yaml").exists())
SECRET_SETTINGS = {"database_url", "gitea_secret", "agent_token_key", "service_token", "gitea_token", "console_token"}
APP_WORKLOADS = {"aiworker-events-web", "aiworker-events-worker", "aiworker-events-k8s-watch", "aiworker-events-reconcile"}
# Settings only one process needs, provided to it alone (least privilege: only reconcile holds the Gitea token, only
# the web the console's).
PROCESS_ONLY = {"gitea_token": "aiworker-events-reconcile", "console_token": "aiworker-events-web"}
# Test hooks: never deployed (a fault hook in production would dead-letter real events).
TEST_ONLY = {"fault_event_id"}

Doc = dict[str, Any]


def env_name(field: str) -> str:
    return f"AIWORKER_{field.upper()}"


@pytest.fixture(scope="module", params=[p.name for p in OVERLAYS])
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        assert not os.environ.get("CI"), "kubectl is missing in CI: `make test` installs kubernetes-client as root"
        pytest.skip("kubectl is missing: `sudo apt-get install -y kubernetes-client` (make test does it as root)")
    path = ROOT / "deploy/k8s/overlays" / request.param
    done = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: list[Doc]) -> dict[str, Doc]:
    """The long-running processes: Deployments, and the web's StatefulSet (a spool volume per pod)."""
    return of_kind(docs, "Deployment") | of_kind(docs, "StatefulSet")


def config_map(docs: list[Doc]) -> dict[str, str]:
    maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("aiworker-events-config")]
    assert len(maps) == 1, f"expected one aiworker-events-config ConfigMap, found {len(maps)}"
    return {k: str(v) for k, v in (maps[0].get("data") or {}).items()}


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def provided_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """Every environment name the container gets, with its value ('<secret:name/key>' for secret references)."""
    maps = of_kind(docs, "ConfigMap")
    secrets = of_kind(docs, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in maps, f"container {container['name']} loads ConfigMap {name}, which the overlay lacks"
            env.update({k: str(v) for k, v in (maps[name].get("data") or {}).items()})
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            env.update({k: f"<secret:{name}/{k}>" for k in (secrets.get(name, {}).get("data") or {})})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            assert not ref.get("optional"), f"{item['name']} must not be optional"
            if ref["name"] in secrets:  # rendered by the overlay (dev): the key must exist
                assert ref["key"] in secrets[ref["name"]]["data"], f"Secret {ref['name']} has no key {ref['key']}"
            env[item["name"]] = f"<secret:{ref['name']}/{ref['key']}>"
    return env


def test_every_setting_is_provided_to_every_process(rendered: list[Doc]) -> None:
    deployments = workloads(rendered)
    assert set(deployments) == APP_WORKLOADS
    for name, deployment in deployments.items():
        wanted = {env_name(f) for f in Settings.model_fields if PROCESS_ONLY.get(f, name) == name and f not in TEST_ONLY}
        withheld = {env_name(f) for f, only in PROCESS_ONLY.items() if only != name} | {env_name(f) for f in TEST_ONLY}
        for container in pod_spec(deployment)["containers"]:
            provided = set(provided_env(rendered, container))
            missing = wanted - provided
            assert not missing, f"{name}/{container['name']} lacks {sorted(missing)}"
            extra = sorted(withheld & provided)
            assert not extra, f"{name}/{container['name']} gets {extra}, which only one other process needs"


def test_secrets_come_from_secrets_and_the_config_is_valid(rendered: list[Doc]) -> None:
    data = config_map(rendered)
    assert not {env_name(f) for f in SECRET_SETTINGS} & set(data), "a secret setting is in the ConfigMap"
    assert all(key.startswith("AIWORKER_") for key in data), "the ConfigMap holds only AIWORKER_* settings"
    web = pod_spec(of_kind(rendered, "StatefulSet")["aiworker-events-web"])["containers"][0]
    env = provided_env(rendered, web)
    reconcile = pod_spec(of_kind(rendered, "Deployment")["aiworker-events-reconcile"])["containers"][0]
    env.update({k: v for k, v in provided_env(rendered, reconcile).items() if k not in env})
    for field in SECRET_SETTINGS:
        assert env[env_name(field)].startswith("<secret:"), f"{env_name(field)} must come from a Secret"
    fields = [f for f in Settings.model_fields if f not in TEST_ONLY]
    values = {f: v for f, v in ((f, env[env_name(f)]) for f in fields) if not v.startswith("<secret:")}
    settings = load_settings(**values)  # raises SettingsError naming a bad value
    assert settings.create_topics is False, "Strimzi owns the topics: AIWORKER_CREATE_TOPICS must be false"


def test_migration_job_gets_the_database(rendered: list[Doc]) -> None:
    jobs = of_kind(rendered, "Job")
    assert "aiworker-events-migrate" in jobs
    container = pod_spec(jobs["aiworker-events-migrate"])["containers"][0]
    assert container["args"] == ["migrate"]
    assert env_name("database_url") in provided_env(rendered, container)


def test_every_topic_the_code_uses_is_a_kafka_topic(rendered: list[Doc]) -> None:
    prefix = config_map(rendered)["AIWORKER_TOPIC_PREFIX"]
    configured = load_settings(max_event_bytes=int(config_map(rendered)["AIWORKER_MAX_EVENT_BYTES"]))
    declared = {d["spec"]["topicName"]: d for d in of_kind(rendered, "KafkaTopic").values()}
    for name in topics.ALL_TOPICS:
        assert f"{prefix}{name}" in declared, f"no KafkaTopic for {prefix}{name}"
    for topic_name, doc in declared.items():
        assert doc["metadata"]["labels"].get("strimzi.io/cluster"), f"{topic_name} names no Strimzi cluster"
        config = doc["spec"]["config"]
        assert config.get("cleanup.policy") in {"delete", "compact", "compact,delete"}
        assert int(config["min.insync.replicas"]) <= doc["spec"]["replicas"]
        assert int(config["max.message.bytes"]) == topic_message_bytes(configured), f"{topic_name}: max.message.bytes"
    for name in worker_topics():
        policy = declared[f"{prefix}{name}"]["spec"]["config"]["cleanup.policy"]
        assert "compact" not in policy, f"{name} is a fold input: compaction would lose events the rows are built from"


def worker_topics() -> tuple[str, ...]:
    """The topics the fold workers consume: the inputs and the fold's internal topics."""
    return tuple(topics.INPUT_TOPICS) + tuple(getattr(topics, "INTERNAL_TOPICS", ()))


def test_worker_replicas_fit_the_partitions(rendered: list[Doc]) -> None:
    data = config_map(rendered)
    declared = {d["spec"]["topicName"]: d["spec"] for d in of_kind(rendered, "KafkaTopic").values()}
    partitions = min(declared[data["AIWORKER_TOPIC_PREFIX"] + name]["partitions"] for name in worker_topics())
    worker = of_kind(rendered, "Deployment")["aiworker-events-worker"]
    assert worker["spec"]["replicas"] <= partitions, "a worker beyond the partition count gets nothing to do"
    assert int(data["AIWORKER_TOPIC_PARTITIONS"]) == partitions
    grace = pod_spec(worker).get("terminationGracePeriodSeconds", 30)
    assert grace >= 3 * float(data["AIWORKER_KAFKA_SESSION_TIMEOUT"]), "workers need time to commit and leave the group"
    assert of_kind(rendered, "Deployment")["aiworker-events-k8s-watch"]["spec"]["replicas"] == 1
    assert of_kind(rendered, "Deployment")["aiworker-events-reconcile"]["spec"]["replicas"] == 1


def routes() -> set[str]:
    from webhooks.server import init

    app = init(load_settings(), "127.0.0.1:9092")
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}


def test_probes_ingress_and_metrics_point_at_real_routes(rendered: list[Doc]) -> None:
    known = routes()
    web = of_kind(rendered, "StatefulSet")["aiworker-events-web"]
    container = pod_spec(web)["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = int(config_map(rendered)["AIWORKER_HTTP_PORT"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in known, f"{probe} {get['path']} is not a route of webhooks/server.py"
        assert ports[get["port"]] == port
    for ingress in of_kind(rendered, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["path"] in known | {"/webhooks/gitea"}, f"Ingress path {path['path']} is no route"
    monitors = of_kind(rendered, "ServiceMonitor")
    assert monitors, "no ServiceMonitor"
    if "/metrics" not in known:
        pytest.skip("GET /metrics is not routed yet (ingest lands it); the ServiceMonitor expects it")
    for monitor in monitors.values():
        assert {e["path"] for e in monitor["spec"]["endpoints"]} <= known


def test_containers_run_real_commands_as_non_root(rendered: list[Doc]) -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    images = set()
    for workload in [*workloads(rendered).values(), *of_kind(rendered, "Job").values()]:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert container["args"][0] in commands, f"{container['args'][0]} is no aiworker-events command"
            assert container["resources"]["requests"], f"{container['name']} has no resource requests"
            images.add(container["image"])
    assert len(images) == 1, f"every process runs the same image, found {images}"


def test_spooled_records_survive_the_deletion_of_their_web_pod(rendered: list[Doc]) -> None:
    web = of_kind(rendered, "StatefulSet")["aiworker-events-web"]
    spool_dir = Path(config_map(rendered)["AIWORKER_SPOOL_DIR"])
    claims = {c["metadata"]["name"]: c for c in web["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: Path(m["mountPath"]) for m in pod_spec(web)["containers"][0]["volumeMounts"]}
    on_claim = [name for name, path in mounts.items() if name in claims and spool_dir.is_relative_to(path)]
    assert on_claim, f"AIWORKER_SPOOL_DIR={spool_dir} is on no volume claim of the web (an emptyDir dies with its pod)"
    assert web["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    assert not [v for v in pod_spec(web).get("volumes", []) if v["name"] in on_claim], "a pod volume shadows the claim"
    (hpa,) = [h for h in of_kind(rendered, "HorizontalPodAutoscaler").values() if h["metadata"]["name"] == "aiworker-events-web"]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert web["spec"]["serviceName"] in of_kind(rendered, "Service")


def test_worker_and_k8s_watch_probes_and_every_process_is_scraped(rendered: list[Doc]) -> None:
    from prometheus_client import CollectorRegistry

    from app.observe import Probes

    async def verdict() -> tuple[bool, dict[str, Any]]:
        return True, {}

    known = {r.resource.canonical for r in Probes(CollectorRegistry(), verdict, verdict).app().router.routes() if r.resource}
    data = config_map(rendered)
    deployments, services = of_kind(rendered, "Deployment"), of_kind(rendered, "Service")
    for name, setting in (("aiworker-events-worker", "WORKER_HTTP_PORT"), ("aiworker-events-k8s-watch", "K8S_WATCH_HTTP_PORT")):
        container = pod_spec(deployments[name])["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http"] == int(data[f"AIWORKER_{setting}"]), f"{name}: port http is not AIWORKER_{setting}"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                assert container[probe]["httpGet"]["path"] in known and container[probe]["httpGet"]["port"] == "http"
        assert services[name]["spec"].get("publishNotReadyAddresses"), f"{name}: an unready pod must still be scraped"
    monitored = set()
    for monitor in of_kind(rendered, "ServiceMonitor").values():
        selector = monitor["spec"]["selector"]["matchLabels"]
        matching = [s for s in services.values() if selector.items() <= s["metadata"]["labels"].items()]
        assert matching, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        for service in matching:
            assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
            monitored.add(service["metadata"]["name"])
    assert monitored >= APP_WORKLOADS, f"not scraped: {sorted(APP_WORKLOADS - monitored)}"
    assert "aiworker-events" in of_kind(rendered, "PrometheusRule")
