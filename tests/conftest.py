"""Shared fixtures.

The suite runs on PostgreSQL and the real Redis when DATABASE_URL / REDIS_URL
are set (CI always sets them), otherwise on a SQLite file and an embedded
Redis. Each test runs inside a transaction that is rolled back afterwards.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Unit tests enqueue onto Dramatiq's StubBroker; integration tests build a
# real RedisBroker themselves. This must be set before ``workers`` is imported.
os.environ["PORTAL_BROKER"] = "stub"
pytest_plugins = ["tests.fakes.plugin"]  # fake_twilio, fake_sendgrid

import dramatiq  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from portal.db import make_engine, make_session_factory, system_session  # noqa: E402
from portal.devstack import EmbeddedRedis  # noqa: E402
from portal.migrate import upgrade  # noqa: E402
from portal.models import Base  # noqa: E402
from portal.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Keep tests away from a developer's data on a shared Redis; parallel runs pick their own.
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "15"))
IN_CI = os.environ.get("CI", "").lower() == "true"


def _database_url(tmp_root: Path) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    if IN_CI:
        pytest.exit("CI=true but DATABASE_URL is not set: CI must run on PostgreSQL", returncode=3)
    return f"sqlite:///{tmp_root / 'test.db'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return _database_url(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def engine(database_url):
    engine = make_engine(database_url)
    with engine.begin() as conn:
        # A clean schema each run, built by the real migrations.
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    with engine.begin() as conn:
        upgrade(database_url, connection=conn)
    yield engine
    engine.dispose()


@pytest.fixture
def committed_factory(database_url, engine):
    """Sessions on an engine of their own, outside the rolled-back test transaction, for tests
    whose connections must see each other's commits (row locks, requests at the same moment).
    PostgreSQL only: SQLite serialises all writers. The test deletes what it commits."""
    if not database_url.startswith("postgres"):
        pytest.skip("needs PostgreSQL (row locks, concurrent writers; SQLite serialises all writers); "
                    "CI runs this on PostgreSQL")
    own = make_engine(database_url)
    yield make_session_factory(own)
    own.dispose()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("REDIS_URL")
    if url:
        base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
        yield f"{base}/{TEST_REDIS_DB}"
        return
    if IN_CI:
        pytest.exit("CI=true but REDIS_URL is not set: CI must run on the real Redis", returncode=3)
    server = EmbeddedRedis(Path(os.environ.get("TMPDIR", "/tmp")) / f"portal-test-redis-{os.getpid()}").start()
    yield f"{server.url}?db={TEST_REDIS_DB}"
    server.stop()


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def connection(engine):
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def session_factory(connection):
    """Sessions that commit to savepoints inside the test's transaction."""
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def db(session_factory):
    """A system (unscoped) session for arranging and asserting."""
    with system_session(session_factory) as session:
        yield session


@pytest.fixture
def settings(tmp_path, database_url, redis_url) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        secret_key="test-secret-key-0123456789",
        public_base_url="http://portal.test",
        outbox_dir=tmp_path / "outbox",
        ops_token="test-ops-token-0123456789",
        dev_mode=True,
        db_threads=1,  # one connection per test: keep its use sequential
    )


@pytest.fixture
def stub_broker():
    import workers  # noqa: F401  (declares the actors on the stub broker)

    broker = dramatiq.get_broker()
    # Empty and settled, not just flushed: a worker stopped while holding a prefetched message
    # leaves it counted as unfinished (the stub consumer cannot requeue it), and every later
    # join() on that queue would wait for it until its timeout.
    for queue in broker.queues.values():
        with queue.mutex:
            queue.queue.clear()
            queue.unfinished_tasks = 0
            queue.all_tasks_done.notify_all()
    broker.dead_letters_by_queue.clear()
    return broker


@pytest.fixture
def stub_worker(stub_broker):
    worker = dramatiq.Worker(stub_broker, worker_timeout=50, worker_threads=1)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
async def aredis(redis_url, redis_client):
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def client(aiohttp_client, settings, session_factory, aredis, stub_broker, monkeypatch):
    from portal_web.app import create_app

    app = create_app(settings, session_factory=session_factory, redis_client=aredis)
    return await aiohttp_client(app)


def pytest_report_header(config):
    url = os.environ.get("DATABASE_URL", "")
    backend = "postgresql" if url.startswith("postgres") else "sqlite (embedded)"
    rurl = os.environ.get("REDIS_URL", "")
    return [f"database backend: {backend}", f"redis: {'real ' + rurl if rurl else 'embedded'}",
            f"python: {sys.version.split()[0]}"]
