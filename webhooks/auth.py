"""Bearer tokens of POST /events, checked from the Authorization header alone, before any body byte is read.

An agent's token names its agent: `<agent_id>.<hex>`, the hex being HMAC-SHA256(AGENT_TOKEN_KEY, agent_id) in 64
lowercase digits (the agent id is what precedes the last dot, so it may hold dots itself). The service token is
SERVICE_TOKEN, compared whole. Both comparisons are constant-time. Tokens of the old format (the bare hex, without
the agent id) are refused with a 401 that says the new one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from app.settings import Settings
from webhooks import WebhooksError

BARE_HEX = re.compile(r"[0-9a-fA-F]{64}")
MAX_AGENT_ID = 36
"""An agent id's longest (app.event_base.EntityId): a longer one names no agent, and is not echoed back."""
TOKEN_FORMAT = "<agent_id>.<hex HMAC-SHA256(AGENT_TOKEN_KEY, agent_id)>"


class Unauthenticated(WebhooksError):
    """The Authorization header names no caller; the message is the 401's detail."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the service (every event type) or one agent (its own agent events only)."""

    service: bool
    agent_id: str | None = None

    @property
    def key(self) -> str:
        """The caller's rate-limit key: "service", or "agent:<id>"."""
        return "service" if self.service else f"agent:{self.agent_id}"


def agent_mac(key: str, agent_id: str) -> str:
    return hmac.new(key.encode(), agent_id.encode(), hashlib.sha256).hexdigest()


def agent_token(key: str, agent_id: str) -> str:
    """The bearer token of agent `agent_id` (what the aiworker backend gives the agent's pod)."""
    return f"{agent_id}.{agent_mac(key, agent_id)}"


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(header: str | None, *, service_token: str, agent_token_key: str) -> Caller:
    """The caller the Authorization header speaks for; Unauthenticated (why, for the 401) when none."""
    token = bearer(header)
    if token is None:
        raise Unauthenticated("send Authorization: Bearer <agent token or service token>")
    if not token.isascii():  # tokens are ASCII; other bytes arrive as surrogates that no comparison can encode
        raise Unauthenticated(f"the bearer token is neither the service token nor an agent token ({TOKEN_FORMAT})")
    if service_token and hmac.compare_digest(token.encode(), service_token.encode()):
        return Caller(service=True)
    agent_id, dot, mac = token.rpartition(".")
    if not dot and BARE_HEX.fullmatch(token):
        raise Unauthenticated(
            f"agent tokens without their agent id are no longer accepted; an agent token is {TOKEN_FORMAT} "
            "(ask the aiworker backend for the agent's new token)"
        )
    if not dot or not agent_id or len(agent_id) > MAX_AGENT_ID:
        raise Unauthenticated(f"the bearer token is neither the service token nor an agent token ({TOKEN_FORMAT})")
    if not agent_token_key or not hmac.compare_digest(mac.encode(), agent_mac(agent_token_key, agent_id).encode()):
        raise Unauthenticated(f"the bearer token is not a valid token of agent {agent_id!r} ({TOKEN_FORMAT})")
    return Caller(service=False, agent_id=agent_id)


def caller_of(header: str | None, settings: Settings) -> Caller:
    """`authenticate` with the settings' service token and agent token key: what every authenticated route asks."""
    return authenticate(
        header,
        service_token=settings.service_token.get_secret_value(),
        agent_token_key=settings.agent_token_key.get_secret_value(),
    )
