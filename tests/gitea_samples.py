"""Recorded-style Gitea deliveries (tests/data/gitea/*.json) and how Gitea signs them.

Each file is `<exact event type>[__<variant>].json` holding {"headers": ..., "payload": ...}; the
headers are the ones Gitea sends minus the signatures, which `sign` computes for a given secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

SAMPLES_DIR = Path(__file__).parent / "data" / "gitea"


@dataclass(frozen=True)
class Sample:
    name: str
    event_type: str
    headers: dict[str, str]
    payload_bytes: bytes

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload_bytes)
        return value

    def signed_headers(self, secret: str) -> dict[str, str]:
        return {**self.headers, **sign(self.payload_bytes, secret)}


def load_samples() -> list[Sample]:
    """Every sample delivery, sorted by name; the payload bytes are compact JSON, exactly what is signed."""
    samples = []
    for path in sorted(SAMPLES_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        payload_bytes = json.dumps(data["payload"], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        samples.append(Sample(path.stem, path.stem.split("__", 1)[0], dict(data["headers"]), payload_bytes))
    return samples


def load_sample(name: str) -> Sample:
    return next(sample for sample in load_samples() if sample.name == name)


def sign(payload_bytes: bytes, secret: str) -> dict[str, str]:
    """The signature headers Gitea sends; with an empty secret, its empty digests."""
    sha256 = hmac.new(secret.encode(), payload_bytes, hashlib.sha256).hexdigest() if secret else ""
    sha1 = hmac.new(secret.encode(), payload_bytes, hashlib.sha1).hexdigest() if secret else ""
    return {
        "X-Gitea-Signature": sha256,
        "X-Gogs-Signature": sha256,
        "X-Hub-Signature": f"sha1={sha1}",
        "X-Hub-Signature-256": f"sha256={sha256}",
    }


def form_body(payload_bytes: bytes) -> bytes:
    """The body of a form delivery (`payload=<url-encoded JSON>`), as Go's url.Values.Encode writes it."""
    return urlencode({"payload": payload_bytes}).encode("ascii")
