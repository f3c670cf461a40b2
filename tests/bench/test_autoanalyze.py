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


def test_a_locked_table_is_skipped_with_one_line_and_the_others_still_analysed(database_url, caplog):
    # While a benchmark bulk-loads a table, ANALYZE waits for its lock: the round skips that
    # table (lock_timeout) with a one-line note, not a traceback, and goes on to the next.
    import logging

    if not make_url(database_url).drivername.startswith("postgresql"):
        pytest.skip("benchmarks run on PostgreSQL only (they refuse SQLite with one line: see test_bench_smoke)")
    engine = make_engine(database_url)
    locked, free = f"{PROBE}_locked", PROBE
    caplog.set_level(logging.INFO, logger="bench.autoanalyze")
    try:
        with engine.begin() as conn:
            for table in (locked, free):
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
                conn.execute(text(f"CREATE TABLE {table} (id int)"))
        analyzer = AutoAnalyze(engine, every_s=0.05, tables=(locked, free))
        analyzer.needed = True  # as on a server with autovacuum off, whatever this one runs with
        with engine.connect() as holder:
            holder.execute(text(f"LOCK TABLE {locked} IN ACCESS EXCLUSIVE MODE"))
            with analyzer:
                deadline = time.monotonic() + 30
                done = False
                while not done and time.monotonic() < deadline:
                    with engine.connect() as conn:
                        done = conn.scalar(LAST) != ""
                    time.sleep(0.1)
            holder.rollback()
        assert done
        notes = [r for r in caplog.records if r.name == "bench.autoanalyze"]
        assert any(f"ANALYZE {locked} skipped this round" in r.getMessage() for r in notes)
        assert not any(r.exc_info for r in notes)
    finally:
        with engine.begin() as conn:
            for table in (locked, free):
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
