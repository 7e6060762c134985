"""Gitea webhook deliveries: which bytes are signed, whether the signature holds, which event it is.

Pure functions, no I/O (GITEA.md, "The request"). The HMAC covers the payload JSON string exactly as
Gitea produced it: the request body for `application/json`, the decoded `payload` field for a form.
Nothing here re-serializes the payload before checking it.
"""

from __future__ import annotations

import hmac
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_to_bytes

from app import jsonio

_HEX = frozenset(string.hexdigits)
_SHA256_HEX_LEN = 64


class GiteaPayloadError(ValueError):
    """The request does not carry a Gitea payload (HTTP 400)."""


class UnsupportedContentTypeError(GiteaPayloadError):
    """The body is neither JSON nor a form (HTTP 415)."""


class SignatureStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    MALFORMED = "malformed"
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The outcome of `verify`; `header` names the header checked, `secret_index` the secret that matched."""

    status: SignatureStatus
    message: str
    header: str | None = None
    secret_index: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is SignatureStatus.OK


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name` in any casing, or None (works for dicts and case-insensitive multidicts)."""
    value: object = headers.get(name)
    if value is None:
        wanted = name.lower()
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == wanted:
                value = candidate
                break
    return value if isinstance(value, str) else None


def _digest(headers: Mapping[str, str]) -> tuple[str, str | None] | None:
    """(header, claimed lowercase hex digest or None when badly prefixed) of the first signature header set."""
    for name, prefix in (("X-Gitea-Signature", ""), ("X-Hub-Signature-256", "sha256="), ("X-Gogs-Signature", "")):
        value = (header(headers, name) or "").strip()
        if prefix and value:
            if not value.lower().startswith(prefix):
                return name, None
            value = value[len(prefix) :].strip()
        if value:
            return name, value.lower()
    return None


def verify(payload: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> SignatureCheck:
    """Check the delivery's HMAC-SHA256 against each non-empty secret (current first, then previous ones).

    Empty digests (Gitea's way of saying "no secret set") count as a missing signature.
    """
    found = _digest(headers)
    if found is None:
        return SignatureCheck(
            SignatureStatus.MISSING,
            "the delivery has no X-Gitea-Signature or X-Hub-Signature-256; set a secret on the webhook in Gitea",
        )
    name, claimed = found
    if claimed is None or len(claimed) != _SHA256_HEX_LEN or not _HEX.issuperset(claimed):
        expected_form = "'sha256=' followed by" if name == "X-Hub-Signature-256" else "exactly"
        return SignatureCheck(SignatureStatus.MALFORMED, f"{name} must be {expected_form} 64 hex digits of HMAC-SHA256", name)
    keys = [secret for secret in secrets if secret]
    if not keys:
        return SignatureCheck(
            SignatureStatus.MISMATCH,
            f"{name} cannot be checked: no webhook secret is configured for this repository "
            "(set AIWORKER_GITEA_SECRET or the project's secret)",
            name,
        )
    signature = bytes.fromhex(claimed)
    for index, secret in enumerate(keys):
        # hmac.digest: OpenSSL's one-shot HMAC, no HMAC object per delivery (the same digest as hmac.new).
        if hmac.compare_digest(hmac.digest(secret.encode("utf-8"), payload, "sha256"), signature):
            return SignatureCheck(SignatureStatus.OK, f"{name} matches", name, index)
    return SignatureCheck(
        SignatureStatus.MISMATCH,
        f"{name} does not match the payload signed with the repository's secret; check the webhook secret in Gitea",
        name,
    )


def extract_payload(content_type: str, body: bytes) -> bytes:
    """The signed payload bytes: the body of a JSON delivery, the decoded `payload` field of a form."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        if not body.strip():
            raise GiteaPayloadError("the request body is empty; Gitea sends the payload JSON as the body")
        return body
    if media_type == "application/x-www-form-urlencoded":
        values = [value for key, value in _form_fields(body) if key == b"payload"]
        if not values:
            raise GiteaPayloadError("the form has no 'payload' field; Gitea sends payload=<url-encoded JSON>")
        if len(values) > 1:
            raise GiteaPayloadError("the form has more than one 'payload' field")
        if not values[0].strip():
            raise GiteaPayloadError("the form's 'payload' field is empty")
        return values[0]
    shown = media_type or "none"
    raise UnsupportedContentTypeError(
        f"content type {shown!r} is not supported; use application/json or application/x-www-form-urlencoded"
    )


def _form_fields(body: bytes) -> list[tuple[bytes, bytes]]:
    """Decode an urlencoded form to (name, value) bytes, as Go's url.Values.Encode wrote it."""
    fields = []
    for part in body.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        fields.append((unquote_to_bytes(key.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))))
    return fields


def parse_payload(payload: bytes) -> dict[str, Any]:
    """The payload JSON as an object, or GiteaPayloadError (app/jsonio.py decides, as the worker's fold does)."""
    try:
        value = jsonio.loads(payload)
    except jsonio.JsonError as error:
        raise GiteaPayloadError(f"the payload is {error}") from None
    if not isinstance(value, dict):
        raise GiteaPayloadError(f"the payload is a JSON {type(value).__name__}, not an object")
    return value


def event_type(headers: Mapping[str, str]) -> str:
    """The exact event type: X-Gitea-Event-Type, else the grouped X-Gitea-Event / X-Gogs-Event / X-GitHub-Event.

    Returns "" when no header names one (older Gitea versions send an empty X-Gitea-Event for some types).
    """
    for name in ("X-Gitea-Event-Type", "X-Gitea-Event", "X-Gogs-Event-Type", "X-Gogs-Event", "X-GitHub-Event"):
        value = (header(headers, name) or "").strip().lower()
        if value:
            return value
    return ""


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The delivery UUID (new for every delivery, manual replays included), or None."""
    for name in ("X-Gitea-Delivery", "X-Gogs-Delivery", "X-GitHub-Delivery"):
        value = (header(headers, name) or "").strip()
        if value:
            return value
    return None
