import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.autoanalyze import AutoAnalyze, autovacuum_on
from portal.db import make_engine


def test_analyzes_the_growing_tables_when_autovacuum_is_off(database_url):
    if not make_url(database_url).drivername.startswith("postgresql"):
        pytest.skip("benchmarks run on PostgreSQL only (they refuse SQLite with one line: see test_bench_smoke)")
    engine = make_engine(database_url)
    try:
        last = text("SELECT coalesce(last_analyze::text, '') FROM pg_stat_user_tables WHERE relname = 'message_event'")
        with engine.connect() as conn:
            before = conn.scalar(last)
        analyzer = AutoAnalyze(engine, every_s=0.05)
        assert analyzer.needed == (not autovacuum_on(engine))
        with analyzer:
            if analyzer.needed:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    with engine.connect() as conn:
                        done = conn.scalar(last) != before
                    if done:
                        break
                    time.sleep(0.05)
                assert done
        assert not analyzer._thread.is_alive()
    finally:
        engine.dispose()
