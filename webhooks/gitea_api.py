"""POST /webhooks/gitea/{project_id} and POST /webhooks/gitea: a Gitea delivery, made durable as one envelope on
gitea.webhooks once its signature held (README, HTTP).

The order is the point (CONTRACT.md, HTTP): event type and secret from the headers and the URL; the body read
through the bounded reader; the HMAC checked over the payload bytes as received; only then is the payload
parsed and its repository read (`app.gitea_repository.repository_of`): on a project's hook it must be the
project's own, on the shared hook it names the project. The envelope carries that verified project id, an
event id derived from the event type and the payload digest, and the delivery header as metadata.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from app import topics
from app.envelope import delivery_event_id, encode_envelope, id_event_type
from app.gitea_repository import RepoRef, RepositoryError, repository_of
from db.projects import ProjectHook
from webhooks.body import BodyTimeoutError, ExpectationError, refusal
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
from webhooks.secrets import AmbiguousRepositoryError, Applying, ProjectsUnavailableError
from webhooks.state import BODIES, METRICS, SECRETS, SETTINGS, SINK

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$")
DELIVERY_NAMESPACE = uuid.UUID("0b8f5a52-5d1e-4c55-9a43-6f4c1d2e7a10")
MAX_DELIVERY_ID = 191  # app/envelope.py, and the fold's event id columns
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}  # as web.json_response answers
MEDIA_TYPES = ("application/json", "application/x-www-form-urlencoded")


async def get_gitea(request: web.Request) -> web.Response:
    return problem(
        405,
        "this endpoint takes Gitea deliveries by POST; set the webhook's HTTP method to POST in Gitea (a GET delivery "
        "carries the payload in the URL, which is cut at 8 KiB and lands in access logs)",
        headers={"Allow": "POST"},
    )


def _is_text(value: str) -> bool:
    """Whether a header value is UTF-8 text (aiohttp hands other bytes over as surrogates, which nothing can encode)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _header_problem(request: web.Request) -> web.Response | None:
    """What the headers alone refuse: no or a bad event type, a content type that is no delivery."""
    kind = event_type(request.headers)
    if not kind:
        return problem(400, "no X-Gitea-Event-Type (or X-Gitea-Event) header names the event; send it as Gitea does")
    if not EVENT_TYPE.match(kind):
        return problem(400, "the X-Gitea-Event-Type header is not an event type name (lowercase letters, digits, '_')")
    for name in ("X-Gitea-Delivery", "X-Gogs-Delivery", "X-GitHub-Delivery", "X-Gitea-Event"):  # into the envelope
        if not _is_text(header(request.headers, name) or ""):
            return problem(400, f"the {name} header is not UTF-8 text; send it as Gitea does (a UUID, an event name)")
    media_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media_type not in MEDIA_TYPES and not (media_type.startswith("application/") and media_type.endswith("+json")):
        return problem(415, f"content type {media_type or 'none'!r} is not supported; use application/json or "
                            "application/x-www-form-urlencoded")  # fmt: skip
    return None


def _unverifiable(request: web.Request, where: str) -> web.Response:
    return problem(
        401,
        f"no webhook secret is configured for {where}, so no delivery can be verified and all are refused: set the "
        "project's gitea_webhook_secret or AIWORKER_GITEA_SECRET (and the same secret on the webhook in Gitea), or "
        "AIWORKER_GITEA_INSECURE=true to accept unsigned deliveries (development only)",
    )


def _signature_problem(request: web.Request, payload: bytes, applying: Applying, where: str) -> web.Response | None:
    """None when the delivery is signed with one of `applying`'s secrets (or unsigned deliveries are allowed)."""
    if not applying.secrets:
        return None if request.app[SETTINGS].gitea_insecure else _unverifiable(request, where)
    check = verify(payload, request.headers, applying.secrets)
    if check.ok:
        return None
    if check.status is SignatureStatus.MISSING:
        return problem(401, f"unsigned delivery refused: {where} has a webhook secret ({applying.source}); set the "
                            "same secret on the webhook in Gitea")  # fmt: skip
    return problem(401, f"{check.message} ({applying.source})")


