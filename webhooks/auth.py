"""Bearer tokens of POST /events: an agent's token is hex HMAC-SHA256(AGENT_TOKEN_KEY, agent_id)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the service (every event type) or one agent (its own agent events only)."""

    service: bool
    agent_id: str | None = None


def agent_token(key: str, agent_id: str) -> str:
    return hmac.new(key.encode(), agent_id.encode(), hashlib.sha256).hexdigest()


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def identify(token: str, *, service_token: str, agent_token_key: str, agent_ids: set[str]) -> Caller | None:
    """The caller a token speaks for among the agent ids of the request, or None when it is no valid token."""
    if service_token and hmac.compare_digest(token.encode(), service_token.encode()):
        return Caller(service=True)
    if agent_token_key:
        for agent_id in sorted(agent_ids):
            if hmac.compare_digest(token.encode(), agent_token(agent_token_key, agent_id).encode()):
                return Caller(service=False, agent_id=agent_id)
    return None
