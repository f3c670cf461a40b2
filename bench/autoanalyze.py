"""Stand in for autovacuum's ANALYZE when the server runs without it.

The tables a benchmark writes (message, message_event, tokens...) start empty
after the wipe. Without fresh statistics PostgreSQL keeps the plans it made
while they were empty -- among them the foreign-key checks every insert runs,
which then scan the whole message table -- and the benchmark slows down as
the tables grow. Production runs autovacuum, which re-analyses a table after
10 % of it changed; on a server with ``autovacuum = off`` (this machine's
PostgreSQL) this thread does the same every few seconds.
"""

from __future__ import annotations

import logging
import threading

from psycopg.errors import LockNotAvailable
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from bench.env import first_line

log = logging.getLogger(__name__)

# Written during a run; the bulk-loaded tables (customer, booking) are analysed after loading.
GROWING = ("message", "message_event", "magic_link_token", "reminder", "portal_session")


def autovacuum_on(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.scalar(text("SHOW autovacuum")) == "on"


class AutoAnalyze:
    def __init__(self, engine: Engine, every_s: float = 5.0, tables: tuple[str, ...] = GROWING):
        self.engine = engine
        self.every_s = every_s
        self.tables = tables
        self.needed = not autovacuum_on(engine)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-autoanalyze", daemon=True)

    def __enter__(self) -> "AutoAnalyze":
        if self.needed:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    # Never queue behind a long lock (a bulk load, a TRUNCATE): skip that table this round.
                    conn.execute(text("SET lock_timeout = '2s'"))
                    existing = set(conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = "
                                                     "current_schema()")))
                    for table in self.tables:
                        if table in existing:
                            self._analyze(conn, table)
            except Exception as exc:  # noqa: BLE001  a missed round only makes the plans older
                log.warning("bench: ANALYZE round failed: %s", first_line(exc))

    @staticmethod
    def _analyze(conn, table: str) -> None:
        try:
            conn.execute(text(f'ANALYZE "{table}"'))
        except OperationalError as exc:
            if not isinstance(exc.orig, LockNotAvailable):
                raise
            # Expected while a benchmark bulk-loads the table: the next round analyses it.
            log.info("bench: ANALYZE %s skipped this round (table locked)", table)