async def _payload(request: web.Request) -> tuple[bytes, str] | web.Response:
    """The signed payload bytes and their text, read within the bounded reader, or the answer refusing them."""
    bodies = request.app[BODIES]
    try:
        async with bodies.turn(request.content_length):
            body = await bodies.read(request)
    except BodyTimeoutError as exc:
        return refusal(request, problem(503, f"{exc}; the delivery was not accepted, redeliver it from Gitea",
                                        headers={"Retry-After": "1"}))  # fmt: skip
    except ExpectationError as exc:
        return refusal(request, problem(417, str(exc)))
    try:
        payload = extract_payload(request.headers.get("Content-Type", ""), body)
        return payload, payload.decode("utf-8")
    except UnsupportedContentTypeError as exc:
        return problem(415, str(exc))
    except GiteaPayloadError as exc:
        return problem(400, str(exc))
    except UnicodeDecodeError as exc:
        return problem(400, f"the payload is not UTF-8 (byte {exc.start}); Gitea sends UTF-8 JSON")


def _repository(payload: bytes) -> tuple[RepoRef | None, dict[str, Any]] | web.Response:
    """The signed payload's repository (None: it names none) and the payload, or the answer refusing it."""
    try:
        parsed = parse_payload(payload)
        return repository_of(parsed), parsed
    except (GiteaPayloadError, RepositoryError) as exc:
        return problem(400, str(exc))


def foreign_repository(hook: ProjectHook, repo: RepoRef) -> str | None:
    """Why `repo` is not the project's own (by id where both name one, else by owner/name), or None when it is
    (or the project names no repository)."""
    names_one = hook.owner is not None and hook.repo_name is not None
    ours = f"{hook.owner}/{hook.repo_name}" if names_one else ""
    if hook.repo_id is None and not names_one:
        return None
    if hook.repo_id is not None and repo.id is not None:
        if repo.id == hook.repo_id:
            return None
    elif names_one and repo.key and repo.key == ours.lower():
        return None
    mine = " ".join(part for part in (ours, f"(id {hook.repo_id})" if hook.repo_id is not None else "") if part)
    return (
        f"the delivery names repository {repo.describe()}, but project {hook.project_id}'s repository is {mine}: a "
        "project's hook takes only its own repository's deliveries"
    )


async def post_gitea_project(request: web.Request) -> web.Response:
    """A project's own hook: the secret from the project named in the URL, checked before the body is parsed."""
    if (refused := _header_problem(request)) is not None:
        return refusal(request, refused)
    project_id = request.match_info["project_id"]
    directory = request.app[SECRETS]
    where = f"project {project_id}"
    if not PROJECT_ID.match(project_id):
        return refusal(request, problem(404, "the URL names no project id (letters, digits, '.', '_', '-'; at most 36)"))
    cached = directory.cached_hook(project_id)
    try:
        hook = cached[0] if cached is not None else await directory.hook(project_id)
        if hook is None and cached is not None:  # a cached "no such project" may be older than the project
            again = await directory.reread_hook(project_id)
            hook = again if isinstance(again, ProjectHook) else None
    except ProjectsUnavailableError as exc:
        return refusal(request, problem(503, str(exc), headers={"Retry-After": "5"}))
    if hook is None:
        return refusal(request, _no_project(project_id))
    applying = directory.secrets_of(hook)
    if not applying.secrets and not request.app[SETTINGS].gitea_insecure:
        return refusal(request, _unverifiable(request, where))
    read = await _payload(request)
    if isinstance(read, web.Response):
        return read
    payload, text = read
    refused = _signature_problem(request, payload, applying, where)
    if refused is not None and cached is not None:
        # The cached row may be older than a secret rotated just now: read it once more (rate-limited).
        try:
            again = await directory.reread_hook(project_id)
        except ProjectsUnavailableError:
            again = False
        if again is None:
            return _no_project(project_id)
        if isinstance(again, ProjectHook):
            hook = again
            refused = _signature_problem(request, payload, directory.secrets_of(hook), where)
    if refused is not None:
        return refused
    read_repo = _repository(payload)
    if isinstance(read_repo, web.Response):
        return read_repo
    repo, parsed = read_repo
    if repo is not None and (why := foreign_repository(hook, repo)) is not None:
        return problem(403, why + "; nothing was accepted", project_id=hook.project_id, repository=repo.describe())
    if repo is not None and repo.id is not None and hook.repo_id is None:
        # The row names no repository id, so the payload's id is unchecked: it must not be another project's (an
        # issue's task id is made from it, and would take that project's issue).
        try:
            others = [p for p in await directory.projects_naming(repo.id) if p != hook.project_id]
        except ProjectsUnavailableError as exc:
            return problem(503, str(exc), headers={"Retry-After": "5"})
        if others:
            return problem(403, f"the delivery names repository {repo.describe()}, whose id is another project's "
                                f"repository's; project {hook.project_id}'s row names no repository id, so set its "
                                "gitea_repo_id; nothing was accepted", project_id=hook.project_id,
                                repository=repo.describe())  # fmt: skip
    return await _accept(request, payload, text, repo, hook.project_id, parsed)


