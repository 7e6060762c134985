"""The console's read-only pages: overview, project board, task, agents (each with its JSON twin)."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any

from aiohttp import web

from app.trace import as_json, collect_on
from db import console as sql
from webhooks.console import CONSOLE_SETTINGS, LOOK, render
from webhooks.console.pipeline import health
from webhooks.console.timeline import timeline
from webhooks.state import DB_POOL, SINK

BOARD_PAGE = 25
AGENTS_PAGE = 100
STATE_LABELS = MappingProxyType({
    "backlog": "Backlog", "in_progress": "In progress", "needs_input": "Needs input", "ready_to_test": "Ready to test",
    "approved": "Approved", "staging": "Staging", "production": "Production", "cancelled": "Cancelled",
})  # fmt: skip


async def overview(request: web.Request) -> web.StreamResponse:
    settings = request.app[CONSOLE_SETTINGS]
    async with request.config_dict[DB_POOL].acquire() as conn:  # type: ignore[attr-defined]
        projects = await sql.overview(conn)
        pipeline = await health(settings, conn, request.app[LOOK], request.config_dict[SINK].spool)
        await conn.rollback()
    for row in projects:
        row["states"] = {state: int(row.pop(state) or 0) for state in sql.TASK_STATES}
        row["total_tasks"] = int(row["total_tasks"] or 0)
    data = {"projects": projects, "pipeline": pipeline, "states": sql.TASK_STATES, "labels": dict(STATE_LABELS)}
    template = "_overview.html" if request.headers.get("HX-Request") else "overview.html"
    return render.page(request, template, data)


def _cursor(text: str) -> sql.Cursor | None:
    """A column's cursor from the page's `after` parameter: '<ISO time>|<task id>'."""
    at, sep, task_id = text.partition("|")
    try:
        return sql.Cursor(datetime.fromisoformat(at.replace("Z", "")), task_id) if sep and task_id else None
    except ValueError:
        return None


def _cursor_text(row: dict[str, Any]) -> str:
    created = row["created_at"]
    return f"{created.isoformat() if isinstance(created, datetime) else created}|{row['id']}"


async def board(request: web.Request) -> web.StreamResponse:
    project_id = request.match_info["project_id"]
    q = request.query
    where = sql.BoardFilter(q.get("q", "").strip()[:200], q.get("agent", "").strip()[:36], q.get("priority", "").strip()[:10])
    only = q.get("state", "")
    after = _cursor(q.get("after", ""))
    async with request.config_dict[DB_POOL].acquire() as conn:  # type: ignore[attr-defined]
        project = await sql.project(conn, project_id)
        if project is None:
            await conn.rollback()
            return render.not_found(request, f"project {project_id!r}")
        searched = await sql.board_searched(conn, project_id, where, BOARD_PAGE + 1) if where.text and not only else None
        counts = await sql.state_counts(conn, project_id, where) if searched is None else None
        columns = []
        for state in sql.TASK_STATES:
            if only and state != only:
                continue
            if searched is not None:
                rows = searched[state]
                count = int(rows[0]["n"]) if rows else 0
            else:
                rows = await sql.board_column(conn, project_id, state, where, BOARD_PAGE + 1, after if only else None)
                count = counts[state] if counts is not None else 0
            more = len(rows) > BOARD_PAGE
            rows = rows[:BOARD_PAGE]
            columns.append({
                "state": state, "label": STATE_LABELS[state], "count": count, "tasks": rows,
                "next": _cursor_text(rows[-1]) if more and rows else None,
            })  # fmt: skip
        await conn.rollback()
    data = {
        "project": project, "columns": columns, "filter": {"q": where.text, "agent": where.agent, "priority": where.priority},
        "state": only, "page_size": BOARD_PAGE,
    }  # fmt: skip
    template = "_board.html" if request.headers.get("HX-Request") else "board.html"
    return render.page(request, template, data)


async def task(request: web.Request) -> web.StreamResponse:
    task_id = request.match_info["task_id"]
    async with request.config_dict[DB_POOL].acquire() as conn:  # type: ignore[attr-defined]
        row = await sql.task(conn, task_id)
        if row is None:
            await conn.rollback()
            return render.not_found(request, f"task {task_id!r}")
        questions = await sql.questions(conn, task_id)
        deployments = await sql.deployments(conn, row)
        logs = await sql.task_logs(conn, task_id)
        found = await collect_on(conn, task_id)
        await conn.rollback()
    data = {
        "task": row, "questions": questions, "deployments": deployments, "logs": logs,
        "timeline": timeline(row, found, questions, deployments), "trace": as_json(found), "labels": dict(STATE_LABELS),
        "trace_truncated": found.truncated,
    }  # fmt: skip
    template = "_task.html" if request.headers.get("HX-Request") else "task.html"
    return render.page(request, template, data)


async def agents(request: web.Request) -> web.StreamResponse:
    after = request.query.get("after", "").strip()[:36] or None
    agent_id = request.query.get("agent", "").strip()[:36] or None
    async with request.config_dict[DB_POOL].acquire() as conn:  # type: ignore[attr-defined]
        rows = await sql.agents(conn, AGENTS_PAGE + 1, after)
        logs = await sql.recent_logs(conn, agent_id)
        await conn.rollback()
    more = len(rows) > AGENTS_PAGE
    rows = rows[:AGENTS_PAGE]
    data = {"agents": rows, "next": rows[-1]["id"] if more else None, "logs": logs, "agent": agent_id or ""}
    template = "_agents.html" if request.headers.get("HX-Request") else "agents.html"
    return render.page(request, template, data)


async def root(request: web.Request) -> web.StreamResponse:
    return await overview(request)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", root),
        web.get("/projects/{project_id}", board),
        web.get("/tasks/{task_id}", task),
        web.get("/agents", agents),
    ]
