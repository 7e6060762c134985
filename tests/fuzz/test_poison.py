"""The poison suite (issue 12): hostile values on every input surface, among valid events, against a real web
process, a real worker process, the broker and the database.

Surfaces: POST /events as one JSON object, a JSON array and NDJSON; POST /webhooks/gitea as JSON and as a form;
records produced straight to agent.events, control.events and gitea.webhooks. Values: every class of
tests/fuzz/strategies.py (`HOSTILE_KINDS`), each placed at a random position among valid events. After the run:
no 5xx, the fold caught up (lag zero), no agent crashed, and each event has exactly one outcome: refused at the
door (nothing published), in the dlq with a reason (only what was produced straight to a topic: what the door
accepts, the fold applies), or applied exactly once with the values it was sent with.
Classes the decoder refuses are never applied; classes it accepts with a valid event are applied on every
surface. The table of outcomes (surface x class) is printed. Rounds: AIWORKER_FUZZ_EXAMPLES // 120 (1; `make soak`
runs 16).
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

from app import jsonio, topics
from app.settings import Settings
from streams import gitea_intents as gi
from streams import gitea_map
from tests.fuzz.http_client import post
from tests.fuzz.strategies import DECODER_REFUSES, EXAMPLES, HOSTILE_KINDS, T0, Hostile, Path, hostile_value
from tests.gitea_samples import load_sample, sign
from tests.harness import WebProcess, WorkerProcess, eventually, fetch_all, fold_caught_up, produce_at, read_records

ROUNDS = max(1, EXAMPLES // 120)
SURFACES = ("events json", "events array", "events ndjson", "gitea json", "gitea form",
            "topic agent.events", "topic control.events", "topic gitea.webhooks")  # fmt: skip
MUST_APPLY = frozenset({"NUL", "U+2028", "U+2029", "U+0085", "nesting at the limit", "duplicate keys"})
"""Accepted by the decoder, with a valid event around them: applied on every surface, values as sent."""


@dataclass
class Case:
    """One event (or delivery) sent: what it is, how it went in, and (filled in) what became of it."""

    surface: str
    kind: str  # a hostile class, or "valid"
    event_type: str  # log, agent.error, task.created, gitea
    key: str  # event id, or the issue's task id
    raw: bytes
    doc: dict[str, Any] | None
    where: str = ""  # the text field the hostile value went into (or beside)
    outcomes: list[str] = field(default_factory=list)
    position: tuple[str, int, int] | None = None  # a direct record's
    delivery: str | None = None  # a Gitea delivery's id


class Run:
    def __init__(self, settings: Settings, rng: random.Random) -> None:
        self.settings, self.rng = settings, rng
        self.tag = uuid.uuid4().hex[:8]
        self.agent, self.project, self.repo_id = f"pz-{self.tag}", f"pz-{self.tag}", rng.randrange(10**6, 10**9)
        self.owner = f"pz{self.tag}"
        self.serial = 0
        self.cases: list[Case] = []

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def event(self, event_type: str) -> tuple[dict[str, Any], list[Path], str]:
        """A valid event of `event_type`: (event, its text fields, the member a nesting goes into)."""
        n = self._next()
        base = {"id": f"pz-{self.tag}-{n}", "time": T0}
        if event_type == "log":
            doc = {**base, "type": "log", "agent_id": self.agent, "level": "info", "message": f"line {n}"}
            return doc, [("message",)], "metadata"
        if event_type == "agent.error":
            return {**base, "type": "agent.error", "agent_id": self.agent, "message": f"boom {n}"}, [("message",)], "x_deep"
        doc = {**base, "type": "task.created", "task_id": f"pz{self.tag}-t{n}", "project_id": self.project,
               "title": f"task {n}", "description": f"about {n}"}  # fmt: skip
        return doc, [("title",), ("description",)], "x_deep"

    def issue(self) -> dict[str, Any]:
        payload: dict[str, Any] = copy.deepcopy(load_sample("issues__opened_aiworker").payload)
        n = 100_000 + self._next()
        payload["number"] = payload["issue"]["number"] = n
        payload["issue"]["title"], payload["issue"]["body"] = f"issue {n}", f"body of {n}"
        repo = payload["repository"]
        repo["id"], repo["name"], repo["full_name"] = self.repo_id, "webshop", f"{self.owner}/webshop"
        for owner in (repo["owner"],):
            owner["login"] = owner["username"] = self.owner
        return payload

    def case(self, surface: str, kind: str, event_type: str) -> Case:
        if event_type == "gitea":
            doc, paths, deep = self.issue(), [("issue", "title"), ("issue", "body")], "x_deep"
            key = gitea_map.task_id_for_issue(self.repo_id, doc["number"])
        else:
            doc, paths, deep = self.event(event_type)
            key = doc["task_id"] if event_type == "task.created" else doc["id"]
        if kind == "valid":
            made = Hostile("valid", json.dumps(doc, ensure_ascii=False).encode(), True, doc)
        else:
            path = self.rng.choice(paths)
            made = hostile_value(kind, doc, path, deep_key=deep, choice=self.rng.randrange(12))
        case = Case(surface, kind, event_type, key, made.raw, made.doc, where=".".join(path) if kind != "valid" else "")
        self.cases.append(case)
        return case


def event_types(surface: str) -> list[str]:
    if surface.startswith("gitea") or surface == "topic gitea.webhooks":
        return ["gitea"]
    return {"topic agent.events": ["log", "agent.error"], "topic control.events": ["task.created"]}.get(
        surface, ["log", "agent.error", "task.created"]
    )


def with_valid(run: Run, surface: str, hostile: Case, most: int) -> list[Case]:
    """`hostile` at a random position among 0..`most` valid cases of the same surface."""
    group = [run.case(surface, "valid", run.rng.choice(event_types(surface))) for _ in range(run.rng.randint(0, most))]
    group.insert(run.rng.randint(0, len(group)), hostile)
    return group


def service_headers(settings: Settings, content_type: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {settings.service_token.get_secret_value()}"), ("Content-Type", content_type)]


def send_events(web: WebProcess, settings: Settings, surface: str, group: list[Case], statuses: list[int]) -> None:
    if surface == "events json":
        requests = [(c.raw, "application/json", [c]) for c in group]
    elif surface == "events array":
        requests = [(b"[" + b",".join(c.raw for c in group) + b"]", "application/json", group)]
    else:
        requests = [(b"\n".join(c.raw for c in group) + b"\n", "application/x-ndjson", group)]
    for body, content_type, cases in requests:
        reply = post(web.url, "/events", body, service_headers(settings, content_type), timeout=60)
        statuses.append(reply.status)
        if reply.status != 202:
            for case in cases:
                case.outcomes.append("door")


def send_gitea(web: WebProcess, settings: Settings, surface: str, group: list[Case], statuses: list[int]) -> None:
    sample = load_sample("issues__opened_aiworker")
    for case in group:
        delivery = case.delivery = str(uuid.uuid4())
        headers = {**sample.headers, **sign(case.raw, settings.gitea_secret.get_secret_value())}
        headers |= {"X-Gitea-Delivery": delivery, "X-Gogs-Delivery": delivery, "X-GitHub-Delivery": delivery}
        body = case.raw
        if surface == "gitea form":
            body = b"payload=" + quote_from_bytes(case.raw).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        reply = post(web.url, "/webhooks/gitea", body, list(headers.items()), timeout=60)
        statuses.append(reply.status)
        if reply.status != 202:
            case.outcomes.append("door")


def envelope(run: Run, case: Case) -> bytes:
    """A gitea.webhooks record as a direct producer might write it, with the case's payload text."""
    text = case.raw.decode("utf-8", "surrogateescape")  # invalid UTF-8 stays invalid: lone surrogates, escaped
    fields = {"delivery_id": str(uuid.uuid4()), "event_type": "issues", "event_group": "issues", "received_at": T0,
              "repository": f"{run.owner}/webshop", "payload": text, "project_id": run.project,
              "event_id": f"gitea:{uuid.uuid4()}", "origin": "delivery"}  # fmt: skip
    return json.dumps(fields).encode()


