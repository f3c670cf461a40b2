"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from portal_web.db import run_db
from portal_web.keys import REDIS, SESSIONS


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = {}

    def ping_db() -> None:
        with request.app[SESSIONS]() as session:
            session.execute(text("SELECT 1"))

    try:
        await run_db(request.app, ping_db)
        checks["database"] = "ok"
    except Exception as exc:  # report, don't crash: this is what the probe is for
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await request.app[REDIS].ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
