"""The console's login session: a signed, expiring cookie and the CSRF token bound to it (no I/O, no state).

The signing key is HMAC-SHA256(AIWORKER_CONSOLE_TOKEN, "aiworker-console-session-v1"): a new console token
ends every session. A cookie is `<expiry>.<nonce>.<signature>` (hex HMAC of "<expiry>.<nonce>"), so it holds
no secret and nothing a reader could reuse elsewhere; the CSRF token of a session is HMAC(key, "csrf:" + nonce),
so it is known only to pages rendered for that session and checked constant-time on the one form that changes
something (re-drive).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

COOKIE = "aiworker_console"
_CONTEXT = b"aiworker-console-session-v1"


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires: int
    csrf: str


class SessionKeys:
    """Signs and checks sessions with a key derived from the console token."""

    def __init__(self, console_token: str) -> None:
        self._token = console_token.encode()
        self._key = hmac.new(self._token, _CONTEXT, hashlib.sha256).digest()

    def token_matches(self, given: str) -> bool:
        """Whether `given` is the console token (constant-time)."""
        return bool(self._token) and hmac.compare_digest(given.encode(), self._token)

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def csrf_of(self, nonce: str) -> str:
        return self._sign(f"csrf:{nonce}")

    def issue(self, now: float, lifetime: int) -> tuple[str, Session]:
        """A new session valid for `lifetime` seconds from `now`: (cookie value, session)."""
        nonce = secrets.token_hex(16)
        expires = int(now) + lifetime
        body = f"{expires}.{nonce}"
        return f"{body}.{self._sign(body)}", Session(nonce, expires, self.csrf_of(nonce))

    def check(self, cookie: str | None, now: float) -> Session | None:
        """The session of a cookie, or None when it is missing, forged, malformed or expired."""
        if not cookie or len(cookie) > 200:
            return None
        expires_text, _, rest = cookie.partition(".")
        nonce, _, signature = rest.partition(".")
        if not (expires_text.isdigit() and nonce and signature):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{expires_text}.{nonce}")):
            return None
        expires = int(expires_text)
        if expires <= now:
            return None
        return Session(nonce, expires, self.csrf_of(nonce))

    def csrf_matches(self, session: Session, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given, session.csrf)
