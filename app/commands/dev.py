"""`aiworker-events dev`: the whole system on one machine, in the foreground, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from app import AiworkerError
from app.commands.broker import EmbeddedBroker, wait_for_port
from app.settings import Settings
from app.topics import ensure_topics
from db.pool import connect, describe_error, parse_database_url, redact_database_url
from webhooks.auth import agent_token

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class DevError(AiworkerError):
    """The dev system could not be brought up."""


def say(text: str) -> None:
    print(f"[dev] {text}", flush=True)


async def _server_reachable(url: str) -> str | None:
    try:
        conn = await connect(url, database=False)
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the operator as the reason
        return describe_error(exc)
    await conn.ensure_closed()
    return None


def ensure_database(settings: Settings) -> None:
    """Make the MySQL-compatible server of AIWORKER_DATABASE_URL reachable, starting or installing MariaDB locally."""
    url = settings.database_url.get_secret_value()
    address = parse_database_url(url)
    error = asyncio.run(_server_reachable(url))
    if error is None:
        return
    if address.host not in LOCAL_HOSTS:
        raise DevError(
            f"database server {address.host}:{address.port} unreachable ({error}); start it or fix AIWORKER_DATABASE_URL"
        )
    daemon = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None)
    is_root = os.geteuid() == 0
    if daemon is None:
        if not (is_root and shutil.which("apt-get")):
            raise DevError(
                "no database server: install one with `sudo apt-get install -y mariadb-server`, or set AIWORKER_DATABASE_URL"
            )
        say("installing mariadb-server with apt-get (once)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "mariadb-server"], check=True, env=env)
        daemon = "/usr/sbin/mariadbd"
    if not is_root:
        raise DevError(
            "MariaDB is installed but not running: start it with "
            f"`sudo start-stop-daemon --start --oknodo --background --exec {daemon}`"
        )
    say("starting the local MariaDB")
    Path("/run/mysqld").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/mysqld", "mysql", "mysql")
    subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", daemon], check=True)
    if not wait_for_port(address.host, address.port, time.monotonic() + 60):
        raise DevError(f"MariaDB did not listen on {address.host}:{address.port} within 60s; see /var/log/mysql")
    if asyncio.run(_server_reachable(url)) is not None and shutil.which("mariadb"):
        # A fresh Debian install lets root in only through the socket: give the URL's user TCP access.
        user, password = address.user.replace("'", ""), address.password.replace("'", "''")
        sql = "".join(
            f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{password}';"
            f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{host}' WITH GRANT OPTION;"
            for host in ("127.0.0.1", "::1")
        )
        subprocess.run(["mariadb", "-uroot", "-e", sql], check=False)
    error = asyncio.run(_server_reachable(url))
    if error is not None:
        raise DevError(
            f"MariaDB runs but {redact_database_url(url)} cannot log in ({error}); fix the user or AIWORKER_DATABASE_URL"
        )


async def _forget_positions(url: str) -> int:
    from db.fold_store import forget_positions

    conn = await connect(url)
    try:
        async with conn.cursor() as cur:
            forgotten = await forget_positions(cur)
        await conn.commit()
        return forgotten
    finally:
        await conn.ensure_closed()


def dev_environment(settings: Settings, bootstrap: str) -> dict[str, str]:
    """The children's environment: every resolved setting (flags included), the broker, dev secrets."""
    env = {**os.environ, **settings.environment(), "AIWORKER_KAFKA_BOOTSTRAP": bootstrap}
    for name in ("service_token", "agent_token_key", "gitea_secret", "console_token"):
        if not getattr(settings, name):
            env[f"AIWORKER_{name.upper()}"] = "dev-" + secrets.token_hex(12)
    return env


