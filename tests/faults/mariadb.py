"""A private MariaDB server for the database-outage test: its own datadir (mariadb-install-db), port and
socket, started and stopped by the test. The machine's shared server is never touched."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from app.commands.broker import free_port, wait_for_port


class PrivateMariaDB:
    def __init__(self, base: Path, *options: str) -> None:
        self.base = base
        self.options = options  # more server options, e.g. "--max-allowed-packet=1M"
        self.datadir = base / "data"
        self.socket = base / "mariadbd.sock"
        self.port = free_port()
        self.log_path = base / "mariadbd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()) and bool(shutil.which("mariadb-install-db"))

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    @property
    def tmpdir(self) -> Path:
        return self.base / "tmp"

    def install(self) -> PrivateMariaDB:
        self.base.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(exist_ok=True)
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        return self

    def start(self, timeout: float = 60.0) -> PrivateMariaDB:
        import time

        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [binary, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}", f"--socket={self.socket}",
             "--bind-address=127.0.0.1", "--user=root", f"--pid-file={self.base / 'mariadbd.pid'}",
             f"--tmpdir={self.tmpdir}",  # its own: a server starting up clears leftover #sql files in its tmpdir
             "--innodb-buffer-pool-size=128M", "--skip-log-bin", "--max-connections=200", *self.options],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        if not wait_for_port("127.0.0.1", self.port, time.monotonic() + timeout):
            self.stop()
            raise AssertionError(f"the private mariadbd did not listen within {timeout:.0f}s:\n{self.log()[-2000:]}")
        return self

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), as `systemctl stop` does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
