"""Stale pooled connections: pinged when they sat idle, replaced after a failure when busy."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from portal import db as portal_db


@pytest.fixture
def pool_engine(database_url, engine, monkeypatch):
    """A one-connection engine of its own, and a way to kill its server connection."""
    if not database_url.startswith("postgres"):
        pytest.skip("needs PostgreSQL (pg_terminate_backend); CI runs this on PostgreSQL")

    def make(idle_s: float):
        monkeypatch.setattr(portal_db, "PING_IF_IDLE_S", idle_s)
        own = portal_db.make_engine(database_url, pool_size=1, max_overflow=0)
        made.append(own)
        return own

    made = []
    yield make
    for own in made:
        own.dispose()


def backend_pid(own) -> int:
    with own.connect() as conn:
        return conn.scalar(text("SELECT pg_backend_pid()"))


def terminate(engine, pid: int) -> None:
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_an_idle_connection_killed_on_the_server_is_replaced_before_use(pool_engine, engine):
    own = pool_engine(0.0)  # every checkout counts as idle: pinged
    pid = backend_pid(own)
    terminate(engine, pid)
    with own.connect() as conn:
        assert conn.scalar(text("SELECT pg_backend_pid()")) != pid


def test_a_busy_connection_is_not_pinged_and_fails_once_then_the_pool_recovers(pool_engine, engine):
    own = pool_engine(3600.0)  # never idle long enough: no ping, no round trip
    pid = backend_pid(own)
    terminate(engine, pid)
    with pytest.raises(OperationalError) as failed:
        with own.connect() as conn:
            conn.execute(text("SELECT 1"))
    assert failed.value.connection_invalidated
    with own.connect() as conn:
        assert conn.scalar(text("SELECT pg_backend_pid()")) != pid


@pytest.fixture
def worker_factory(database_url, engine):
    made = []

    def make(threads: int):
        factory = portal_db.worker_session_factory(database_url, threads)
        made.append((database_url, threads))
        return factory

    yield make
    for key in set(made):
        portal_db._worker_factories.pop(key).kw["bind"].dispose()


def test_a_worker_process_shares_one_pool_with_a_connection_per_thread(worker_factory, database_url):
    import threading

    factory = worker_factory(40)
    assert worker_factory(40) is factory  # every actor module of the process
    if not database_url.startswith("postgres"):
        return  # SQLite: one file, no server connections to count
    # More threads than the default pool (10 + 20): each holds a connection at the same moment.
    barrier = threading.Barrier(40, timeout=20)
    errors = []

    def hold():
        try:
            with factory() as session:
                session.execute(text("SELECT 1"))
                barrier.wait()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hold) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