def run_dev(settings: Settings) -> int:
    from db.migrate import migrate

    ensure_database(settings)
    broker: EmbeddedBroker | None = None
    bootstrap = settings.kafka_bootstrap
    children: list[subprocess.Popen[bytes]] = []
    wrote = False
    try:
        if not bootstrap:
            Path("var").mkdir(exist_ok=True)
            broker = EmbeddedBroker(log_path=Path("var/broker.log")).start()
            bootstrap = broker.bootstrap
            say(f"embedded broker (Tansu, in memory) on {bootstrap}")
        asyncio.run(ensure_topics(settings, bootstrap))
        url = settings.database_url.get_secret_value()
        applied = asyncio.run(migrate(url))
        say(f"database {parse_database_url(url).database}: {len(applied)} migration(s) applied")
        if broker is not None and (forgotten := asyncio.run(_forget_positions(url))):
            # The fold resumes from the positions in the database: those of a previous run's broker would make the
            # worker skip this new, empty broker's first records (its offsets start at 0 again).
            say(f"forgot the {forgotten} input position(s) stored by a previous run (its in-memory broker is gone)")
        env = dev_environment(settings, bootstrap)
        names = ("web", "worker")
        for command in names:
            children.append(subprocess.Popen([sys.executable, "-m", "app", command], env=env))
        base = f"http://127.0.0.1:{settings.http_port}"
        if not wait_for_port("127.0.0.1", settings.http_port, time.monotonic() + 30):
            raise DevError(f"the web process did not listen on port {settings.http_port}; is the port taken?")
        say(
            f"ready. Gitea webhooks: POST {base}/webhooks/gitea/<project id> (or the shared {base}/webhooks/gitea)   "
            f"events: POST {base}/events"
        )
        say(f"service token: {env['AIWORKER_SERVICE_TOKEN']}   agent token key: {env['AIWORKER_AGENT_TOKEN_KEY']}")
        say(f"agent token of agent a1: {agent_token(env['AIWORKER_AGENT_TOKEN_KEY'], 'a1')}   (others: `aiworker-events "
            "agent-token <agent_id>` with this key)")  # fmt: skip
        say(f"gitea secret: {env['AIWORKER_GITEA_SECRET']}   health: {base}/readyz   Ctrl-C stops everything")
        say(f"console: {base}/console (log in with the console token: {env['AIWORKER_CONSOLE_TOKEN']})")
        if settings.worker_http_port:
            say(f"worker: http://127.0.0.1:{settings.worker_http_port}/readyz and /metrics (one line per folded batch below)")
        write_dev_env(env, base)
        wrote = True
        say(f"wrote {DEV_ENV} (read by `aiworker-events demo`): try `make demo` in a second terminal; there "
            f"`set -a; . {DEV_ENV}; set +a` gives every other command (trace, replay, agent-token...) this system")  # fmt: skip
        return _wait(dict(zip(names, children, strict=True)))
    finally:
        _stop(children)
        if broker is not None:
            broker.stop()
        if wrote:
            DEV_ENV.unlink(missing_ok=True)  # its tokens and broker port die with this run
        say("stopped")


DEV_ENV = Path("var/dev.env")
DEV_ENV_KEYS = (
    "SERVICE_TOKEN",
    "AGENT_TOKEN_KEY",
    "GITEA_SECRET",
    "CONSOLE_TOKEN",
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP",
    "TOPIC_PREFIX",
)


def write_dev_env(env: dict[str, str], base_url: str) -> None:
    """The running system's URL and secrets for `demo` and scripts (owner-only: it holds the dev tokens)."""
    DEV_ENV.parent.mkdir(exist_ok=True)
    lines = [f"AIWORKER_WEB_URL={base_url}", *(f"AIWORKER_{k}={env[f'AIWORKER_{k}']}" for k in DEV_ENV_KEYS)]
    DEV_ENV.touch(mode=0o600)
    DEV_ENV.write_text("# written by `aiworker-events dev`; valid while it runs\n" + "\n".join(lines) + "\n")


def _wait(children: dict[str, subprocess.Popen[bytes]]) -> int:
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop:
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    say(f"{name} exited with {code}; stopping the rest")
                    return code or 1
            time.sleep(0.3)
    except KeyboardInterrupt:
        pass
    return 0


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