async def produce_direct(run: Run, groups: dict[str, list[Case]]) -> None:
    records: list[tuple[str, bytes | None, bytes]] = []
    order: list[Case] = []
    for surface, cases in groups.items():
        for case in cases:
            if surface == "topic gitea.webhooks":
                records.append((run.settings.topic(topics.GITEA_WEBHOOKS), f"{run.owner}/webshop".encode(), envelope(run, case)))
            else:
                short = topics.AGENT_EVENTS if surface == "topic agent.events" else topics.CONTROL_EVENTS
                records.append((run.settings.topic(short), case.key.encode(), case.raw))
            order.append(case)
    for case, position in zip(order, await produce_at(run.settings.kafka_bootstrap, records), strict=True):
        case.position = position


def _ids_of(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return []
    if value.get("type") == "log.batch" and isinstance(value.get("logs"), list):
        return [str(line.get("id")) for line in value["logs"] if isinstance(line, dict)]
    return [str(value.get(name)) for name in ("id", "task_id") if isinstance(value.get(name), str)]


async def dlq_index(settings: Settings) -> tuple[dict[tuple[str, int, int], str], dict[str, str]]:
    """(source position -> reason, event id or issue task id -> reason) of every dlq record."""
    by_position: dict[tuple[str, int, int], str] = {}
    by_id: dict[str, str] = {}
    for record in await read_records(settings.kafka_bootstrap, settings.topic(topics.DLQ), timeout=3.0):
        body = json.loads(record.value)
        source, reason = body["source"], str(body["reason"])
        by_position[(source["topic"], int(source["partition"]), int(source["offset"]))] = reason
        text = body.get("value") or ""
        if body.get("truncated"):  # the first 64 KiB of a big record: its ids are near its start
            for event_id in re.findall(r'"(?:id|task_id|delivery_id)":\s*"([^"]+)"', text):
                by_id[event_id] = reason
            continue
        try:
            value = jsonio.loads(text, max_depth=jsonio.MAX_DEPTH + jsonio.BATCH_DEPTH)
        except jsonio.JsonError:
            continue
        for event_id in _ids_of(value):
            by_id[event_id] = reason
        if isinstance(value, dict) and isinstance(value.get("delivery_id"), str):
            by_id[value["delivery_id"]] = reason
        if isinstance(value, dict) and isinstance(value.get("payload"), str):  # an envelope: its issue's task
            try:
                payload = jsonio.loads(value["payload"])
                by_id[gitea_map.task_id_for_issue(int(payload["repository"]["id"]), int(payload["number"]))] = reason
            except (jsonio.JsonError, KeyError, TypeError, ValueError):
                pass
    return by_position, by_id


def expected_task(case: Case) -> tuple[str, str | None] | None:
    """(title, description) the case's task should have, or None when it should make none."""
    if case.doc is None:
        return None
    if case.event_type == "gitea":
        intents = gitea_map.map_delivery("issues", case.doc)
        made = [i for i in intents if isinstance(i, gi.CreateTaskFromIssue)]
        return (made[0].title, made[0].description) if made else None
    return str(case.doc.get("title")), case.doc.get("description")


async def applied(run: Run, pool: Any) -> dict[str, list[Any]]:
    """Event id (or task id) -> what the database holds for it (one entry per stored line or row)."""
    held: dict[str, list[Any]] = defaultdict(list)
    for row in await fetch_all(pool, "SELECT event_id, message FROM agent_logs WHERE agent_id = %s", [run.agent]):
        held[str(row["event_id"])].append(row["message"])
    ids = [c.key for c in run.cases if c.event_type == "agent.error"]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = f"SELECT event_id FROM processed_events WHERE outcome = 'applied' AND event_id IN ({','.join(['%s'] * len(chunk))})"
        for row in await fetch_all(pool, sql, chunk):
            held[row["event_id"]].append("applied")
    for row in await fetch_all(pool, "SELECT id, title, description FROM tasks WHERE project_id = %s", [run.project]):
        held[row["id"]].append((row["title"], row["description"]))
    return held


def stored_as_sent(case: Case, stored: list[Any]) -> bool:
    if case.event_type == "log":
        return case.doc is not None and stored == [case.doc["message"]]
    if case.event_type == "agent.error":
        return stored == ["applied"]
    return stored == [expected_task(case)]


async def outcomes(run: Run, pool: Any) -> list[Case]:
    """Fill in each case's outcome; the cases that have none yet."""
    by_position, by_id = await dlq_index(run.settings)
    held = await applied(run, pool)
    missing = []
    for case in run.cases:
        if case.outcomes[:1] == ["door"]:
            continue
        found = []
        if case.key in held:
            found.append("applied" if stored_as_sent(case, held[case.key]) else f"applied differently: {held[case.key]!r}"[:200])
        reason = (by_position.get(case.position) if case.position else None) or by_id.get(case.key)
        reason = reason or (by_id.get(case.delivery) if case.delivery else None)
        if reason:
            found.append(f"dlq: {reason}")
        case.outcomes = found
        if not found:
            missing.append(case)
    return missing


def table(cases: list[Case]) -> str:
    cells: dict[tuple[str, str], set[str]] = defaultdict(set)
    for case in cases:
        for outcome in case.outcomes:
            cells[(case.kind, case.surface)].add(outcome.split(":")[0])
    lines = ["| value class | " + " | ".join(SURFACES) + " |", "|---" * (len(SURFACES) + 1) + "|"]
    for kind in ("valid", *HOSTILE_KINDS):
        lines.append(f"| {kind} | " + " | ".join("/".join(sorted(cells[(kind, s)])) or "-" for s in SURFACES) + " |")
    return "\n".join(lines)


async def setup(run: Run, web: WebProcess, pool: Any) -> None:
    project = {"id": f"pz-{run.tag}-p", "type": "project.upserted", "time": T0, "project_id": run.project, "name": "Poison",
               "k8s_namespace": f"pz-{run.tag}", "gitea_repo_id": run.repo_id, "gitea_owner": run.owner,
               "gitea_repo_name": "webshop"}  # fmt: skip
    agent = {"id": f"pz-{run.tag}-a", "type": "agent.registered", "time": T0, "agent_id": run.agent, "pod_name": "pz"}
    for event in (project, agent):
        reply = post(web.url, "/events", json.dumps(event).encode(), service_headers(run.settings, "application/json"))
        assert reply.status == 202, reply.body

    async def ready() -> bool:
        rows = await fetch_all(pool, "SELECT id FROM projects WHERE id = %s UNION ALL SELECT id FROM agents WHERE id = %s",
                               [run.project, run.agent])  # fmt: skip
        return len(rows) == 2

    await eventually(ready, timeout=90, what="the poison suite's project and agent")


async def test_hostile_values_on_every_surface(settings: Settings, pool: Any, worker: WorkerProcess, tmp_path: Any) -> None:
    seed = random.randrange(2**32)
    print(f"poison suite: seed {seed}, {ROUNDS} round(s)")
    run = Run(settings, random.Random(seed))
    web = WebProcess(settings, tmp_path / "web.log").start()
    statuses: list[int] = []
    try:
        await setup(run, web, pool)
        for _ in range(ROUNDS):
            direct: dict[str, list[Case]] = defaultdict(list)
            plan = [(surface, kind) for surface in SURFACES for kind in HOSTILE_KINDS]
            run.rng.shuffle(plan)
            for surface, kind in plan:
                group = with_valid(run, surface, run.case(surface, kind, run.rng.choice(event_types(surface))), 3)
                if surface.startswith("events"):
                    await asyncio.to_thread(send_events, web, settings, surface, group, statuses)
                elif surface.startswith("gitea"):
                    await asyncio.to_thread(send_gitea, web, settings, surface, group, statuses)
                else:
                    direct[surface] += group
            await produce_direct(run, direct)
        assert all(status < 500 for status in statuses), sorted(set(statuses))
        await fold_caught_up(settings, pool, timeout=180)  # lag back to zero

        missing: list[Case] = []

        async def settled() -> bool:
            missing[:] = await outcomes(run, pool)
            return not missing

        try:
            await eventually(settled, timeout=120, what="an outcome for every event")
        finally:
            print(table(run.cases))
            for case in run.cases:
                if case.kind in ("1 MB text", "wrong type"):
                    shown = case.outcomes[0][:150] if case.outcomes else "-"
                    print(f"{case.kind} in {case.event_type} {case.where} via {case.surface}: {shown}")
            for case in missing[:30]:
                print(f"no outcome: {case.surface} / {case.kind} / {case.key} {case.position} {case.raw[:99]!r}")
    finally:
        web.stop()
    assert worker.process is not None and worker.process.poll() is None, "the worker died"
    assert "Crashed reason=" not in worker.log(), "an agent of the worker crashed (and was restarted)"
    problems = []
    for case in run.cases:
        kinds = [o.split(":")[0] for o in case.outcomes]
        if len(kinds) != 1:
            problems.append(f"{case.surface} / {case.kind} / {case.key}: outcomes {case.outcomes}")
        elif kinds[0].startswith("applied differently"):
            problems.append(f"{case.surface} / {case.kind} / {case.key}: {case.outcomes[0]}")
        elif case.kind in DECODER_REFUSES and kinds[0] == "applied":
            problems.append(f"{case.surface} / {case.kind} / {case.key}: applied, but the decoder refuses it")
        elif kinds[0] == "dlq" and not case.surface.startswith("topic"):  # what the door accepts, the fold applies
            problems.append(f"{case.surface} / {case.kind} / {case.key}: accepted at the door, then {case.outcomes[0][:300]}")
        elif must_apply(case) and kinds[0] != "applied":
            problems.append(f"{case.surface} / {case.kind} / {case.key}: {case.outcomes[0][:300]}, not applied")
    assert not problems, "\n".join(problems[:40])


def must_apply(case: Case) -> bool:
    """Valid events, and the hostile classes a valid event may carry (MUST_APPLY), are applied; a valid event in an
    array or NDJSON body may be refused with the hostile one beside it (a body is accepted whole or not at all)."""
    if case.kind in MUST_APPLY:
        return True
    return case.kind == "valid" and case.surface not in ("events array", "events ndjson")
