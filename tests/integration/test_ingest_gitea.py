"""POST /webhooks/gitea against the real broker and database: every sample, JSON and form, signatures of
every kind, per-project secrets with rotation, and the refusals (nothing refused reaches the topic)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from app.envelope import GiteaEnvelope
from app.settings import Settings
from tests.gitea_samples import Sample, form_body, load_sample, load_samples, sign
from tests.webhooks.ingest_helpers import insert_project, read_raw, unique_repo_id, web_client

SAMPLES = load_samples()


def other_repo(sample: Sample, repo_id: int) -> Sample:
    """The sample, for another repository (its own id and name), so that a project row can be made for it."""
    payload = sample.payload
    payload["repository"] = {**payload["repository"], "id": repo_id, "name": f"r{repo_id}", "full_name": f"org/r{repo_id}"}
    payload["repository"]["owner"] = {**payload["repository"]["owner"], "login": "org", "username": "org"}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return Sample(sample.name, sample.event_type, sample.headers, raw)


async def test_every_sample_as_json_and_as_form_lands_unchanged(settings: Settings) -> None:
    sent: dict[str, Sample] = {}
    async with web_client(settings) as client:
        for index, sample in enumerate(SAMPLES):
            for form in (False, True):
                delivery = f"{index:04d}-{int(form)}-{sample.headers['X-Gitea-Delivery']}"[:60]
                headers = {**sample.signed_headers(settings.gitea_secret.get_secret_value()), "X-Gitea-Delivery": delivery}
                if form:
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                body = form_body(sample.payload_bytes) if form else sample.payload_bytes
                response = await client.post("/webhooks/gitea", data=body, headers=headers)
                assert response.status == 202, (sample.name, form, await response.text())
                assert (await response.json())["durable"] == "broker"
                sent[delivery] = sample
    records = await read_raw(settings.kafka_bootstrap, settings.topic("gitea.webhooks"), expect=len(sent))
    assert len(records) == len(sent) == 2 * len(SAMPLES)
    for record in records:
        envelope = GiteaEnvelope.decode(record.value)
        sample = sent[envelope.delivery_id]
        assert envelope.payload_bytes() == sample.payload_bytes  # byte for byte as signed
        assert envelope.event_type == sample.event_type
        assert envelope.event_group == sample.headers["X-Gitea-Event"]
        repository = (sample.payload.get("repository") or {}).get("full_name", "")
        assert envelope.repository == repository
        assert record.key == repository.encode()
        assert abs((datetime.now(UTC) - envelope.received_at).total_seconds()) < 120


@pytest.mark.parametrize(
    "signature",
    [
        {"X-Hub-Signature-256": "use"},  # only the GitHub-style header
        {"X-Gitea-Signature": "use"},  # only Gitea's
        {"x-gitea-signature": "use"},  # any casing
    ],
)
async def test_either_signature_header_is_enough(settings: Settings, signature: dict[str, str]) -> None:
    sample = load_sample("push__main")
    digest = sign(sample.payload_bytes, settings.gitea_secret.get_secret_value())["X-Gitea-Signature"]
    name = next(iter(signature))
    value = f"sha256={digest}" if name == "X-Hub-Signature-256" else digest
    async with web_client(settings) as client:
        response = await client.post("/webhooks/gitea", data=sample.payload_bytes, headers={**sample.headers, name: value})
        assert response.status == 202, await response.text()


@pytest.mark.parametrize("case", ["wrong secret", "missing", "empty digests", "malformed", "tampered payload"])
async def test_bad_signatures_are_401_and_publish_nothing(settings: Settings, case: str) -> None:
    sample = load_sample("issues__opened_aiworker")
    headers = sample.signed_headers(settings.gitea_secret.get_secret_value())
    body = sample.payload_bytes
    if case == "wrong secret":
        headers = sample.signed_headers("not-the-secret")
    elif case == "missing":
        headers = dict(sample.headers)
    elif case == "empty digests":
        headers = sample.signed_headers("")
    elif case == "malformed":
        headers = {**sample.headers, "X-Gitea-Signature": "xyz"}
    else:
        body = body[:-1] + b" }"  # re-serialized: same JSON, other bytes
    async with web_client(settings) as client:
        response = await client.post("/webhooks/gitea", data=body, headers=headers)
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        problem = await response.json()
        assert problem["status"] == 401 and len(problem["detail"]) > 30
    assert await read_raw(settings.kafka_bootstrap, settings.topic("gitea.webhooks"), timeout=0.5) == []


async def test_project_hooks_take_their_own_secret_with_rotation_and_only_on_their_own_url(settings: Settings, pool: Any) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    by_id = other_repo(load_sample("push__main"), unique_repo_id())
    by_name = other_repo(load_sample("pull_request__opened"), unique_repo_id())
    expired = other_repo(load_sample("status__success"), unique_repo_id())
    first = await insert_project(pool, repo_id=by_id.payload["repository"]["id"], owner="org", name="x", secret="new-1",
                                 previous="old-1", rotated_at=now - timedelta(hours=1))  # fmt: skip
    # matched by owner/name: the row has no repository id
    second = await insert_project(pool, repo_id=None, owner="org", name=by_name.payload["repository"]["name"],
                                  secret="new-2", previous="old-2", rotated_at=now - timedelta(minutes=5))  # fmt: skip
    third = await insert_project(pool, repo_id=expired.payload["repository"]["id"], owner="org", name="y", secret="new-3",
                                 previous="old-3", rotated_at=now - timedelta(days=3))  # fmt: skip
    cases = [
        (first, by_id, "new-1", 202), (first, by_id, "old-1", 202), (first, by_id, settings.gitea_secret.get_secret_value(), 401),
        (second, by_name, "new-2", 202), (second, by_name, "old-2", 202), (second, by_name, "wrong", 401),
        (third, expired, "new-3", 202), (third, expired, "old-3", 401),
        # a project's secret is valid on its own URL only: not on the shared hook, not on another project's
        ("", by_id, "new-1", 401), (second, by_id, "new-1", 401), (first, by_name, "new-2", 401),
        # the shared hook takes AIWORKER_GITEA_SECRET and finds the project by the repository
        ("", by_id, settings.gitea_secret.get_secret_value(), 202),
    ]  # fmt: skip
    accepted: dict[str, str | None] = {}
    async with web_client(settings) as client:
        for project, sample, secret, status in cases:
            url = f"/webhooks/gitea/{project}" if project else "/webhooks/gitea"
            delivery = str(uuid.uuid4())
            headers = {**sample.signed_headers(secret), "X-Gitea-Delivery": delivery}
            response = await client.post(url, data=sample.payload_bytes, headers=headers)
            assert response.status == status, (project, sample.name, secret, await response.text())
            if status == 202:
                accepted[delivery] = (await response.json())["project_id"]
        response = await client.post(f"/webhooks/gitea/{first}", data=by_id.payload_bytes, headers=by_id.headers)
        assert response.status == 401 and "unsigned" in (await response.json())["detail"]
    records = await read_raw(settings.kafka_bootstrap, settings.topic("gitea.webhooks"), expect=len(accepted))
    envelopes = {env.delivery_id: env for env in (GiteaEnvelope.decode(r.value) for r in records)}
    assert {d: e.project_id for d, e in envelopes.items()} == accepted
    assert accepted[next(iter(accepted))] == first and first in accepted.values() and third in accepted.values()


async def test_no_secret_anywhere_refuses_everything_and_says_why(settings: Settings) -> None:
    sample = load_sample("push__main")
    bare = settings.model_copy(update={"gitea_secret": SecretStr("")})
    async with web_client(bare) as client:
        for headers in (sample.headers, sample.signed_headers("anything")):
            response = await client.post("/webhooks/gitea", data=sample.payload_bytes, headers=headers)
            assert response.status == 401
            assert "AIWORKER_GITEA_SECRET" in (await response.json())["detail"]
    insecure = bare.model_copy(update={"gitea_insecure": True})
    async with web_client(insecure) as client:
        response = await client.post("/webhooks/gitea", data=sample.payload_bytes, headers=sample.headers)
        assert response.status == 202, await response.text()
    assert len(await read_raw(settings.kafka_bootstrap, settings.topic("gitea.webhooks"), expect=1)) == 1


async def test_refusals_have_the_right_status_and_publish_nothing(settings: Settings) -> None:
    sample = load_sample("push__main")
    secret = settings.gitea_secret.get_secret_value()
    signed = sample.signed_headers(secret)
    limit = settings.max_body_bytes

    async def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    form = {**signed, "Content-Type": "application/x-www-form-urlencoded"}
    gitea = "/webhooks/gitea"
    async with web_client(settings) as client:
        cases: list[tuple[int, Any]] = [
            (415, client.post("/webhooks/gitea", data=sample.payload_bytes, headers={**signed, "Content-Type": "text/plain"})),
            (400, client.post(gitea, data=b"{not json", headers={**signed, **sign(b"{not json", secret)})),
            (400, client.post(gitea, data=b"payload=%7Bbad", headers={**form, **sign(b"{bad", secret)})),
            (401, client.post(gitea, data=b"{not json", headers=signed)),  # the signature is checked before the JSON
            (400, client.post(gitea, data=b"other=1", headers=form)),
            (400, client.post(gitea, data=b"[1,2]", headers={**sample.headers, **sign(b"[1,2]", secret)})),
            (400, client.post("/webhooks/gitea", data=sample.payload_bytes,
                              headers={k: v for k, v in signed.items() if "Event" not in k})),
            (413, client.post("/webhooks/gitea", data=b"x" * (limit + 1), headers=signed)),
            (413, client.post("/webhooks/gitea", data=chunks(), headers=signed)),  # chunked, no Content-Length
            (405, client.get("/webhooks/gitea", params={"payload": sample.payload_bytes.decode()}, headers=signed)),
            (404, client.post("/nowhere", data=b"{}")),
        ]  # fmt: skip
        for status, request in cases:
            response = await request
            assert response.status == status, (status, await response.text())
            assert response.content_type == "application/problem+json"
            assert (await response.json())["detail"]
    assert await read_raw(settings.kafka_bootstrap, settings.topic("gitea.webhooks"), timeout=0.5) == []


async def test_an_undecodable_body_is_400_and_the_next_request_works(settings: Settings) -> None:
    sample = load_sample("create__branch")
    headers = sample.signed_headers(settings.gitea_secret.get_secret_value())
    async with web_client(settings) as client:
        for encoding in ("gzip", "deflate"):
            response = await client.post(
                "/webhooks/gitea", data=b"\x1f\x8b" + b"x" * 2000, headers={**headers, "Content-Encoding": encoding}
            )
            assert response.status == 400
            assert "Content-Encoding" in (await response.json())["detail"]
        response = await client.post("/webhooks/gitea", data=sample.payload_bytes, headers=headers)
        assert response.status == 202
