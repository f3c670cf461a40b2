import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.autoanalyze import AutoAnalyze, autovacuum_on
from portal.db import make_engine

PROBE = "bench_autoanalyze_probe"
LAST = text(f"SELECT coalesce(last_analyze::text, '') FROM pg_stat_user_tables WHERE relname = '{PROBE}'")


def test_analyzes_the_tables_it_watches_when_autovacuum_is_off(database_url):
    if not make_url(database_url).drivername.startswith("postgresql"):
        pytest.skip("benchmarks run on PostgreSQL only (they refuse SQLite with one line: see test_bench_smoke)")
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {PROBE}"))
            conn.execute(text(f"CREATE TABLE {PROBE} (id int)"))
            conn.execute(text(f"INSERT INTO {PROBE} SELECT generate_series(1, 100)"))
        analyzer = AutoAnalyze(engine, every_s=0.05, tables=(PROBE, "no_such_table"))
        assert analyzer.needed == (not autovacuum_on(engine))
        with analyzer:
            done = not analyzer.needed
            deadline = time.monotonic() + 20
            while not done and time.monotonic() < deadline:
                with engine.connect() as conn:
                    done = conn.scalar(LAST) != ""
                time.sleep(0.05)
        assert done
        assert not analyzer._thread.is_alive()
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {PROBE}"))
        engine.dispose()
