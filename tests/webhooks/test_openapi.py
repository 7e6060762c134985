"""schemathesis against a live web process (real broker and database): no 5xx, and every answer as
schemas/openapi.json documents it (status codes, content types, headers, bodies, problem+json errors).

The web runs without a Gitea secret and with GITEA_INSECURE=true, so generated deliveries reach the whole path
(payload, envelope, broker) instead of stopping at the signature; the per-project hook gets a project that exists
for its positive cases (tests/webhooks/test_gitea_signature.py and the
ingest tests cover signatures). POST /events is called with the service token; schemathesis also sends it
without (ignored_auth). The example count is modest and the coverage phase (boundary values of every field of
every event type, ~100 s here) is off: this runs in `make test`. Everything, by hand, against a running system:
`.venv/bin/schemathesis run schemas/openapi.json --url http://127.0.0.1:8080 -H "Authorization: Bearer $TOKEN"`.

Two of schemathesis's checks judge whether the server's validation is exactly the schema's, and are left out
where it is not by design: on POST /events, `negative_data_rejection` (field values are coerced as pydantic does:
"2" and true for integers; only `time` must be RFC 3339 text); on the Gitea hook both (the form's `payload` must
be JSON text of an object, which no generator honours, and event type headers are lower-cased, not refused).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.settings import Settings
from tests.harness import WebProcess

SPEC = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"
EXAMPLES = 20


@pytest.fixture
async def project(settings: Settings, pool: Any) -> str:
    """A project without a secret or repository (GITEA_INSECURE: its hook takes unsigned deliveries)."""
    project_id = f"api-{settings.worker_id}"[:36]
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("INSERT INTO projects (id, name, k8s_namespace) VALUES (%s, 'API', %s)", [project_id, project_id])
        await conn.commit()
    return project_id


@pytest.fixture
def web(settings: Settings, tmp_path: Path) -> Iterator[WebProcess]:
    insecure = settings.model_copy(update={"gitea_secret": "", "gitea_insecure": True, "max_body_bytes": 256 * 1024})
    process = WebProcess(insecure, log_path=tmp_path / "web.log").start()
    yield process
    process.stop()
    print("---- web log (tail) ----\n" + process.log()[-4000:])


schema = schemathesis.openapi.from_path(SPEC)
schema.config.phases.coverage.enabled = False  # see the module docstring


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """The spec describes an NDJSON body as the array of its lines' values."""
    return "\n".join(json.dumps(item) for item in value).encode() if isinstance(value, list) else json.dumps(value).encode()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented(case: Any, web: WebProcess, project: str) -> None:
    if case.path == "/events":
        headers = {"Authorization": f"Bearer {web.settings.service_token}"}
        case.call_and_validate(base_url=web.url, headers=headers, excluded_checks=[negative_data_rejection])
    elif case.path.startswith("/webhooks/gitea"):
        if case.path_parameters and case.meta is not None and case.meta.generation.mode.is_positive:
            case.path_parameters = {"project_id": project}  # a project that exists, so deliveries go all the way
        case.call_and_validate(base_url=web.url, excluded_checks=[negative_data_rejection, positive_data_acceptance])
    else:
        case.call_and_validate(base_url=web.url)
