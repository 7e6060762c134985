"""What aiohttp refuses itself, before any handler (issue 12, point 4): answered as problem+json, never a 5xx,
from a real web process (`python -m app web`, webhooks/serve.py), which stays up and answers the next request."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.harness import WebProcess


@pytest.fixture
def web(settings: Settings, tmp_path: Path) -> Iterator[WebProcess]:
    process = WebProcess(settings, tmp_path / "web.log").start()
    yield process
    process.stop()


def exchange(web: WebProcess, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a new connection; (status, headers, body) of the answer (read until the server closes)."""
    with socket.create_connection(("127.0.0.1", web.settings.http_port), timeout=10) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    return int(lines[0].split()[1]), headers, body


CASES = {
    "a bad request line": b"GARBAGE\r\n\r\n",
    "a bad method": b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "a bad HTTP version": b"GET / HTTP/9.9x\r\nHost: x\r\n\r\n",
    "a header line too long": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
    "a request line too long": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "a header without a colon": b"POST /events HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "a bad Content-Length": b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}",
    "two Content-Lengths": b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "an unknown Transfer-Encoding": b"POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n{}",
    "a control character in a header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
}


def test_what_aiohttp_refuses_is_problem_json_and_the_process_goes_on(settings: Settings, web: WebProcess) -> None:
    token = settings.service_token.get_secret_value()
    chunked_bad = (f"POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n").encode()  # fmt: skip
    gzip_bad = (f"POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                "Content-Encoding: gzip\r\nContent-Length: 20\r\n\r\n").encode() + b"\x1f\x8b" + b"x" * 18  # fmt: skip
    answers = {}
    for name, raw in {**CASES, "bad chunked framing": chunked_bad, "a body that is not gzip": gzip_bad}.items():
        status, headers, body = exchange(web, raw)
        answers[name] = status
        assert 400 <= status < 500, (name, status, body[:300])
        assert headers.get("content-type", "").startswith("application/problem+json"), (name, headers, body[:300])
        problem = json.loads(body)
        assert problem["status"] == status and problem["detail"], (name, problem)
    print(answers)
    status, _, body = exchange(web, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200, body
    # A client's malformed request is a one-line warning, not an ERROR with a traceback that reads as a crash, and
    # the log does not quote its bytes (aiohttp's message does: a bad Authorization line put the token in the log).
    status, _, _ = exchange(web, f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\x7f\r\n\r\n".encode())
    assert status == 400
    log = web.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert token not in log and log.count("refused a request it could not parse") >= len(CASES), log[-3000:]


def test_a_client_that_goes_away_mid_body_is_no_error(settings: Settings, web: WebProcess) -> None:
    """A body that stops mid-way (the client disconnects) on each route that reads one: no ERROR traceback, no
    5xx counted, and the process answers the next request."""
    token = settings.service_token.get_secret_value()
    for path in ("/events", "/webhooks/gitea", "/projects/p1/webhook-secret"):
        method = "PUT" if path.startswith("/projects") else "POST"
        with socket.create_connection(("127.0.0.1", web.settings.http_port), timeout=10) as conn:
            conn.sendall((f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                          "Content-Type: application/json\r\nX-Gitea-Event: issues\r\nContent-Length: 1000\r\n\r\n"
                          '{"id": "half').encode())  # fmt: skip
            time.sleep(0.3)  # the handler is reading the body when the connection closes
    time.sleep(0.5)
    status, _, metrics = exchange(web, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200
    counted = [line for line in metrics.decode().splitlines() if line.startswith("aiworker_http_requests_total{")]
    assert not [line for line in counted if 'status="5' in line], counted
    log = web.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-4000:]


def test_the_web_process_still_stops_on_sigterm(web: WebProcess) -> None:
    assert web.process is not None
    web.process.send_signal(signal.SIGTERM)
    assert web.process.wait(30) == 0, web.log()[-3000:]
