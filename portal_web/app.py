"""The aiohttp application factory."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from portal import redis_client
from portal.db import make_engine, make_session_factory
from portal.settings import Settings
from portal_web import dev, health, middleware
from portal_web.keys import DB_EXECUTOR, ENGINE, JINJA, REDIS, SESSIONS, SETTINGS
from portal_web.rendering import make_jinja

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


def _database_ctx(session_factory: sessionmaker[Session] | None):
    async def ctx(app: web.Application):
        engine = None
        if session_factory is None:
            engine = make_engine(app[SETTINGS].database_url)
            app[ENGINE] = engine
            app[SESSIONS] = make_session_factory(engine)
        else:
            app[SESSIONS] = session_factory
        app[DB_EXECUTOR] = ThreadPoolExecutor(app[SETTINGS].db_threads, thread_name_prefix="db")
        yield
        app[DB_EXECUTOR].shutdown(wait=True)
        if engine is not None:
            engine.dispose()

    return ctx


def _redis_ctx(client: aioredis.Redis | None):
    async def ctx(app: web.Application):
        owned = client is None
        app[REDIS] = client if client is not None else aioredis.from_url(app[SETTINGS].redis_url)
        # Domain code run in DB threads (live events) publishes with a sync client.
        redis_client.configure(app[SETTINGS].redis_url)
        yield
        if owned:
            await app[REDIS].aclose()

    return ctx


async def favicon(request: web.Request) -> web.StreamResponse:
    # Browsers ask for /favicon.ico on every page: a 404 there is a console error on each one.
    return web.FileResponse(STATIC / "favicon.svg", headers={"Cache-Control": "public, max-age=86400"})


def create_app(
    settings: Settings,
    *,
    session_factory: sessionmaker[Session] | None = None,
    redis_client: aioredis.Redis | None = None,
) -> web.Application:
    app = web.Application(middlewares=middleware.stack(), client_max_size=2 * 1024 * 1024)
    app[SETTINGS] = settings
    app[JINJA] = make_jinja(auto_reload=settings.dev_mode)
    app.cleanup_ctx.append(_database_ctx(session_factory))
    app.cleanup_ctx.append(_redis_ctx(redis_client))

    # Fixed prefixes first: business slugs are matched last.
    health.setup(app)
    app.router.add_static("/static", STATIC, name="static")
    app.router.add_get("/favicon.ico", favicon, name="favicon")
    from portal_web import api, ops, webhooks
    from portal_web.views import auth, selfservice

    webhooks.setup(app)
    api.setup(app)
    ops.setup(app)
    if settings.dev_mode:
        dev.setup(app)
    auth.setup(app)
    selfservice.setup(app)
    return app

