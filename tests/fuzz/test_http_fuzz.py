"""Fuzzing both HTTP endpoints of a real web process: never a 5xx, and nothing refused is ever published.

Every request is checked as it is answered (status below 500, errors as problem+json); at the end the
input topics must hold exactly the events (or deliveries) that were answered 2xx, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app import topics
from app.settings import Settings
from tests.fuzz.http_client import Reply, header_safe, post
from tests.fuzz.strategies import FUZZ, bad_utf8, broken_event, content_types, encode, hostile_event, json_values, valid_event
from tests.gitea_samples import load_samples, sign
from tests.harness import WebProcess, read_records
from webhooks.auth import agent_token

AGENT = "fuzz-agent"


def auth_headers(settings: Settings) -> st.SearchStrategy[list[tuple[str, str]]]:
    service = ("Authorization", f"Bearer {settings.service_token.get_secret_value()}")
    own = ("Authorization", f"Bearer {agent_token(settings.agent_token_key.get_secret_value(), AGENT)}")
    other = ("Authorization", f"Bearer {agent_token(settings.agent_token_key.get_secret_value(), 'someone-else')}")
    junk = st.text(max_size=40).map(lambda t: ("Authorization", header_safe(f"Bearer {t}")))
    return st.one_of(
        st.just([service]), st.just([service]), st.just([service]), st.just([own]), st.just([own]),
        st.just([other]), st.just([]), junk.map(lambda h: [h]),
        st.just([("authorization", f"bearer {settings.service_token.get_secret_value()}")]), st.just([service, own]),
        st.just([("Authorization", f"Basic {settings.service_token.get_secret_value()}")]),
    )  # fmt: skip


@st.composite
def events_request(draw: st.DrawFn, settings: Settings) -> tuple[bytes, list[tuple[str, str]], list[dict[str, Any]]]:
    """(body, headers, the events the body holds when it is JSON of events)."""
    auth = draw(auth_headers(settings))
    kind = draw(st.sampled_from(["bytes", "json", "events", "valid", "huge", "utf8", "hostile"]))
    items: list[dict[str, Any]] = []
    ndjson = draw(st.booleans())
    if kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "utf8":
        body = draw(bad_utf8)
    elif kind == "hostile":  # one event with a hostile value (strategies.HOSTILE_KINDS); accepted only as decoded
        value = draw(hostile_event(AGENT))
        body, items = value.raw, [value.doc] if value.doc is not None else []
    elif kind == "huge":
        event = draw(valid_event(AGENT)) | {"type": "log", "message": "x" * draw(st.integers(60_000, 70_000))}
        event.pop("level", None)
        items, body = [event], encode([event], ndjson)
    else:
        makers = valid_event(AGENT) if kind == "valid" else st.one_of(valid_event(AGENT), broken_event(AGENT))
        items = draw(st.lists(makers, min_size=1, max_size=6))
        body = encode(items, ndjson)
    default = "application/x-ndjson" if ndjson and items else "application/json"
    content_type = draw(st.one_of(st.just(default), content_types))
    headers = [*auth, ("Content-Type", content_type)] if content_type else list(auth)
    if draw(st.integers(0, 9)) == 0:
        headers.append(("Transfer-Encoding", "chunked"))
    return body, headers, items


def check_reply(reply: Reply) -> None:
    assert reply.status < 500, (reply.status, reply.body[:500])
    if reply.status >= 400:
        assert reply.content_type.startswith("application/problem+json"), (reply.status, reply.content_type)
        assert json.loads(reply.body).get("detail") or json.loads(reply.body).get("title")


def ids_on_topic(records: list[Any]) -> list[str]:
    ids: list[str] = []
    for record in records:
        value = json.loads(record.value)
        ids.extend([line["id"] for line in value["logs"]] if value.get("type") == "log.batch" else [value["id"]])
    return ids


def test_events_endpoint_never_5xx_and_publishes_only_what_it_accepts(settings: Settings, fuzz_web: WebProcess) -> None:
    accepted: list[str] = []
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(request=events_request(settings))
    def one(request: tuple[bytes, list[tuple[str, str]], list[dict[str, Any]]]) -> None:
        body, headers, items = request
        reply = post(fuzz_web.url, "/events", body, headers)
        statuses[reply.status] += 1
        check_reply(reply)
        if 200 <= reply.status < 300:
            assert reply.json()["ids"] == [item["id"] for item in items]
            accepted.extend(reply.json()["ids"])

    one()
    print(f"/events statuses: {dict(sorted(statuses.items()))}")
    assert fuzz_web.process is not None and fuzz_web.process.poll() is None, "the web process died"
    published: list[str] = []
    for name in (topics.AGENT_EVENTS, topics.CONTROL_EVENTS):
        published += ids_on_topic(asyncio.run(read_records(settings.kafka_bootstrap, settings.topic(name), timeout=5.0)))
    assert sorted(published) == sorted(accepted), "the topics hold events that were refused, or miss accepted ones"


@st.composite
def gitea_request(draw: st.DrawFn, settings: Settings, samples: list[Any]) -> tuple[bytes, list[tuple[str, str]], str | None]:
    """(body, headers, the delivery id when the request is a correctly signed delivery)."""
    sample = draw(st.sampled_from(samples))
    delivery = str(uuid.uuid4())
    kind = draw(st.sampled_from(["signed", "unsigned", "wrong-signature", "bytes", "json", "utf8", "tampered"]))
    payload = sample.payload_bytes
    headers = {**sample.headers, "X-Gitea-Delivery": delivery, "Content-Type": "application/json"}
    if kind == "bytes":
        payload = draw(st.binary(max_size=300))
    elif kind == "json":
        payload = json.dumps(draw(json_values)).encode()
    elif kind == "utf8":
        payload = draw(bad_utf8)
    signature = sign(payload, settings.gitea_secret.get_secret_value())
    if kind in ("signed", "bytes", "json", "utf8"):
        headers |= signature
    elif kind == "wrong-signature":
        headers |= sign(payload, "not-the-secret")
    elif kind == "tampered":
        headers |= signature
        payload = payload + b" "
    if draw(st.integers(0, 4)) == 0:
        headers["Content-Type"] = draw(content_types)
    if draw(st.integers(0, 4)) == 0:
        headers[draw(st.sampled_from(["X-Gitea-Event-Type", "X-Gitea-Event"]))] = header_safe(draw(st.text(max_size=20)))
    header_list = [(name, header_safe(value)) for name, value in headers.items()]
    return payload, header_list, delivery


def test_gitea_endpoint_never_5xx_and_publishes_only_what_it_accepts(settings: Settings, fuzz_web: WebProcess) -> None:
    samples = load_samples()
    accepted: list[str] = []
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(request=gitea_request(settings, samples))
    def one(request: tuple[bytes, list[tuple[str, str]], str | None]) -> None:
        body, headers, delivery = request
        reply = post(fuzz_web.url, "/webhooks/gitea", body, headers)
        statuses[reply.status] += 1
        check_reply(reply)
        if 200 <= reply.status < 300:
            assert reply.json()["delivery_id"] == delivery
            accepted.append(str(delivery))

    one()
    print(f"/webhooks/gitea statuses: {dict(sorted(statuses.items()))}")
    assert fuzz_web.process is not None and fuzz_web.process.poll() is None, "the web process died"
    records = asyncio.run(read_records(settings.kafka_bootstrap, settings.topic(topics.GITEA_WEBHOOKS), timeout=5.0))
    published = [json.loads(r.value)["delivery_id"] for r in records]
    assert sorted(published) == sorted(accepted), "the topic holds deliveries that were refused, or misses accepted ones"
