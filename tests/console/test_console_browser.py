"""The operator console in a real browser (Debian's Chromium through Playwright) against a real web, worker, broker
and database: log in, a task moving across the board live, its timeline, hostile text, a dlq re-drive.

The waits below are bounded so that a broken console fails instead of hanging; they are not speed claims
(the 2 s of the board's refresh is its polling interval, templates/board.html)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from app import topics
from tests.console.conftest import CONSOLE_TOKEN, T0, System
from tests.gitea_samples import load_sample
from tests.harness import eventually, produce

WAIT_MS = 20_000
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'


async def logged_in(browser: Any, system: System) -> Any:
    context = await browser.new_context(viewport={"width": 1600, "height": 900})
    page = await context.new_page()
    await page.goto(f"{system.url}/console/")
    assert page.url.endswith("/console/login"), page.url
    await page.fill("#token", CONSOLE_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{system.url}/console/")
    return page


async def make_project(system: System, tag: str) -> str:
    project_id = f"p-{tag}"
    await system.post_events({"id": f"up-{tag}", "type": "project.upserted", "time": T0, "project_id": project_id,
                              "name": f"Shop {tag}", "k8s_namespace": f"ns-{tag}"})  # fmt: skip

    async def folded() -> bool:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {CONSOLE_TOKEN}", "Accept": "application/json"}
            response = await session.get(f"{system.url}/console/projects/{project_id}", headers=headers)
            return response.status == 200

    await eventually(folded, what=f"project {project_id} on the console")
    return project_id


async def test_login_sets_a_strict_http_only_cookie_and_a_wrong_token_is_refused(
    browser: Any, system: System, screenshots: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1600, "height": 900})
    page = await context.new_page()
    await page.goto(f"{system.url}/console/")
    await page.screenshot(path=str(screenshots / "login.png"))
    await page.fill("#token", "not-the-token")
    await page.click("button[type=submit]")
    assert await page.text_content("#login-error") == "that is not the console token"
    assert not await context.cookies()
    await page.fill("#token", CONSOLE_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{system.url}/console/")
    [cookie] = await context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"], cookie
    assert CONSOLE_TOKEN not in cookie["value"] and CONSOLE_TOKEN not in page.url
    response = await page.request.get(f"{system.url}/console/", headers={"Accept": "application/json"})
    twin = await response.json()
    assert set(twin) >= {"projects", "pipeline"} and "fold_lag_records" in twin["pipeline"], twin
    html = await page.request.get(f"{system.url}/console/")
    assert "script-src 'self'" in html.headers["content-security-policy"], html.headers
    await context.close()


async def test_a_task_moves_across_the_board_live_and_its_timeline_tells_why(
    browser: Any, system: System, screenshots: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    project_id = await make_project(system, tag)
    page = await logged_in(browser, system)
    task_id, agent_id = f"t-{tag}", f"a-{tag}"
    await system.post_events(
        {"id": f"tc-{tag}", "type": "task.created", "time": T0, "task_id": task_id, "project_id": project_id,
         "title": "Add a cart", "priority": "high"},
        {"id": f"ar-{tag}", "type": "agent.registered", "time": T0, "agent_id": agent_id, "pod_name": f"pod-{tag}"},
    )  # fmt: skip
    refused: list[str] = []  # what the Content-Security-Policy blocked (htmx must need no inline script or style)
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    await page.goto(f"{system.url}/console/projects/{project_id}")
    card = f"article[data-task='{task_id}']"
    await page.wait_for_selector(f"#col-backlog {card}", timeout=WAIT_MS)
    await page.evaluate("window.__same_page = 1")  # gone if the page reloads
    await system.post_events({"id": f"ts-{tag}", "type": "task.started", "time": "2026-11-22T10:05:00Z",
                              "agent_id": agent_id, "task_id": task_id})  # fmt: skip
    await page.wait_for_selector(f"#col-in_progress {card}", timeout=WAIT_MS)
    assert await page.evaluate("window.__same_page") == 1, "the board reloaded instead of updating in place"
    assert await page.locator(f"#col-backlog {card}").count() == 0
    assert not refused, refused
    assert agent_id in (await page.text_content(f"#col-in_progress {card}") or "")
    await page.screenshot(path=str(screenshots / "board.png"), full_page=True)
    for query in ("q=a+cart", f"agent={agent_id}", f"q={task_id}&priority=high"):
        twin = await (await page.request.get(f"{page.url}?{query}", headers={"Accept": "application/json"})).json()
        found = {c["state"]: [t["id"] for t in c["tasks"]] for c in twin["columns"]}
        assert found["in_progress"] == [task_id] and not found["backlog"], (query, found)
        assert {c["state"]: c["count"] for c in twin["columns"]}["in_progress"] == 1
    twin = await (await page.request.get(f"{page.url}?q=no+such+title", headers={"Accept": "application/json"})).json()
    assert not any(c["tasks"] for c in twin["columns"])

    await page.click(f"{card} a.title")
    await page.wait_for_url(f"{system.url}/console/tasks/{task_id}")
    timeline = await page.text_content("#timeline") or ""
    assert "task created" in timeline and "backlog → in_progress" in timeline and "task.started" in timeline, timeline
    await page.screenshot(path=str(screenshots / "task.png"), full_page=True)
    twin = await (await page.request.get(page.url, headers={"Accept": "application/json"})).json()
    assert twin["task"]["state"] == "in_progress" and [i["what"] for i in twin["timeline"] if i["kind"] == "transition"]

    await page.goto(f"{system.url}/console/agents")
    await page.wait_for_selector(f"#agent-table >> text={agent_id}", timeout=WAIT_MS)
    assert "Add a cart" in (await page.text_content("#agent-table") or "")
    await page.screenshot(path=str(screenshots / "agents.png"), full_page=True)
    await page.context.close()


async def test_hostile_text_is_shown_as_text_and_never_runs(browser: Any, system: System, screenshots: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    project_id = await make_project(system, tag)
    task_id, agent_id = f"x-{tag}", f"ax-{tag}"
    await system.post_events(
        {"id": f"xc-{tag}", "type": "task.created", "time": T0, "task_id": task_id, "project_id": project_id, "title": XSS},
        {"id": f"xr-{tag}", "type": "agent.registered", "time": T0, "agent_id": agent_id, "pod_name": f"pod-x-{tag}"},
    )  # fmt: skip
    await system.post_events(
        {"id": f"xs-{tag}", "type": "task.started", "time": T0, "agent_id": agent_id, "task_id": task_id},
        {"id": f"xq-{tag}", "type": "task.question_asked", "time": T0, "agent_id": agent_id, "task_id": task_id,
         "question_id": f"q-{tag}", "question": XSS, "context": XSS},
    )  # fmt: skip

    async def assigned() -> bool:  # a task's log line from an agent it is not assigned to (yet) is refused
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {CONSOLE_TOKEN}", "Accept": "application/json"}
            response = await session.get(f"{system.url}/console/tasks/{task_id}", headers=headers)
            return response.status == 200 and (await response.json())["task"]["assigned_agent_id"] == agent_id

    await eventually(assigned, what=f"task {task_id} assigned to {agent_id}")
    await system.post_events({"id": f"xl-{tag}", "type": "log", "time": T0, "agent_id": agent_id, "task_id": task_id,
                              "level": "error", "message": XSS})  # fmt: skip
    hostile = {"id": f"xd-{tag}", "type": "task.created", "time": T0, "task_id": task_id, "project_id": project_id,
               "title": XSS}  # fmt: skip
    await produce(system.settings.kafka_bootstrap, [dlq_record(system, hostile, f"{XSS} {tag}")])
    page = await logged_in(browser, system)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{system.url}/console/projects/{project_id}")
    await page.wait_for_selector(f"article[data-task='{task_id}']", timeout=WAIT_MS)
    assert await page.text_content(f"article[data-task='{task_id}'] a.title") == XSS
    await page.goto(f"{system.url}/console/tasks/{task_id}")
    await page.locator("#questions", has_text=XSS).wait_for(timeout=WAIT_MS)
    await page.locator("table.logs", has_text=XSS).wait_for(timeout=WAIT_MS)  # the log is folded apart from the question
    await page.wait_for_timeout(2500)  # a refresh of the polled part
    assert await page.evaluate("window.__xss") is None, "a script of a row ran on the task page"
    await page.goto(f"{system.url}/console/agents")
    await page.wait_for_timeout(2500)
    assert await page.evaluate("window.__xss") is None, "a script of a row ran on the agents page"
    assert await page.locator("main img, main script").count() == 0
    await page.goto(f"{system.url}/console/dlq?reason={tag}")
    await page.locator("#dlq-records td.detail", has_text=XSS).wait_for(timeout=WAIT_MS)
    assert await page.evaluate("window.__xss") is None, "a dlq record's reason ran as a script"
    assert await page.locator("main img, main script").count() == 0
    await page.goto(f"{system.url}/console/tasks/{task_id}")
    await page.wait_for_timeout(1500)
    assert await page.evaluate("window.__xss") is None
    assert not errors, errors
    await page.screenshot(path=str(screenshots / "xss-probe.png"), full_page=True)
    await page.context.close()


def dlq_record(system: System, event: dict[str, Any], reason: str) -> tuple[str, bytes, bytes]:
    """A dlq record in the fold's format, for a valid event that a (simulated) fold bug refused."""
    settings = system.settings
    body = {
        "id": str(uuid.uuid4()), "reason": reason, "key": event["task_id"], "value": json.dumps(event), "value_base64": None,
        "source": {"topic": settings.topic(topics.CONTROL_EVENTS), "partition": 0, "offset": 1_000_000},
    }  # fmt: skip
    return settings.topic(topics.DLQ), event["task_id"].encode(), json.dumps(body).encode()


