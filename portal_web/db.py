"""Blocking database work runs on a bounded thread pool, never on the event loop.

Domain code (outbox, reschedule, invitations) is plain synchronous
SQLAlchemy shared with the workers; handlers call it through ``run_db``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Callable, TypeVar

from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from portal.db import system_session, tenant_session
from portal_web.keys import DB_EXECUTOR, SESSIONS

T = TypeVar("T")


async def run_db(app: web.Application, fn: Callable[..., T], *args, **kwargs) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app[DB_EXECUTOR], functools.partial(fn, *args, **kwargs))


async def in_tenant(app: web.Application, business_id: int, fn: Callable[[Session], T]) -> T:
    """Run ``fn(session)`` in a session scoped to one business; commits if fn returns normally."""

    def work() -> T:
        with tenant_session(app[SESSIONS], business_id) as session:
            result = fn(session)
            session.commit()
            return result

    return await run_db(app, work)


async def in_system(app: web.Application, fn: Callable[[Session], T], *, read_mostly: bool = False) -> T:
    """Run ``fn(session)`` in a system session; commits if fn returns normally.

    ``read_mostly``: on PostgreSQL each statement commits on its own (no BEGIN /
    COMMIT round trips: two of a dashboard's six), for a page's reads and writes
    that each stand alone. SQLite keeps its transaction (``portal.db`` opens it
    with BEGIN IMMEDIATE, which is how writers there take turns), and so does a
    session bound to a connection already in one (the tests' rolled-back one).
    """

    def work() -> T:
        with system_session(app[SESSIONS]) as session:
            if read_mostly and _statements_commit_alone(session.get_bind()):
                session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            result = fn(session)
            session.commit()
            return result

    return await run_db(app, work)


def _statements_commit_alone(bind) -> bool:
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"
