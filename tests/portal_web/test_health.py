"""Liveness and readiness probes."""

from __future__ import annotations

import redis.asyncio as aioredis

from portal.db import make_engine, make_session_factory
from portal_web.app import create_app


async def test_healthz_says_the_process_is_alive(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_checks_the_database_and_redis(client):
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_readyz_is_503_when_redis_is_unreachable(aiohttp_client, settings, session_factory):
    dead_redis = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=2)  # nothing listens on port 1
    try:
        client = await aiohttp_client(create_app(settings, session_factory=session_factory, redis_client=dead_redis))
        resp = await client.get("/readyz")
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("error: ")
        assert (await client.get("/healthz")).status == 200  # alive, just not ready
    finally:
        await dead_redis.aclose()


async def test_readyz_is_503_when_the_database_is_unreachable(aiohttp_client, settings, aredis, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'portal.db'}")
    try:
        app = create_app(settings, session_factory=make_session_factory(engine), redis_client=aredis)
        client = await aiohttp_client(app)
        resp = await client.get("/readyz")
        assert resp.status == 503
        body = await resp.json()
        assert body["checks"]["database"].startswith("error: ")
        assert body["checks"]["redis"] == "ok"
    finally:
        engine.dispose()


async def test_favicon_is_served(client):
    # Every browser asks for it on every page; a 404 was a console error on each.
    resp = await client.get("/favicon.ico")
    assert resp.status == 200
    assert resp.content_type == "image/svg+xml"
    assert (await resp.read()).startswith(b"<svg")
