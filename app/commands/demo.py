"""`aiworker-events demo`: one task's whole life against a running system, then its rows and transitions.

Talks to the web process like the real producers do (service token, agent token, signed Gitea
webhooks) and reads the database to see each step take effect. The URL and secrets default to what
`aiworker-events dev` wrote to var/dev.env, so after `make run` a plain `aiworker-events demo` works.
A step whose effect does not show within a few seconds is reported (with what the row says) and the
demo goes on, so it also shows which part of the system is not there yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from app import jsonio
from app.commands.demo_target import DemoError, Target, dev_values
from app.settings import Settings
from streams.gitea_map import task_id_for_issue
from webhooks.auth import agent_token

STEP_SECONDS = 15.0
Probe = Callable[[], Awaitable[str | None]]


def _columns(row: dict[str, Any] | None) -> str:
    """A row as `column=value` text (times as ISO 8601), its NULLs and long description left out."""
    if not row:
        return "missing"
    shown = {k: v.isoformat(sep=" ") if isinstance(v, datetime) else v for k, v in row.items() if v is not None}
    return "  ".join(f"{k}={v}" for k, v in shown.items() if k != "description")


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Demo:
    def __init__(self, target: Target, http: aiohttp.ClientSession, pool: Any) -> None:
        self.t, self.http, self.pool = target, http, pool
        tag = uuid.uuid4().hex[:8]
        self.project, self.agent, self.repo_id, self.issue = f"demo-{tag}", f"agent-{tag}", int(tag, 16) % 10**8, 42
        self.task = task_id_for_issue(self.repo_id, self.issue)
        self.group, self.staging, self.prod = f"grp-{tag}", f"dep-s-{tag}", f"dep-p-{tag}"
        self.question, self.branch, self.results = f"q-{tag}", f"task/{self.task}", list[tuple[str, str | None]]()

    def event(self, type_: str, **fields: Any) -> dict[str, Any]:
        return {"id": f"{type_}-{uuid.uuid4().hex}", "type": type_, "time": now(), **fields}

    async def post_events(self, token: str, *items: dict[str, Any]) -> str | None:
        body = "\n".join(json.dumps(i) for i in items).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
        async with self.http.post(f"{self.t.url}/events", data=body, headers=headers) as response:
            return None if response.status == 202 else f"POST /events answered {response.status}: {await response.text()}"

    async def as_agent(self, *items: dict[str, Any]) -> str | None:
        return await self.post_events(agent_token(self.t.agent_key, self.agent), *items)

    async def as_service(self, *items: dict[str, Any]) -> str | None:
        return await self.post_events(self.t.service_token, *items)

    async def gitea(self, event_type: str, group: str, payload: dict[str, Any]) -> str | None:
        data = json.dumps(payload).encode()
        signature = hmac.new(self.t.gitea_secret.encode(), data, hashlib.sha256).hexdigest()
        delivery = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "X-Gitea-Delivery": delivery,
            "X-Gitea-Event": group,
            "X-Gitea-Event-Type": event_type,
            "X-Gitea-Signature": signature,
            "X-Hub-Signature-256": f"sha256={signature}",
            "User-Agent": "Go-http-client/1.1",
        }
        hook = f"/webhooks/gitea/{self.project}"  # the project's own hook (it has no secret: AIWORKER_GITEA_SECRET)
        async with self.http.post(f"{self.t.url}{hook}", data=data, headers=headers) as response:
            if response.status == 202 or response.status == 200:
                return None
            return f"POST {hook} answered {response.status}: {(await response.text())[:200]}"

    def repository(self) -> dict[str, Any]:
        return {
            "id": self.repo_id,
            "name": "shop",
            "full_name": "demo/shop",
            "owner": {"id": 1, "login": "demo"},
            "html_url": "http://gitea.local/demo/shop",
            "default_branch": "main",
        }

    def pull_request(self, **extra: Any) -> dict[str, Any]:
        pull = {
            "id": 7001,
            "number": 7,
            "title": "Add a cart",
            "state": "open",
            "html_url": "http://gitea.local/demo/shop/pulls/7",
            "merged": False,
            "head": {"ref": self.branch, "sha": "c0ffee" * 6 + "c0ff", "repo_id": self.repo_id},
            "base": {"ref": "main", "sha": "0" * 40, "repo_id": self.repo_id},
        }
        return {"number": 7, "pull_request": pull, "repository": self.repository(), "sender": {"login": "reviewer"}, **extra}

    async def row(self, sql: str, *params: Any) -> dict[str, Any] | None:
        from asyncmy.cursors import DictCursor

        async with self.pool.acquire() as conn, conn.cursor(DictCursor) as cur:
            await cur.execute(sql, params)
            found: dict[str, Any] | None = await cur.fetchone()
            await conn.commit()
            return found

    def task_state(self, wanted: str) -> Probe:
        async def probe() -> str | None:
            row = await self.row("SELECT state FROM tasks WHERE id = %s", self.task)
            return None if row and row["state"] == wanted else f"task is {row['state'] if row else 'missing'}, not {wanted}"

        return probe

    def agent_status(self, wanted: str) -> Probe:
        async def probe() -> str | None:
            row = await self.row("SELECT status FROM agents WHERE id = %s", self.agent)
            return None if row and row["status"] == wanted else f"agent is {row['status'] if row else 'missing'}, not {wanted}"

        return probe

    async def step(self, title: str, send: Awaitable[str | None], probe: Probe) -> None:
        problem = await send
        deadline = asyncio.get_running_loop().time() + STEP_SECONDS
        while problem is None:
            problem = await probe()
            if problem is None or asyncio.get_running_loop().time() > deadline:
                break
            problem = None
            await asyncio.sleep(0.2)
        self.results.append((title, problem))
        print(f"  {'ok ' if problem is None else 'NOT'}  {title}" + (f"  -- {problem}" if problem else ""), flush=True)

    async def play(self) -> None:
        print(f"demo: task {self.task} of project {self.project} against {self.t.url}", flush=True)
        project = self.event(
            "project.upserted",
            project_id=self.project,
            name="Demo shop",
            k8s_namespace=self.project,
            gitea_repo_id=self.repo_id,
            gitea_owner="demo",
            gitea_repo_name="shop",
        )

        async def project_row() -> str | None:
            return None if await self.row("SELECT id FROM projects WHERE id = %s", self.project) else "no projects row"

        await self.step("project.upserted", self.as_service(project), project_row)
        issue = {
            "action": "opened",
            "number": self.issue,
            "repository": self.repository(),
            "sender": {"login": "pm"},
            "issue": {
                "id": 9001,
                "number": self.issue,
                "title": "Add a cart",
                "body": "Users want a cart.",
                "state": "open",
                "labels": [{"id": 1, "name": "aiworker"}, {"id": 2, "name": "priority/high"}],
            },
        }
        await self.step(
            "Gitea issue opened with label aiworker", self.gitea("issues", "issues", issue), self.task_state("backlog")
        )
        registered = self.event("agent.registered", agent_id=self.agent, pod_name=f"{self.agent}-0", capabilities=["python"])
        await self.step("agent registered", self.as_agent(registered), self.agent_status("initializing"))
        heartbeat = self.event("agent.heartbeat", agent_id=self.agent, status="idle")
        await self.step("agent heartbeat (idle)", self.as_agent(heartbeat), self.agent_status("idle"))
        started = self.event("task.started", agent_id=self.agent, task_id=self.task)
        await self.step("task.started", self.as_agent(started), self.task_state("in_progress"))
        asked = self.event(
            "task.question_asked",
            agent_id=self.agent,
            task_id=self.task,
            question_id=self.question,
            question="Which currency?",
            context="prices",
        )
        await self.step("question asked", self.as_agent(asked), self.task_state("needs_input"))
        answered = self.event("task.question_answered", question_id=self.question, task_id=self.task, response="EUR")
        await self.step("question answered", self.as_service(answered), self.task_state("in_progress"))

        async def pr_recorded() -> str | None:
            row = await self.row("SELECT pr_number FROM tasks WHERE id = %s", self.task)
            return None if row and row["pr_number"] == 7 else f"task has pr_number {row and row['pr_number']}, not 7"

        await self.step(
            "Gitea pull request opened",
            self.gitea("pull_request", "pull_request", self.pull_request(action="opened")),
            pr_recorded,
        )
        ready = self.event(
            "task.ready_for_review",
            agent_id=self.agent,
            task_id=self.task,
            branch_name=self.branch,
            pr_number=7,
            preview_namespace=f"preview-{self.task[:8]}",
            preview_url="http://preview.local",
        )
        await self.step("ready for review", self.as_agent(ready), self.task_state("ready_to_test"))
        review = self.pull_request(action="reviewed", review={"type": "pull_request_review_approved", "content": "LGTM"})
        await self.step(
            "Gitea review approved",
            self.gitea("pull_request_review_approved", "pull_request_approved", review),
            self.task_state("approved"),
        )
        group = self.event(
            "task_group.created",
            task_group_id=self.group,
            project_id=self.project,
            task_ids=[self.task],
            staging_branch=f"staging/{self.group}",
        )

        async def group_row() -> str | None:
            return None if await self.row("SELECT id FROM task_groups WHERE id = %s", self.group) else "no task_groups row"

        await self.step("task group created", self.as_service(group), group_row)
        for env, dep, state in (("staging", self.staging, "staging"), ("production", self.prod, "production")):
            common = {"deployment_id": dep, "project_id": self.project, "environment": env, "task_group_id": self.group}
            sends = [self.event(f"deployment.{s}", **common) for s in ("requested", "started", "succeeded")]
            await self.step(f"{env} deployment succeeded", self.as_service(*sends), self.task_state(state))

    async def timeline(self) -> None:
        print("\nrows:")
        for table, key in (("tasks", self.task), ("agents", self.agent), ("task_groups", self.group)):
            row = await self.row(f"SELECT * FROM {table} WHERE id = %s", key)
            print(f"  {table}: {_columns(row)}")
        questions = await self.row("SELECT status, response FROM task_questions WHERE id = %s", self.question)
        print(f"  task_questions: {_columns(questions)}")
        print("\ntransitions (from the outbox, in order):")
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            keys = (self.task, self.agent, self.group, self.staging, self.prod)
            await cur.execute(
                f"SELECT payload FROM outbox WHERE message_key IN ({','.join(['%s'] * len(keys))}) ORDER BY id", keys
            )
            rows = await cur.fetchall()
            await conn.commit()
        for (payload,) in rows:
            ce = jsonio.parse(payload)
            data = ce.get("data") or {}
            print(
                f"  {ce.get('time', '')[:19]}  {ce.get('type', ''):35} {ce.get('subject', ''):36} "
                f"{data.get('from') or '(new)':>13} -> {data.get('to'):13} by {(data.get('cause') or {}).get('type')}"
            )
        print(f"\nwhat the fold did with each event of the task: aiworker-events trace {self.task}")


async def run(settings: Settings) -> list[tuple[str, str | None]]:
    from db.pool import create_pool

    target = Target.resolve(settings, dev_values())
    pool = await create_pool(target.database_url, minsize=1, maxsize=2)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            try:
                async with http.get(f"{target.url}/healthz") as response:
                    response.raise_for_status()
            except aiohttp.ClientError as exc:
                raise DemoError(f"no web process at {target.url} ({exc!r}); start `make run` or set AIWORKER_WEB_URL") from exc
            demo = Demo(target, http, pool)
            await demo.play()
            await demo.timeline()
            return demo.results
    finally:
        pool.close()
        await pool.wait_closed()


def run_demo(settings: Settings) -> int:
    results = asyncio.run(run(settings))
    missing = [title for title, problem in results if problem]
    print(
        f"\n{len(results) - len(missing)} of {len(results)} steps took effect"
        + (f"; not: {', '.join(missing)}" if missing else "")
    )
    return 0 if not missing else 1
