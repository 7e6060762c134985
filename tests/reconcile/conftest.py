"""Fixtures of the reconcile tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from db.migrate import drop_database, migrate


@pytest.fixture
async def own_database(mysql_server: str) -> AsyncIterator[str]:
    """A database of the test alone: reconcile goes over every active project, so no other test's may be there."""
    url = f"{mysql_server}/aiw_rec_{uuid.uuid4().hex[:12]}"
    await migrate(url)
    yield url
    await drop_database(url)
