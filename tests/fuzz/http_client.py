"""A raw HTTP/1.1 client for fuzzing: any bytes, any headers (those http.client can put on the wire)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post(url: str, path: str, body: bytes, headers: list[tuple[str, str]], *, timeout: float = 30.0) -> Reply:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        connection.putrequest("POST", path, skip_accept_encoding=True)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            connection.putheader(name, value)
        if "content-length" not in names and "transfer-encoding" not in names:
            connection.putheader("Content-Length", str(len(body)))
        if any(n == "transfer-encoding" for n in names):
            connection.endheaders()
            connection.send(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n")
        else:
            connection.endheaders(body)
        response = connection.getresponse()
        return Reply(response.status, response.getheader("Content-Type", ""), response.read())
    finally:
        connection.close()


def header_safe(text: str) -> str:
    """What http.client lets through as a header value (no control characters)."""
    return "".join(ch for ch in text if 32 <= ord(ch) < 127)
