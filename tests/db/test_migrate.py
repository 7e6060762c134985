"""The migration runner and the resulting schema, against a real MariaDB/MySQL server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from db import DatabaseError
from db.migrate import MigrationError, default_directory, migrate, split_statements
from db.pool import connect

MIGRATIONS = sorted(p.name for p in default_directory().glob("*.sql"))

# Seed columns: name -> (DATA_TYPE, nullable). "json" is LONGTEXT (with a json_valid CHECK) in MariaDB.
N, Y = False, True
SEED_COLUMNS: dict[str, dict[str, tuple[str, bool]]] = {
    "projects": {
        "id": ("varchar", N), "name": ("varchar", N), "description": ("text", Y), "gitea_repo_id": ("int", Y),
        "gitea_repo_url": ("varchar", Y), "gitea_owner": ("varchar", Y), "gitea_repo_name": ("varchar", Y),
        "default_branch": ("varchar", Y), "k8s_namespace": ("varchar", N), "docker_image": ("varchar", Y),
        "env_vars": ("json", Y), "replicas": ("int", Y), "cpu_limit": ("varchar", Y), "memory_limit": ("varchar", Y),
        "mcp_tools": ("json", Y), "mcp_permissions": ("json", Y), "status": ("enum", Y),
        "created_at": ("timestamp", Y), "updated_at": ("timestamp", Y),
    },
    "agents": {
        "id": ("varchar", N), "pod_name": ("varchar", N), "k8s_namespace": ("varchar", Y), "node_name": ("varchar", Y),
        "status": ("enum", Y), "current_task_id": ("varchar", Y), "capabilities": ("json", Y),
        "max_concurrent_tasks": ("int", Y), "last_heartbeat": ("timestamp", Y), "error_message": ("text", Y),
        "restarts_count": ("int", Y), "tasks_completed": ("int", Y), "total_runtime_minutes": ("int", Y),
        "created_at": ("timestamp", Y), "updated_at": ("timestamp", Y),
    },
    "tasks": {
        "id": ("varchar", N), "project_id": ("varchar", N), "title": ("varchar", N), "description": ("text", Y),
        "priority": ("enum", Y), "state": ("enum", Y), "assigned_agent_id": ("varchar", Y),
        "assigned_at": ("timestamp", Y), "branch_name": ("varchar", Y), "pr_number": ("int", Y),
        "pr_url": ("varchar", Y), "preview_namespace": ("varchar", Y), "preview_url": ("varchar", Y),
        "preview_deployed_at": ("timestamp", Y), "estimated_complexity": ("enum", Y),
        "actual_duration_minutes": ("int", Y), "created_at": ("timestamp", Y), "updated_at": ("timestamp", Y),
        "started_at": ("timestamp", Y), "completed_at": ("timestamp", Y), "deployed_staging_at": ("timestamp", Y),
        "deployed_production_at": ("timestamp", Y),
    },
    "task_questions": {
        "id": ("varchar", N), "task_id": ("varchar", N), "question": ("text", N), "context": ("text", Y),
        "asked_at": ("timestamp", Y), "response": ("text", Y), "responded_at": ("timestamp", Y),
        "responded_by": ("varchar", Y), "status": ("enum", Y),
    },
    "task_groups": {
        "id": ("varchar", N), "project_id": ("varchar", N), "task_ids": ("json", N), "staging_branch": ("varchar", Y),
        "staging_pr_number": ("int", Y), "staging_pr_url": ("varchar", Y), "staging_deployed_at": ("timestamp", Y),
        "production_deployed_at": ("timestamp", Y), "production_rollback_available": ("tinyint", Y),
        "status": ("enum", Y), "created_by": ("varchar", Y), "notes": ("text", Y),
        "created_at": ("timestamp", Y), "updated_at": ("timestamp", Y),
    },
    "deployments": {
        "id": ("varchar", N), "project_id": ("varchar", N), "task_group_id": ("varchar", Y),
        "environment": ("enum", N), "deployment_type": ("enum", Y), "branch": ("varchar", Y),
        "commit_hash": ("varchar", Y), "k8s_namespace": ("varchar", Y), "k8s_deployment_name": ("varchar", Y),
        "image_tag": ("varchar", Y), "status": ("enum", Y), "url": ("varchar", Y), "error_message": ("text", Y),
        "logs": ("text", Y), "started_at": ("timestamp", Y), "completed_at": ("timestamp", Y),
        "duration_seconds": ("int", Y), "triggered_by": ("varchar", Y), "created_at": ("timestamp", Y),
    },
    "agent_logs": {
        "id": ("bigint", N), "agent_id": ("varchar", N), "task_id": ("varchar", Y), "level": ("enum", Y),
        "message": ("text", N), "metadata": ("json", Y), "created_at": ("timestamp", Y),
    },
}  # fmt: skip

ENUMS = {
    ("tasks", "priority"): "enum('low','medium','high','urgent')",
    ("tasks", "state"): "enum('backlog','in_progress','needs_input','ready_to_test','approved','staging',"
    "'production','cancelled')",
    ("agents", "status"): "enum('idle','busy','error','offline','initializing')",
    ("deployments", "environment"): "enum('preview','staging','production')",
    ("agent_logs", "level"): "enum('debug','info','warn','error')",
}

# (table, column) -> (referenced table, ON DELETE)
FOREIGN_KEYS = {
    ("tasks", "project_id"): ("projects", "CASCADE"),
    ("tasks", "assigned_agent_id"): ("agents", "SET NULL"),
    ("agents", "current_task_id"): ("tasks", "SET NULL"),
    ("task_questions", "task_id"): ("tasks", "CASCADE"),
    ("task_groups", "project_id"): ("projects", "CASCADE"),
    ("deployments", "project_id"): ("projects", "CASCADE"),
    ("deployments", "task_group_id"): ("task_groups", "SET NULL"),
    ("agent_logs", "agent_id"): ("agents", "CASCADE"),
    ("agent_logs", "task_id"): ("tasks", "SET NULL"),
}

INDEXES = {
    ("projects", "idx_status"): ["status"],
    ("projects", "idx_k8s_namespace"): ["k8s_namespace"],
    ("projects", "idx_projects_gitea_repo_id"): ["gitea_repo_id"],
    ("projects", "idx_projects_gitea_owner_repo"): ["gitea_owner", "gitea_repo_name"],
    ("agents", "idx_status"): ["status"],
    ("agents", "idx_pod_name"): ["pod_name"],
    ("agents", "idx_last_heartbeat"): ["last_heartbeat"],
    ("agents", "idx_agents_available"): ["status", "last_heartbeat"],
    ("tasks", "idx_project_state"): ["project_id", "state"],
    ("tasks", "idx_state"): ["state"],
    ("tasks", "idx_assigned_agent"): ["assigned_agent_id"],
    ("tasks", "idx_created_at"): ["created_at"],
    ("tasks", "idx_tasks_project_state"): ["project_id", "state", "created_at"],
    ("tasks", "idx_tasks_project_issue"): ["project_id", "gitea_issue_number"],
    ("task_questions", "idx_task_status"): ["task_id", "status"],
    ("task_questions", "idx_status"): ["status"],
    ("task_groups", "idx_project_status"): ["project_id", "status"],
    ("task_groups", "idx_status"): ["status"],
    ("deployments", "idx_project_env"): ["project_id", "environment"],
    ("deployments", "idx_status"): ["status"],
    ("deployments", "idx_created_at"): ["created_at"],
    ("agent_logs", "idx_agent_created"): ["agent_id", "created_at"],
    ("agent_logs", "idx_task_created"): ["task_id", "created_at"],
    ("agent_logs", "idx_level"): ["level"],
    ("outbox", "idx_outbox_unpublished"): ["published_at", "id"],
    ("processed_events", "idx_processed_events_processed_at"): ["processed_at"],
}
UNIQUE = {("projects", "k8s_namespace"), ("agents", "pod_name"), ("outbox", "event_id")}


async def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await connect(url)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args or None)
            return list(await cur.fetchall())
    finally:
        await conn.ensure_closed()


async def schema_name(url: str) -> str:
    return str((await query(url, "SELECT DATABASE()"))[0][0])


def test_split_statements_skips_comments_and_keeps_inner_lines() -> None:
    sql = "-- header;\nCREATE TABLE a (\n  -- a comment;\n  x INT\n);\n\nSELECT 1;\nSELECT 2"
    assert split_statements(sql) == ["CREATE TABLE a (\n  x INT\n)", "SELECT 1", "SELECT 2"]


async def test_migrate_applies_all_and_records_checksums(fresh_db_url: str) -> None:
    messages: list[str] = []
    assert await migrate(fresh_db_url, log=messages.append) == MIGRATIONS
    assert any("001_schema.sql" in m for m in messages)
    rows = await query(fresh_db_url, "SELECT name, checksum, applied_at FROM schema_migrations ORDER BY name")
    assert [r[0] for r in rows] == MIGRATIONS
    for name, checksum, applied_at in rows:
        assert checksum == hashlib.sha256((default_directory() / name).read_bytes()).hexdigest()
        assert applied_at is not None
    assert await migrate(fresh_db_url) == []


async def test_the_migrate_command_says_what_it_applied_once(fresh_db_url: str) -> None:
    """One summary line (stdout) per run, not a second one logged by the runner (stderr has its progress only)."""

    def run() -> list[str]:
        env = {**os.environ, "AIWORKER_DATABASE_URL": fresh_db_url}
        done = subprocess.run([sys.executable, "-m", "app", "migrate"], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        assert all("applying" in line for line in done.stderr.splitlines()), done.stderr
        return done.stdout.splitlines()

    assert await asyncio.to_thread(run) == [f"applied {len(MIGRATIONS)} migration(s): {', '.join(MIGRATIONS)}"]
    assert await asyncio.to_thread(run) == ["applied 0 migration(s): none pending"]


async def test_concurrent_migrations_apply_once(fresh_db_url: str) -> None:
    first, second = await asyncio.gather(migrate(fresh_db_url), migrate(fresh_db_url))
    assert sorted([first, second], key=len) == [[], MIGRATIONS]
    assert len(await query(fresh_db_url, "SELECT name FROM schema_migrations")) == len(MIGRATIONS)


async def test_edited_applied_migration_is_refused(fresh_db_url: str, tmp_path: Path) -> None:
    for name in MIGRATIONS:
        shutil.copy(default_directory() / name, tmp_path / name)
    assert await migrate(fresh_db_url, tmp_path) == MIGRATIONS
    edited = tmp_path / MIGRATIONS[-1]
    edited.write_text(edited.read_text() + "\n-- an innocent edit\n")
    with pytest.raises(MigrationError, match="must not be edited; add a new numbered file instead") as info:
        await migrate(fresh_db_url, tmp_path)
    assert MIGRATIONS[-1] in str(info.value)
    assert isinstance(info.value, DatabaseError)


async def test_missing_applied_migration_is_refused(fresh_db_url: str, tmp_path: Path) -> None:
    for name in MIGRATIONS:
        shutil.copy(default_directory() / name, tmp_path / name)
    await migrate(fresh_db_url, tmp_path)
    (tmp_path / MIGRATIONS[-1]).unlink()
    with pytest.raises(MigrationError, match="file is missing"):
        await migrate(fresh_db_url, tmp_path)


async def test_new_file_is_applied_and_failure_names_file_and_statement(fresh_db_url: str, tmp_path: Path) -> None:
    shutil.copy(default_directory() / MIGRATIONS[0], tmp_path / MIGRATIONS[0])
    await migrate(fresh_db_url, tmp_path)
    (tmp_path / "900_extra.sql").write_text("CREATE TABLE extra_a (id INT PRIMARY KEY);\n")
    assert await migrate(fresh_db_url, tmp_path) == ["900_extra.sql"]
    (tmp_path / "901_broken.sql").write_text(
        "-- half of this works\nCREATE TABLE extra_b (id INT PRIMARY KEY);\nCREATE TABLE extra_b (id INT);\n"
    )
    with pytest.raises(MigrationError) as info:
        await migrate(fresh_db_url, tmp_path)
    message = str(info.value)
    assert "901_broken.sql" in message and "statement 2 of 2" in message and "partly applied" in message
    names = [r[0] for r in await query(fresh_db_url, "SELECT name FROM schema_migrations")]
    assert "901_broken.sql" not in names


async def test_migrate_without_create_database_fails_on_missing_db(fresh_db_url: str) -> None:
    with pytest.raises(MigrationError):
        await migrate(fresh_db_url, create_database=False)


async def test_schema_matches_seed(migrated_db_url: str) -> None:
    db = await schema_name(migrated_db_url)
    rows = await query(
        migrated_db_url,
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s",
        db,
    )
    columns = {(t, c): (dt.lower(), n == "YES", ct.lower()) for t, c, dt, n, ct in rows}
    for table, expected in SEED_COLUMNS.items():
        for column, (data_type, nullable) in expected.items():
            assert (table, column) in columns, f"{table}.{column} missing"
            actual_type, actual_null, _ = columns[(table, column)]
            allowed = {"json", "longtext"} if data_type == "json" else {data_type}
            assert actual_type in allowed, f"{table}.{column}: {actual_type}"
            assert actual_null == nullable, f"{table}.{column} nullable={actual_null}"
    for (table, column), column_type in ENUMS.items():
        assert columns[(table, column)][2] == column_type
    for table, column in [("tasks", "gitea_issue_number"), ("projects", "gitea_webhook_secret_previous")]:
        assert (table, column) in columns


async def test_foreign_keys_including_the_cycle(migrated_db_url: str) -> None:
    db = await schema_name(migrated_db_url)
    rows = await query(
        migrated_db_url,
        "SELECT k.TABLE_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, r.DELETE_RULE "
        "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
        "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
        "AND r.TABLE_NAME = k.TABLE_NAME WHERE k.TABLE_SCHEMA = %s",
        db,
    )
    assert {(t, c): (ref, rule) for t, c, ref, rule in rows} == FOREIGN_KEYS


async def test_indexes(migrated_db_url: str) -> None:
    db = await schema_name(migrated_db_url)
    rows = await query(
        migrated_db_url,
        "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        db,
    )
    indexes: dict[tuple[str, str], list[str]] = {}
    unique: set[tuple[str, str]] = set()
    for table, index, column, non_unique in rows:
        indexes.setdefault((table, index), []).append(column)
        if not int(non_unique) and index != "PRIMARY":
            unique.add((table, column))
    for key, columns in INDEXES.items():
        assert indexes.get(key) == columns, key
    assert unique >= UNIQUE
    # 012: the seed's idx_agent_logs_recent repeated idx_agent_created's columns and no plan used it.
    assert ("agent_logs", "idx_agent_logs_recent") not in indexes
    assert indexes[("fold_positions", "PRIMARY")] == ["consumer", "topic", "partition"]
    assert indexes[("processed_events", "PRIMARY")] == ["event_id"]
