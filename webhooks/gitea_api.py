"""POST /webhooks/gitea: a Gitea delivery, signature checked over the payload bytes as received, made durable
as one envelope on gitea.webhooks keyed by the repository full name (see README, HTTP)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from app import topics
from app.envelope import encode_envelope
from webhooks.durable import UnavailableError
from webhooks.gitea_signature import (
    GiteaPayloadError,
    SignatureStatus,
    UnsupportedContentTypeError,
    delivery_id,
    event_type,
    extract_payload,
    header,
    parse_payload,
    verify,
)
from webhooks.problems import problem
from webhooks.publisher import OutRecord
from webhooks.secrets import Repo, SecretsUnavailableError
from webhooks.state import METRICS, SECRETS, SETTINGS, SINK

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
DELIVERY_NAMESPACE = uuid.UUID("0b8f5a52-5d1e-4c55-9a43-6f4c1d2e7a10")
MAX_DELIVERY_ID = 191  # app/envelope.py, and the fold's event id columns
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}  # as web.json_response answers


def repository_of(payload: dict[str, Any]) -> Repo:
    """The repository a payload names; every field may be missing (system, user or organization hooks)."""
    repository = payload.get("repository")
    if not isinstance(repository, dict):
        return Repo(None, "", "", "")
    repo_id = repository.get("id")
    owner = repository.get("owner")
    login = owner.get("login") or owner.get("username") if isinstance(owner, dict) else None
    full_name = repository.get("full_name")
    name = repository.get("name")
    return Repo(
        repo_id if isinstance(repo_id, int) and not isinstance(repo_id, bool) else None,
        login if isinstance(login, str) else "",
        name if isinstance(name, str) else "",
        full_name[:255] if isinstance(full_name, str) else "",
    )


async def get_gitea(request: web.Request) -> web.Response:
    return problem(
        405,
        "this endpoint takes Gitea deliveries by POST; set the webhook's HTTP method to POST in Gitea (a GET delivery "
        "carries the payload in the URL, which is cut at 8 KiB and lands in access logs)",
        headers={"Allow": "POST"},
    )


async def post_gitea(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await request.read()
    try:
        payload = extract_payload(request.headers.get("Content-Type", ""), body)
    except UnsupportedContentTypeError as exc:
        return problem(415, str(exc))
    except GiteaPayloadError as exc:
        return problem(400, str(exc))
    kind = event_type(request.headers)
    if not kind:
        return problem(400, "no X-Gitea-Event-Type (or X-Gitea-Event) header names the event; send it as Gitea does")
    if not EVENT_TYPE.match(kind):
        return problem(400, "the X-Gitea-Event-Type header is not an event type name (lowercase letters, digits, '_')")
    try:
        text = payload.decode("utf-8")
        data = parse_payload(payload)
    except UnicodeDecodeError as exc:
        return problem(400, f"the payload is not UTF-8 (byte {exc.start}); Gitea sends UTF-8 JSON")
    except GiteaPayloadError as exc:
        return problem(400, str(exc))
    repo = repository_of(data)
    secrets = request.app[SECRETS]
    applying = secrets.resolve_cached(repo)
    if applying is None:
        try:
            applying = await secrets.resolve(repo)
        except SecretsUnavailableError as exc:
            return problem(503, str(exc), headers={"Retry-After": "5"})
    if applying.secrets:
        check = verify(payload, request.headers, applying.secrets)
        if not check.ok:
            where = f" (secret of {applying.source})"
            if check.status is SignatureStatus.MISSING:
                return problem(401, f"unsigned delivery refused: {repo.full_name or 'this repository'} has a webhook "
                               f"secret{where}; set the same secret on the webhook in Gitea")  # fmt: skip
            return problem(401, check.message + where)
    elif not settings.gitea_insecure:
        return problem(
            401,
            "no webhook secret is configured for "
            f"{repo.full_name or 'deliveries without a repository'}, so no delivery can be verified and all are "
            "refused: set the project's gitea_webhook_secret or AIWORKER_GITEA_SECRET (and the same secret on the "
            "webhook in Gitea), or AIWORKER_GITEA_INSECURE=true to accept unsigned deliveries (development only)",
        )
    delivery = delivery_id(request.headers) or str(uuid.uuid5(DELIVERY_NAMESPACE, f"{kind}\n{text}"))
    if len(delivery) > MAX_DELIVERY_ID:  # not cut: two long ids with one prefix would become one delivery
        return problem(400, f"the X-Gitea-Delivery header has {len(delivery)} characters; at most {MAX_DELIVERY_ID} are "
                       "accepted (Gitea sends a UUID)")  # fmt: skip
    try:
        value = encode_envelope(
            delivery_id=delivery,
            event_type=kind,
            event_group=(header(request.headers, "X-Gitea-Event") or "").strip().lower()[:100],
            received_at=datetime.now(UTC),
            repository=repo.full_name,
            payload=text,
        )
    except ValidationError as exc:
        return problem(400, f"the delivery's headers do not make a valid envelope: {exc.errors()[0]['msg']}")
    record = OutRecord(settings.topic(topics.GITEA_WEBHOOKS), repo.full_name.encode(), value)
    try:
        via = await request.app[SINK].accept([record])
    except UnavailableError as exc:
        return problem(503, f"{exc}; the delivery was not accepted, redeliver it from Gitea later",
                       headers={"Retry-After": str(exc.retry_after)})  # fmt: skip
    request.app[METRICS].gitea_accepted(kind)
    answer = orjson.dumps({"delivery_id": delivery, "event_type": kind, "durable": via})
    return web.Response(body=answer, status=202, headers=JSON_HEADERS)
