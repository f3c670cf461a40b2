"""Where benchmarks run: a dedicated PostgreSQL database and Redis db.

``BENCH_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/bench``)
and ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/9``). The database is
created if missing and migrated; both are wiped between benchmarks, so never
point them at data you care about.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from portal.db import make_engine, normalise_url
from portal.migrate import upgrade
from portal.models import Base

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"


class BenchSetupError(RuntimeError):
    """PostgreSQL or Redis unreachable / unusable: printed as one line, exit 2."""


@dataclass
class BenchEnv:
    database_url: str
    redis_url: str
    engine: Engine

    def process_env(self, **extra: str) -> dict[str, str]:
        """Environment for a ``portal`` / ``dramatiq`` child process on the bench stores."""
        env = dict(os.environ)
        env.pop("PORTAL_BROKER", None)  # the real Redis broker, never the stub
        env.pop("PORTAL_DEV", None)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            SECRET_KEY="bench-secret-key-0123456789",
            PUBLIC_BASE_URL="http://127.0.0.1:8080",
            OPS_TOKEN="bench-ops-token-0123456789",
            PYTHONPATH=_pythonpath(env),
        )
        env.update(extra)
        return env


def _pythonpath(env: dict[str, str]) -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(parts)


def database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL


def ensure_database(url: str) -> None:
    """Create the bench database if it does not exist (connects to ``postgres``)."""
    target = make_url(normalise_url(url))
    if not target.drivername.startswith("postgresql"):
        raise BenchSetupError(f"benchmarks need PostgreSQL, got {target.drivername} (BENCH_DATABASE_URL)")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database})
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    except Exception as exc:  # noqa: BLE001  one clear line, whatever the driver raised
        raise BenchSetupError(f"PostgreSQL unreachable at {target.render_as_string(hide_password=True)}: "
                              f"{first_line(exc)}") from None
    finally:
        admin.dispose()


def check_redis(url: str) -> None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        me = client.client_id()
        db = client.connection_pool.connection_kwargs.get("db", 0)
        others = [c for c in client.client_list() if int(c.get("db", -1)) == db and int(c["id"]) != me]
        client.close()
    except Exception as exc:  # noqa: BLE001
        raise BenchSetupError(f"Redis unreachable at {url}: {first_line(exc)}") from None
    if others and os.environ.get("BENCH_ALLOW_SHARED_REDIS") != "1":
        # A worker left running on this db would silently eat the benchmark's messages.
        raise BenchSetupError(f"{len(others)} other client(s) are connected to Redis db {db} ({url}), e.g. a "
                              f"worker left running; stop them or set BENCH_REDIS_URL to a free db")


def first_line(exc: BaseException) -> str:
    """An error's first line (the driver's own message when it wraps one), for one-line reports."""
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]


def prepare(db_url: str | None = None, r_url: str | None = None, *, redis_check: bool = True) -> BenchEnv:
    """Check both stores, create + migrate the database, return the environment."""
    db_url = db_url or database_url()
    r_url = r_url or redis_url()
    ensure_database(db_url)
    if redis_check:
        check_redis(r_url)
    upgrade(db_url)
    return BenchEnv(database_url=db_url, redis_url=r_url, engine=make_engine(db_url))


def wipe(env: BenchEnv, restart_identity: bool = True) -> None:
    """Empty every table and the bench Redis db."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    identity = "RESTART IDENTITY" if restart_identity else "CONTINUE IDENTITY"
    with env.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} {identity} CASCADE"))
    redis.Redis.from_url(env.redis_url).flushdb()


def fail(exc: BaseException) -> None:
    print(f"bench: error: {exc}", file=sys.stderr)
    sys.exit(2)
