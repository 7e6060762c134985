"""`python -m bench ingest`: the bare aiohttp baseline against the real POST /webhooks/gitea (signed 4 KB payloads,
202 only after the broker's acknowledgement), same client, same concurrency; then p99 at a fixed 1,000 req/s.

Each server runs in its own process, the load generator in another: wrk (closed loop, `apt-get install wrk`)
when installed, else a Python aiohttp generator; the fixed rate is an open-loop Python generator whose latency
counts from each request's scheduled start. Starts its own broker and database and removes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

CONCURRENCY = 64
DURATION = 8.0
RUNS = 3
RATE = 1000
SECRET = "bench-secret"
TARGET_RATIO, TARGET_P99_MS = 0.36, 20.0
"""Issue 14: the ratio at or above 0.36 (0.45 the aim), p99 at most 20 ms at the fixed 1,000 req/s."""


def payload_4k() -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.gitea_samples import load_sample

    data = load_sample("push__main").payload
    base = len(json.dumps(data, separators=(",", ":")).encode())
    data["padding"] = "x" * (4096 - base - len(',"padding":""'))
    raw = json.dumps(data, separators=(",", ":")).encode()
    assert len(raw) == 4096, len(raw)
    return raw


def request_headers(body: bytes) -> dict[str, str]:
    import hashlib
    import hmac

    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Gitea-Event": "push", "X-Gitea-Event-Type": "push",
            "X-Gitea-Delivery": str(uuid.uuid4()), "X-Gitea-Signature": digest,
            "X-Hub-Signature-256": f"sha256={digest}"}  # fmt: skip


# -- roles run as separate processes --------------------------------------------------------------------------


def serve_baseline(port: int) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/webhooks/gitea", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def load(url: str, *, rate: float | None, duration: float, concurrency: int) -> dict[str, float]:
    """Closed loop (`rate` None: `concurrency` requests always in flight) or open loop at `rate` req/s."""
    import aiohttp

    body = payload_4k()
    headers = request_headers(body)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(scheduled: float) -> None:
            nonlocal errors
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    errors += 1
            latencies.append(time.perf_counter() - scheduled)

        started = time.perf_counter()
        end = started + duration
        if rate is None:

            async def worker() -> None:
                while time.perf_counter() < end:
                    await one(time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            tasks, n = [], 0
            while (at := started + n / rate) < end:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                tasks.append(asyncio.create_task(one(at)))
                n += 1
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[int(len(latencies) * 0.99)] * 1000, "errors": errors}  # fmt: skip


def wrk(url: str, directory: Path) -> dict[str, float]:
    body = payload_4k()
    (directory / "body").write_bytes(body)
    headers = {k: v for k, v in request_headers(body).items() if k != "X-Gitea-Delivery"}
    script = directory / "post.lua"
    lines = [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join([
        'wrk.method = "POST"', f'local f = io.open("{directory / "body"}", "rb")', "wrk.body = f:read(\"*a\")", "f:close()",
        *lines, "local n = 0",
        "request = function() n = n + 1; local h = {}; for k, v in pairs(wrk.headers) do h[k] = v end;"
        " h[\"X-Gitea-Delivery\"] = \"d-\" .. n; return wrk.format(nil, nil, h) end",
        "done = function(summary, latency, requests)",
        '  io.write(string.format("JSON {\\"p50\\": %f, \\"p99\\": %f, \\"non2xx\\": %d}\\n", latency:percentile(50) / 1000,'
        " latency:percentile(99) / 1000, summary.errors.status))",
        "end",
    ]))  # fmt: skip
    out = subprocess.run(["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{int(DURATION)}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    result = json.loads(out.split("JSON ", 1)[1])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": result["p50"], "p99": result["p99"], "errors": result["non2xx"]}


def measure(url: str, directory: Path, *, rate: float | None = None) -> dict[str, float]:
    if rate is None and shutil.which("wrk"):
        return wrk(url, directory)
    args = [sys.executable, "-m", "bench.ingest", "_load", url, str(rate or 0), str(DURATION), str(CONCURRENCY)]
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)  # type: ignore[no-any-return]


# -- orchestration --------------------------------------------------------------------------------------------


def wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    from app.commands.broker import wait_for_port

    if not wait_for_port("127.0.0.1", port, time.monotonic() + 30) or process.poll() is not None:
        raise SystemExit(f"the {what} server did not start on port {port}")


def check(url: str) -> None:
    """One request first: a server that refuses the benchmark's requests would measure nothing."""
    import urllib.error
    import urllib.request

    body = payload_4k()
    request = urllib.request.Request(url, data=body, headers=request_headers(body), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read()[:300]
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()[:300]
    if status != 202:
        raise SystemExit(f"{url} answered {status}: {text!r}")


def median_of(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> int:
    from app.commands.broker import EmbeddedBroker, free_port
    from app.commands.dev import ensure_database
    from app.settings import load_settings
    from db.migrate import drop_database, migrate
    from tests.harness import settings_env

    server = os.environ.get("AIWORKER_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306").rstrip("/")
    ensure_database(load_settings(database_url=f"{server}/mysql"))
    database_url = f"{server}/aiw_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(migrate(database_url))
    processes: list[subprocess.Popen[bytes]] = []
    print(f"client: {'wrk -t1' if shutil.which('wrk') else 'python aiohttp'}, {CONCURRENCY} connections, "
          f"{DURATION:.0f} s per run, median of {RUNS} runs; payload 4096 bytes, signed", flush=True)  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as temporary, EmbeddedBroker(log_path=Path(temporary) / "broker.log") as broker:
            directory = Path(temporary)
            base_port, real_port = free_port(), free_port()
            processes.append(subprocess.Popen([sys.executable, "-m", "bench.ingest", "_baseline", str(base_port)]))
            wait_port(base_port, processes[-1], "baseline")
            settings = load_settings(kafka_bootstrap=broker.bootstrap, database_url=database_url, gitea_secret=SECRET,
                                     http_host="127.0.0.1", http_port=real_port, spool_dir=str(directory / "spool"),
                                     log_level="warning", topic_partitions=8)  # fmt: skip
            processes.append(subprocess.Popen([sys.executable, "-m", "app", "web"], env=settings_env(settings)))
            wait_port(real_port, processes[-1], "real")
            base_url = f"http://127.0.0.1:{base_port}/webhooks/gitea"
            real_url = f"http://127.0.0.1:{real_port}/webhooks/gitea"
            baseline, real, fixed = [], [], []
            for url in (base_url, real_url):  # warm-up
                check(url)
                measure(url, directory, rate=200)
            for _ in range(RUNS):
                baseline.append(measure(base_url, directory))
                real.append(measure(real_url, directory))
                fixed.append(measure(real_url, directory, rate=RATE))
            b, r, f = median_of(baseline), median_of(real), median_of(fixed)
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        asyncio.run(drop_database(database_url))
    ratio = r["rps"] / b["rps"]
    print(f"{'':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-202':>8}")
    for name, row in (("baseline (bare aiohttp)", b), ("/webhooks/gitea (durable)", r), (f"/webhooks/gitea at {RATE}/s", f)):
        print(f"{name:32} {row['rps']:9.0f} {row['p50']:8.2f} {row['p99']:8.2f} {row['errors']:8.0f}")
    print(f"ratio real/baseline: {ratio:.2f} (target >= {TARGET_RATIO}) {'ok' if ratio >= TARGET_RATIO else 'MISSED'}")
    verdict = "ok" if f["p99"] <= TARGET_P99_MS else "MISSED"
    print(f"p99 at {RATE} req/s: {f['p99']:.1f} ms (target <= {TARGET_P99_MS:.0f}) {verdict}")
    return 0


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "_baseline":
        serve_baseline(int(sys.argv[2]))
    elif role == "_load":
        url, rate, duration, concurrency = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(asyncio.run(load(url, rate=rate or None, duration=duration, concurrency=concurrency))))
    else:
        raise SystemExit(main())
