"""GET /healthz (the process answers), GET /readyz (it can make events durable), GET /metrics (Prometheus)."""

from __future__ import annotations

from aiohttp import web

from app.observe import metrics_response
from db.pool import ping
from webhooks.state import DB_POOL, METRICS, PUBLISHER, SINK


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """503 only while neither the broker nor the spool can take events; the database is reported, not required.

    The database only serves the Gitea path's project secrets, which are cached; a database outage is the same
    for every web process, so taking this one out of the load balancer would not help anyone.
    """
    publisher, sink = request.app[PUBLISHER], request.app[SINK]
    broker = await publisher.probe(timeout=1.0)
    spool = sink.spool
    checks: dict[str, str] = {
        "broker": "ok" if broker else f"unreachable: {publisher.last_error_text or 'producer not started'}",
        "spool": (
            f"ok ({spool.records} records, {spool.disk_bytes} of {spool.max_bytes} bytes)" if sink.spool_usable
            else sink.spool_error or ("disabled (AIWORKER_SPOOL_MAX_BYTES=0)" if not spool.enabled else
                                      f"full ({spool.disk_bytes} of {spool.max_bytes} bytes)")
        ),
        "database": await ping(request.app[DB_POOL]) or "ok",
    }  # fmt: skip
    for loop, hold in sink.health.held().items():  # db/errors.py: the drain retries it; reported, not a 503
        checks[loop] = f"held since {hold.since:.0f} (epoch s): {hold.reason}"
    if checks["database"] != "ok":
        checks["database"] += "; Gitea deliveries of repositories whose secret is not cached get 503"
    if not broker and not sink.spool_usable:
        reason = "the broker does not answer and the local spool cannot take events, so nothing can be made durable"
        request.app[METRICS].ready.set(False)
        return web.json_response({"status": "unready", "reason": reason, "checks": checks}, status=503)
    request.app[METRICS].ready.set(True)
    return web.json_response({"status": "ready", "checks": checks})


async def metrics(request: web.Request) -> web.Response:
    return metrics_response(request.app[METRICS].registry)
