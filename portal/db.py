"""Engine, sessions and tenant scoping.

Tenant scoping lives here and only here: a session opened with
``tenant_session(factory, business_id)`` adds ``business_id = :id`` to every
ORM query on a ``TenantScoped`` model and stamps new rows with that business.
A session opened with neither ``tenant_session`` nor ``system_session``
refuses to query tenant data at all, so a forgotten scope is an error, not a
leak.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria

from portal.models import TenantScoped

TENANT = "business_id"
SYSTEM = "system"
AFTER_COMMIT = "after_commit"


class TenantScopeError(RuntimeError):
    """A tenant table was queried from a session with no tenant scope."""


def normalise_url(url: str) -> str:
    # Heroku-style postgres:// URLs, and psycopg 3 as the driver.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def make_engine(url: str, **kwargs) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # Let SQLAlchemy, not pysqlite, issue BEGIN: otherwise SAVEPOINTs
            # (used by tests and nested transactions) silently misbehave.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # IMMEDIATE: take the write lock up front. A deferred transaction
            # that reads and then writes while another process writes fails
            # at once with "database is locked" (busy_timeout can't help).
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    ping_when_idle(engine, PING_IF_IDLE_S)
    return engine


# Checked out after this long in the pool, a connection is tested first.
PING_IF_IDLE_S = 2.0


def ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Test a pooled connection before use only if it sat idle for ``idle_s``.

    Not ``pool_pre_ping``: that pings on every checkout, a round trip and a
    tenth of a dashboard request's CPU. Connections go stale while idle (the
    server restarted in a quiet moment, an idle timeout, a NAT): those are
    pinged and replaced here. A busy connection lost mid-use fails its statement
    once, and SQLAlchemy then retires every connection of the pool opened
    before the failure, so one error per process covers a server restart.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_conn, None):
                raise DisconnectionError(str(exc)) from exc  # the pool reconnects and checks out again
            raise


def make_session_factory(bind) -> sessionmaker[Session]:
    return sessionmaker(bind=bind, expire_on_commit=False)


_worker_factories: dict[tuple[str, int], sessionmaker[Session]] = {}
_worker_lock = threading.Lock()


def worker_session_factory(database_url: str, threads: int) -> sessionmaker[Session]:
    """The one session factory (one engine, one pool) of a worker process, shared by every
    actor module, with a connection for each of its ``threads``.

    An engine per module, each with the default pool (10 + 20 overflow), let a process
    open up to four times what it can use, while past 30 threads the messaging pool ran
    out: threads waited 30 s for a connection and failed (throughput fell tenfold). A
    thread runs one actor at a time and holds one session at a time.
    """
    key = (database_url, threads)
    with _worker_lock:
        if key not in _worker_factories:
            engine = make_engine(database_url, **({} if normalise_url(database_url).startswith("sqlite")
                                                  else {"pool_size": threads, "max_overflow": 2}))
            _worker_factories[key] = make_session_factory(engine)
        return _worker_factories[key]


@contextmanager
def tenant_session(factory: Callable[[], Session], business_id: int) -> Iterator[Session]:
    """A session that sees one business's rows only."""
    with factory() as session:
        session.info[TENANT] = business_id
        yield session


@contextmanager
def system_session(factory: Callable[[], Session]) -> Iterator[Session]:
    """A session for workers, the scheduler and operators: sees every business."""
    with factory() as session:
        session.info[SYSTEM] = True
        yield session


def scope_to(session: Session, business_id: int) -> None:
    """Narrow a system session to one business (e.g. once the API key is known)."""
    session.info.pop(SYSTEM, None)
    session.info[TENANT] = business_id


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction commits (enqueue after commit)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def _touches_tenant_data(state: ORMExecuteState) -> bool:
    for mapper in state.all_mappers:
        if issubclass(mapper.class_, TenantScoped):
            return True
    return False


@event.listens_for(Session, "do_orm_execute")
def _scope_queries(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    info = state.session.info
    business_id = info.get(TENANT)
    if business_id is None:
        if not info.get(SYSTEM) and _touches_tenant_data(state):
            raise TenantScopeError("query on tenant data from an unscoped session")
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.business_id == business_id,
            include_aliases=True,
            track_closure_variables=False,
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_business(session: Session, _ctx, _instances) -> None:
    business_id = session.info.get(TENANT)
    if business_id is None:
        return
    for obj in session.new:
        if isinstance(obj, TenantScoped):
            if obj.business_id is None:
                obj.business_id = business_id
            elif obj.business_id != business_id:
                raise TenantScopeError("row written for another business")
    for obj in session.dirty:
        if isinstance(obj, TenantScoped) and obj.business_id != business_id:
            raise TenantScopeError("row of another business modified")


# SQLAlchemy also fires after_commit / after_rollback when a SAVEPOINT
# (begin_nested) is released or rolled back; only the real end counts here,
# or a message would be enqueued before the row it names is committed.
@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    callbacks = session.info.pop(AFTER_COMMIT, [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    session.info.pop(AFTER_COMMIT, None)
