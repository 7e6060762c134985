"""Re-drive jobs of the console: `aiworker-events replay`'s Replayer run in the web process, polled by the page.

A job is the replay command with the page's filters (app/replay_records.py `Filters`, the same options), its
output (the lines the command prints) and its counts read live from the Replayer while it runs. Jobs live in
the web process that started them (the page polls that process: the console's session cookie is per
browser, a load balancer in front of several webs needs sticky sessions for the job page); the last
KEEP_JOBS are kept.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from app.replay import Replayer, ReplayError, ReplayOptions
from app.settings import Settings

log = logging.getLogger(__name__)
KEEP_JOBS = 50


@dataclass(slots=True)
class Job:
    id: str
    what: str
    started: float
    replayer: Replayer
    output: io.StringIO
    finished: float | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        counts = self.replayer.counts
        return {
            "id": self.id,
            "what": self.what,
            "state": "failed" if self.error else "done" if self.finished else "running",
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
            "total": self.replayer.total,
            "scanned": counts.scanned,
            "matched": counts.matched,
            "replayed": counts.replayed,
            "filtered": counts.filtered,
            "unreadable": counts.unreadable,
            "foreign": counts.foreign,
            "unavailable": counts.unavailable,
            "output": self.output.getvalue()[-8000:],
        }


class Jobs:
    """The re-drive jobs of this web process (one app-state instance)."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.jobs: dict[str, Job] = {}

    def start(self, options: ReplayOptions) -> Job:
        output = io.StringIO()
        console = Console(file=output, width=160, force_terminal=False, color_system=None)
        replayer = Replayer(self.settings, self.bootstrap, options, console)
        job = Job(secrets.token_hex(8), options.filters.describe(), time.time(), replayer, output)
        job.task = asyncio.create_task(self._run(job), name=f"console-redrive-{job.id}")
        self.jobs[job.id] = job
        for old in list(self.jobs)[:-KEEP_JOBS]:
            if self.jobs[old].finished:
                del self.jobs[old]
        return job

    async def _run(self, job: Job) -> None:
        try:
            counts = await job.replayer.run()
            job.output.write(counts.line() + "\n")
        except ReplayError as exc:
            job.error = str(exc)
        except Exception as exc:  # a job's failure is shown on its page, the web goes on
            log.exception("console re-drive %s failed", job.id)
            job.error = f"the re-drive failed ({type(exc).__name__}); see the web's log"
        finally:
            job.finished = time.time()

    async def stop(self) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
        await asyncio.gather(*(j.task for j in self.jobs.values() if j.task is not None), return_exceptions=True)
