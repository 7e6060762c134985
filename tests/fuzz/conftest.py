"""Fixtures of the fuzz suites: a web process with a small body limit (so 413s are cheap to reach)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.harness import WebProcess


@pytest.fixture
def fuzz_web(settings: Settings, tmp_path: Path) -> Iterator[WebProcess]:
    process = WebProcess(settings.model_copy(update={"max_body_bytes": 64 * 1024}), log_path=tmp_path / "web.log").start()
    yield process
    process.stop()
    print("---- web log (tail) ----\n" + process.log()[-4000:])
