"""PUT /projects/{project_id}/webhook-secret: set a project's Gitea webhook secret (the service token only).

Secrets are not events: an event stays on its topic (and a refused one in the dlq) for as long as the topic
keeps it, where every consumer can read it. So a project's secret is written straight into its row, the only
writer of the secret columns, and `project.upserted` refuses secret fields (app/control_events.py). With
`keep_previous` (the default) the secret it replaces stays valid for GITEA_SECRET_ROTATION_SECONDS, so the
webhook in Gitea can be changed meanwhile. The answer carries no secret.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from asyncmy.errors import MySQLError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from app.jsonio import JsonError, loads
from db.projects import set_webhook_secret
from webhooks.auth import Unauthenticated, caller_of
from webhooks.body import BodyTimeoutError, ExpectationError, refusal
from webhooks.gitea_api import PROJECT_ID
from webhooks.problems import problem
from webhooks.state import BODIES, DB_POOL, SECRETS, SETTINGS

MAX_SECRET_BODY = 4096


class SecretUpdate(BaseModel):
    """The body: the new secret (16 to 255 characters, as Gitea stores it) and whether the old one stays valid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: Annotated[SecretStr, Field(min_length=16, max_length=255)]
    keep_previous: bool = True


async def put_webhook_secret(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        caller = caller_of(request.headers.get("Authorization"), settings)
    except Unauthenticated as exc:
        return refusal(request, problem(401, str(exc)))
    if not caller.service:
        return refusal(request, problem(403, "only the service token may set a project's webhook secret"))
    project_id = request.match_info["project_id"]
    if not PROJECT_ID.match(project_id):
        return refusal(request, problem(404, "the URL names no project id (letters, digits, '.', '_', '-'; at most 36)"))
    if request.content_type != "application/json":
        return refusal(request, problem(415, 'send the secret as application/json: {"secret": "…"}'))
    if request.content_length is not None and request.content_length > MAX_SECRET_BODY:
        return refusal(request, problem(413, f"the body is over {MAX_SECRET_BODY} bytes; it holds one secret"))
    try:
        body = await request.app[BODIES].read(request)
    except BodyTimeoutError as exc:
        return problem(503, f"{exc}; nothing was changed, send it again", headers={"Retry-After": "1"})
    except ExpectationError as exc:
        return refusal(request, problem(417, str(exc)))
    try:
        update = SecretUpdate.model_validate(loads(body))
    except JsonError as exc:
        return problem(400, f"the body is not JSON: {exc}")
    except ValidationError as exc:
        errors = [
            {"index": 0, "field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors(include_url=False)
        ]
        return problem(422, 'the body must be {"secret": <16 to 255 characters>, "keep_previous": <bool>}', errors=errors)
    try:
        found = await set_webhook_secret(
            request.app[DB_POOL], project_id, update.secret.get_secret_value(), keep_previous=update.keep_previous
        )
    except (MySQLError, OSError, TimeoutError):
        return problem(503, "the database does not answer, so nothing was changed: send the secret again once it is back",
                       headers={"Retry-After": "5"})  # fmt: skip
    if not found:
        return problem(404, f"no project {project_id}: send its project.upserted first, then its secret")
    request.app[SECRETS].forget(project_id)  # this process at once; the others re-read it on the first signature failure
    return web.Response(status=204)
