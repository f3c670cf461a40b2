"""``portal scheduler``: APScheduler interval jobs, run only by the active scheduler.

Jobs (each a plain function, testable without APScheduler):

- leader election every 5 s (``scheduler.leader``), on every process;
- the due-scan every 5 s (``scheduler.reminders.scan_due``);
- the sweeper every 30 s (``scheduler.housekeeping.sweep``);
- the purge every hour (``scheduler.housekeeping.purge``).

SIGTERM or SIGINT stops it cleanly: running jobs finish, the lock is released.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from datetime import datetime, timezone

import redis
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import OperationalError

from portal.errors import PortalError
from portal.models import utcnow
from scheduler.housekeeping import purge, sweep
from scheduler.leader import LOCK_TTL_S, STATUS_KEY, Leader
from scheduler.reminders import scan_due

log = logging.getLogger(__name__)


class SchedulerService:
    def __init__(self, settings, session_factory, redis_client: redis.Redis, *, lock_ttl_s: float = LOCK_TTL_S,
                 elect_s: float | None = None, scan_s: float = 5, sweep_s: float = 30, purge_s: float = 3600,
                 threads: int = 4):
        self.settings = settings
        self.session_factory = session_factory
        self.redis = redis_client
        self.leader = Leader(redis_client, ttl_s=lock_ttl_s)
        self.intervals = {"elect": elect_s or lock_ttl_s / 6, "scan": scan_s, "sweep": sweep_s, "purge": purge_s}
        self.threads = threads
        self.apscheduler: BackgroundScheduler | None = None

    # The jobs. Each returns None when this process is standing by.
    def elect(self) -> bool:
        return self.leader.tick()

    def scan(self) -> dict | None:
        return self._as_leader("scan", lambda: scan_due(self.session_factory))

    def sweep(self) -> dict | None:
        return self._as_leader("sweep", lambda: sweep(self.session_factory, self.settings, redis_client=self.redis))

    def purge(self) -> dict | None:
        return self._as_leader("purge", lambda: purge(self.session_factory, self.settings))

    def _as_leader(self, name: str, job) -> dict | None:
        if not self.leader.is_leader:
            return None
        try:
            result = job()
        except (OperationalError, redis.RedisError) as exc:
            # An outage, not a bug: one line per run rather than APScheduler's traceback; the next run retries.
            detail = getattr(exc, "orig", None) or exc
            log.warning("scheduler: %s skipped: %s unavailable (%s)", name,
                        "Redis" if isinstance(exc, redis.RedisError) else "database", str(detail).splitlines()[0])
            return None
        try:
            entry = {"at": utcnow().isoformat(), "by": self.leader.identity, "result": result}
            self.redis.hset(STATUS_KEY, name, json.dumps(entry))
        except redis.RedisError:
            pass
        return result

    def start(self) -> None:
        self.elect()  # decide before the first scan rather than skipping it
        sched = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(self.threads)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone=timezone.utc,
        )
        now = datetime.now(timezone.utc)
        for name in ("elect", "scan", "sweep", "purge"):
            sched.add_job(getattr(self, name), "interval", seconds=self.intervals[name], id=name, name=name,
                          next_run_time=now)
        sched.start()
        self.apscheduler = sched

    def stop(self, *, release: bool = True) -> None:
        """Stop the jobs (waiting for running ones) and, unless told otherwise, hand the lock over."""
        if self.apscheduler is not None:
            self.apscheduler.shutdown(wait=True)
            self.apscheduler = None
        if release:
            self.leader.release()


def run(settings) -> None:
    if not settings.redis_url:
        raise PortalError("REDIS_URL is not set: the scheduler needs Redis")
    os.environ.setdefault("REDIS_URL", settings.redis_url)
    import workers  # noqa: F401  (installs the broker and declares the actors we enqueue)
    from portal import redis_client
    from portal.db import make_engine, make_session_factory

    # APScheduler logs every run of every job at INFO: one line per 5 s is noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    client = redis_client.configure(settings.redis_url)
    factory = make_session_factory(make_engine(settings.database_url))
    service = SchedulerService(settings, factory, client)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    log.info("scheduler %s started (%s)", service.leader.identity,
             "active" if service.leader.is_leader else "standing by")
    try:
        stop.wait()
    finally:
        log.info("scheduler %s stopping", service.leader.identity)
        service.stop()