def _no_project(project_id: str) -> web.Response:
    # The same status as a bad signature, so that the URL does not tell who may probe which projects exist.
    return problem(401, f"no project {project_id} takes deliveries here (no such project); check the webhook's URL")


async def post_gitea_shared(request: web.Request) -> web.Response:
    """The shared (organisation- or system-wide) hook: AIWORKER_GITEA_SECRET only; the project by repository."""
    if (refused := _header_problem(request)) is not None:
        return refusal(request, refused)
    directory = request.app[SECRETS]
    applying = directory.shared_secrets()
    if not applying.secrets and not request.app[SETTINGS].gitea_insecure:
        return refusal(request, _unverifiable(request, "the shared hook /webhooks/gitea"))
    read = await _payload(request)
    if isinstance(read, web.Response):
        return read
    payload, text = read
    if (refused := _signature_problem(request, payload, applying, "the shared hook /webhooks/gitea")) is not None:
        return refused
    read_repo = _repository(payload)
    if isinstance(read_repo, web.Response):
        return read_repo
    repo, parsed = read_repo
    try:
        project_id = await directory.project_of(repo) if repo is not None else None
    except AmbiguousRepositoryError as exc:
        return problem(409, f"{exc}; nothing was accepted")
    except ProjectsUnavailableError as exc:
        return problem(503, str(exc), headers={"Retry-After": "5"})
    return await _accept(request, payload, text, repo, project_id, parsed)


async def _accept(
    request: web.Request, payload: bytes, text: str, repo: RepoRef | None, project_id: str | None, parsed: dict[str, Any]
) -> web.Response:
    settings = request.app[SETTINGS]
    kind = event_type(request.headers)
    delivery = delivery_id(request.headers) or str(uuid.uuid5(DELIVERY_NAMESPACE, f"{kind}\n{text}"))
    if len(delivery) > MAX_DELIVERY_ID:  # not cut: two long ids with one prefix would become one delivery
        return problem(400, f"the X-Gitea-Delivery header has {len(delivery)} characters; at most {MAX_DELIVERY_ID} are "
                       "accepted (Gitea sends a UUID)")  # fmt: skip
    repository = (repo.full_name or "") if repo is not None else ""
    event_id = delivery_event_id(project_id, id_event_type(kind, parsed), payload)
    try:
        value = encode_envelope(
            delivery_id=delivery,
            event_type=kind,
            event_group=(header(request.headers, "X-Gitea-Event") or "").strip().lower()[:100],
            received_at=datetime.now(UTC),
            repository=repository,
            payload=text,
            project_id=project_id,
            event_id=event_id,
        )
    except ValidationError as exc:
        return problem(400, f"the delivery's headers do not make a valid envelope: {exc.errors()[0]['msg']}")
    if len(value) > settings.max_event_bytes:
        return problem(413, f"the delivery makes a record of {len(value)} bytes on gitea.webhooks; the limit is "
                       f"{settings.max_event_bytes} (AIWORKER_MAX_EVENT_BYTES)")  # fmt: skip
    record = OutRecord(settings.topic(topics.GITEA_WEBHOOKS), repository.encode(), value)
    try:
        via = await request.app[SINK].accept([record])
    except UnavailableError as exc:
        return problem(503, f"{exc}; the delivery was not accepted, redeliver it from Gitea later",
                       headers={"Retry-After": str(exc.retry_after)})  # fmt: skip
    request.app[METRICS].gitea_accepted(kind)
    answer = orjson.dumps(
        {"delivery_id": delivery, "event_id": event_id, "event_type": kind, "project_id": project_id, "durable": via}
    )
    return web.Response(body=answer, status=202, headers=JSON_HEADERS)