async def test_a_dlq_record_is_re_driven_after_a_confirmation_and_applied(
    browser: Any, system: System, screenshots: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    project_id = await make_project(system, tag)
    task_id = f"d-{tag}"
    event = {"id": f"dc-{tag}", "type": "task.created", "time": T0, "task_id": task_id, "project_id": project_id,
             "title": "Refused by a bug"}  # fmt: skip
    await produce(system.settings.kafka_bootstrap, [dlq_record(system, event, f"simulated fold bug {tag}")])
    page = await logged_in(browser, system)
    await page.goto(f"{system.url}/console/dlq?reason={tag}")
    row = page.locator("#dlq-records tbody tr", has_text=f"dc-{tag}")
    await row.wait_for(timeout=WAIT_MS)
    await page.screenshot(path=str(screenshots / "dlq.png"), full_page=True)
    await row.locator("button").click()
    await page.wait_for_selector("#confirm-form", timeout=WAIT_MS)
    assert "1 of the newest dlq records shown match" in (await page.text_content("#confirm-what") or "")
    await page.screenshot(path=str(screenshots / "dlq-confirm.png"), full_page=True)
    await page.click("#confirm-button")
    await page.wait_for_selector("#job-state:text('done')", timeout=60_000)
    assert (await page.text_content("#job-replayed") or "").strip() == "1"
    await page.screenshot(path=str(screenshots / "dlq-job.png"), full_page=True)

    async def applied() -> bool:
        await page.goto(f"{system.url}/console/tasks/{task_id}")
        return (await page.text_content("h1") or "") == "Refused by a bug"

    await eventually(applied, what="the re-driven task on its page")

    batch = [{**event, "id": f"dc{i}-{tag}", "task_id": f"d{i}-{tag}", "title": f"Batch {i}"} for i in range(2)]
    await produce(system.settings.kafka_bootstrap, [dlq_record(system, e, f"batch bug {tag}") for e in batch])
    await page.goto(f"{system.url}/console/dlq?reason=batch+bug+{tag}")
    await page.locator("#dlq-records tbody tr", has_text=f"dc1-{tag}").wait_for(timeout=WAIT_MS)
    await page.click("#dlq-redrive-all button")
    assert "2 of the newest dlq records shown match" in (await page.text_content("#confirm-what") or "")
    await page.click("#confirm-button")
    await page.wait_for_selector("#job-state:text('done')", timeout=60_000)
    assert (await page.text_content("#job-replayed") or "").strip() == "2"

    async def both() -> bool:
        board = f"{system.url}/console/projects/{project_id}?q=Batch"
        twin = await page.request.get(board, headers={"Accept": "application/json"})
        return sorted(t["title"] for c in (await twin.json())["columns"] for t in c["tasks"]) == ["Batch 0", "Batch 1"]

    await eventually(both, what="both re-driven tasks on the board")
    await page.context.close()


async def test_a_post_without_the_csrf_token_changes_nothing_and_no_session_is_a_redirect(system: System) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"{system.url}/console/dlq", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/console/login"
        response = await session.get(f"{system.url}/console/", headers={"Accept": "application/json"})
        assert response.status == 401
        response = await session.post(f"{system.url}/console/login", data={"token": CONSOLE_TOKEN}, allow_redirects=False,
                                      headers={"X-Forwarded-Proto": "https"})  # fmt: skip
        assert response.status == 303
        cookie = response.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
        signed = {"Cookie": f"aiworker_console={response.cookies['aiworker_console'].value}"}
        response = await session.get(f"{system.url}/console/agents", headers=signed)
        assert response.status == 200, "the session cookie did not let the browser in"
        response = await session.post(f"{system.url}/console/dlq/redrive", data={"confirm": "yes", "at": "0@0"}, headers=signed)
        assert response.status == 403, await response.text()
        bearer = {"Authorization": f"Bearer {CONSOLE_TOKEN}", "Accept": "application/json"}
    async with aiohttp.ClientSession() as script:
        response = await script.get(f"{system.url}/console/agents", headers=bearer)
        assert response.status == 200 and "agents" in await response.json()
        for body in (b"{not json", b"[1, 2]"):
            response = await script.post(f"{system.url}/console/dlq/redrive", data=body,
                                         headers={**bearer, "Content-Type": "application/json"})  # fmt: skip
            assert response.status == 400, await response.text()
        response = await script.get(f"{system.url}/console/dlq?since=yesterday", headers=bearer)
        assert response.status == 400 and "bad filter" in (await response.json())["problems"][0]
        response = await script.get(f"{system.url}/console/projects/p?after=x|y&state=zz&before=9" + "9" * 30, headers=bearer)
        assert response.status in (200, 404), await response.text()


async def test_the_overview_counts_each_project_s_tasks_by_state(browser: Any, system: System, screenshots: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    project_id = await make_project(system, tag)
    await system.post_events(*[
        {"id": f"oc{i}-{tag}", "type": "task.created", "time": T0, "task_id": f"o{i}-{tag}", "project_id": project_id,
         "title": f"Task {i}"} for i in range(3)
    ])  # fmt: skip
    page = await logged_in(browser, system)
    row = page.locator("#projects tbody tr", has_text=project_id)
    await row.locator("td.total:text('3')").wait_for(timeout=WAIT_MS)  # the overview refreshes itself
    assert (await row.locator("td.state-backlog").text_content() or "").strip() == "3"
    await page.screenshot(path=str(screenshots / "overview.png"), full_page=True)
    pipeline = (await (await page.request.get(page.url, headers={"Accept": "application/json"})).json())["pipeline"]
    assert pipeline["dlq_records"] >= 4, pipeline  # the records the dlq and XSS tests above put there
    assert all(isinstance(n, int) for n in pipeline["fold_lag_records"].values()) and not pipeline["problems"], pipeline
    await page.context.close()


async def test_a_gitea_delivery_is_found_by_its_id_and_its_repository(browser: Any, system: System, screenshots: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    project_id = await make_project(system, tag)
    sample = load_sample("issue_comment")
    delivery = str(uuid.uuid4())
    headers = {**sample.signed_headers(system.settings.gitea_secret.get_secret_value()), "X-Gitea-Delivery": delivery}
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{system.url}/webhooks/gitea/{project_id}", data=sample.payload_bytes, headers=headers)
        assert response.status == 202, await response.text()
    page = await logged_in(browser, system)
    await page.goto(f"{system.url}/console/deliveries")

    async def listed() -> bool:
        await page.fill("input[name=delivery_id]", delivery)
        await page.click("#delivery-search button")
        await page.wait_for_load_state()
        return await page.locator(f"#deliveries tr[data-delivery='{delivery}']").count() == 1

    await eventually(listed, what=f"delivery {delivery} on the deliveries page")
    row = page.locator(f"#deliveries tr[data-delivery='{delivery}']")
    assert "issue_comment" in (await row.text_content() or "") and "acme/webshop" in (await row.text_content() or "")
    assert await page.locator("#deliveries tbody tr").count() == 1, "a search by delivery id showed other deliveries"
    await page.screenshot(path=str(screenshots / "deliveries.png"), full_page=True)
    await page.fill("input[name=delivery_id]", "")
    await page.fill("input[name=repository]", "ACME/webshop")
    await page.click("#delivery-search button")
    await page.wait_for_load_state()
    assert await page.locator(f"#deliveries tr[data-delivery='{delivery}']").count() == 1
    twin = await (await page.request.get(page.url, headers={"Accept": "application/json"})).json()
    assert all(d["repository"].lower() == "acme/webshop" for d in twin["deliveries"]) and twin["deliveries"], twin
    await page.context.close()
