"""Property tests on the real app, broker and database: random bodies and headers never get a 5xx, and only
the requests answered 202 reach the topics (one record each for Gitea; as many as the answer says for /events)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.envelope import GiteaEnvelope
from app.settings import Settings
from app.topics import ensure_topics
from tests.gitea_samples import form_body, load_samples, sign
from tests.webhooks.ingest_helpers import read_raw, web_client
from webhooks.auth import agent_token

SAMPLES = load_samples()
PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80) | st.sampled_from(["gzip", "deflate", "br"])
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "application/x-ndjson", "text/plain", "multipart/form-data",
     "application/json; charset=utf-8", "", "application/vnd.gitea+json", "application/x-www-form-urlencoded; charset=x"]
)  # fmt: skip
HEADER_NAMES = st.sampled_from(
    ["X-Gitea-Event", "X-Gitea-Event-Type", "X-Gitea-Signature", "X-Hub-Signature-256", "X-Gitea-Delivery",
     "X-Gogs-Signature", "Authorization", "Content-Type", "Accept", "X-Anything", "Content-Encoding"]
)  # fmt: skip
RUNS = hypothesis_settings(
    max_examples=8, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip


@st.composite
def gitea_request(draw: st.DrawFn, secret: str) -> tuple[bytes, dict[str, str]]:
    sample = draw(st.sampled_from(SAMPLES))
    payload = sample.payload_bytes
    if draw(st.booleans()):  # a random payload instead (often not JSON, maybe signed correctly)
        payload = draw(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
    use = draw(st.sampled_from([secret, secret, "wrong", ""]))
    headers = {**sample.headers, **sign(payload, use), "X-Gitea-Delivery": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))}
    form = draw(st.booleans())
    body = form_body(payload) if form else payload
    if form:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    for name in draw(st.lists(st.sampled_from(sorted(headers)), max_size=3)):
        headers.pop(name, None)
    for name, value in draw(st.dictionaries(HEADER_NAMES, PRINTABLE | CONTENT_TYPES, max_size=3)).items():
        headers[name] = value
    if draw(st.integers(0, 4)) == 0 and body:  # a flipped byte
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ 0x20]) + body[at + 1 :]
    return body, headers


@st.composite
def events_request(draw: st.DrawFn, service_token: str, key: str) -> tuple[bytes, dict[str, str]]:
    event = st.fixed_dictionaries(
        {"id": st.text(max_size=5), "type": st.sampled_from(["log", "agent.heartbeat", "task.created", "nope"]),
         "time": st.sampled_from(["2026-11-22T10:00:00Z", "yesterday"]), "agent_id": st.sampled_from(["a1", "a2", ""])},
        optional={"message": st.text(max_size=10), "status": st.sampled_from(["idle", "busy", 3]), "title": st.text(max_size=5),
                  "task_id": st.text(max_size=5), "project_id": st.text(max_size=5)},
    )  # fmt: skip
    items = draw(st.lists(event, max_size=5))
    shape = draw(st.sampled_from(["array", "ndjson", "object", "random"]))
    if shape == "random" or not items:
        body = draw(st.binary(max_size=200))
    elif shape == "object":
        body = json.dumps(items[0]).encode()
    elif shape == "ndjson":
        body = "\n".join(json.dumps(item) for item in items).encode()
    else:
        body = json.dumps(items).encode()
    token = draw(st.sampled_from([service_token, agent_token(key, "a1"), "nonsense", ""]))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": draw(CONTENT_TYPES)}
    headers.update(draw(st.dictionaries(HEADER_NAMES, PRINTABLE, max_size=2)))
    return body, headers


async def fresh(settings: Settings) -> Settings:
    made = settings.model_copy(update={"topic_prefix": f"h{uuid.uuid4().hex[:8]}."})
    await ensure_topics(made, made.kafka_bootstrap)
    return made


@RUNS
@given(data=st.data())
async def test_random_gitea_deliveries_never_5xx_and_only_accepted_ones_are_published(settings: Settings, data: Any) -> None:
    settings = await fresh(settings)
    requests = data.draw(st.lists(gitea_request(settings.gitea_secret.get_secret_value()), min_size=1, max_size=25))
    accepted: list[str] = []
    async with web_client(settings) as client:
        for body, headers in requests:
            response = await client.post("/webhooks/gitea", data=body, headers=headers)
            assert response.status < 500, (response.status, await response.text())
            if response.status == 202:
                accepted.append((await response.json())["delivery_id"])
            else:
                assert response.content_type == "application/problem+json" or response.status == 400  # see README
    records = await read_raw(settings.kafka_bootstrap, settings.topic("gitea.webhooks"), timeout=1.0, expect=len(accepted) + 1)
    assert sorted(GiteaEnvelope.decode(r.value).delivery_id for r in records) == sorted(accepted)


@RUNS
@given(data=st.data())
async def test_random_event_posts_never_5xx_and_only_accepted_ones_are_published(settings: Settings, data: Any) -> None:
    settings = await fresh(settings)
    requests = data.draw(
        st.lists(
            events_request(settings.service_token.get_secret_value(), settings.agent_token_key.get_secret_value()),
            min_size=1,
            max_size=25,
        )
    )
    published = 0
    async with web_client(settings) as client:
        for body, headers in requests:
            response = await client.post("/events", data=body, headers=headers)
            assert response.status < 500, (response.status, await response.text())
            if response.status == 202:
                published += (await response.json())["records"]
            else:
                assert response.content_type == "application/problem+json" or response.status == 400  # see README
    records = []
    for topic in ("agent.events", "control.events"):
        records += await read_raw(settings.kafka_bootstrap, settings.topic(topic), timeout=0.7, expect=published + 1)
    assert len(records) == published
