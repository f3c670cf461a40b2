"""What every drill needs: the stores, a counting fake provider, ``portal
worker`` / ``portal scheduler`` / ``portal web`` processes, booking
confirmations to send, and the final tally."""

from __future__ import annotations

import time

from sqlalchemy import text

from bench import datagen, env as benv, pipeline, procs
from bench.provider_client import FakeProvider
from portal.db import make_engine

# Housekeeping shortened so a drill finishes in minutes (production: 120 s / 300 s).
DRILL_ENV = {"OUTBOX_GRACE": "10", "SENDING_LEASE": "30"}
PENDING = ("queued", "sending")


def wait_for(predicate, timeout: float, poll: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


class Rig:
    def __init__(self, name: str, database_url: str, redis_url: str, *, delay_ms: int = 100,
                 processes: int | None = None, threads: int | None = None):
        self.name = name
        self.env = benv.BenchEnv(database_url, redis_url, make_engine(database_url))
        default_p, default_t = pipeline.worker_defaults(self.env)
        self.processes, self.threads = processes or default_p, threads or default_t
        # The fake posts SendGrid's signed "processed" events to our web process, as in
        # production: that is how a send whose worker died is known to have gone out.
        self.web_port = procs.free_port()
        self.fake = FakeProvider(delay_ms, name=f"drill-{name}-fake",
                                 events_url=f"http://127.0.0.1:{self.web_port}/webhooks/sendgrid/events")
        self.worker: procs.Proc | None = None
        self.scheduler: procs.Proc | None = None
        self.web: procs.Proc | None = None
        self.business_id: int | None = None
        self.bookings: tuple[int, int] | None = None
        self.workers_started = 0

    def child_env(self, **extra: str) -> dict[str, str]:
        return {**self.fake.provider_env(), **DRILL_ENV, **extra}

    # --- processes ---
    def start_worker(self) -> procs.Proc:
        self.workers_started += 1
        self.worker = pipeline.start_portal_worker(self.env, self.processes, self.threads, self.child_env(),
                                                   name=f"drill-{self.name}-worker{self.workers_started}")
        return self.worker

    def start_scheduler(self) -> procs.Proc:
        self.scheduler = procs.portal(f"drill-{self.name}-scheduler", ["scheduler"],
                                      self.env.process_env(**self.child_env()))
        return self.scheduler

    def start_web(self) -> procs.Proc:
        port = self.web_port
        self.web = procs.portal(f"drill-{self.name}-web", ["web", "--host", "127.0.0.1", "--port", str(port)],
                                self.env.process_env(**self.child_env()))
        procs.wait_port(port, self.web, timeout=60)
        return self.web

    def close(self) -> None:
        for proc in (self.worker, self.scheduler, self.web):
            if proc is not None:
                proc.stop()
        self.fake.stop()
        self.env.engine.dispose()

    # --- work ---
    def seed(self, n: int) -> None:
        self.business_id = datagen.business(self.env.engine, f"drill-{self.name}-{int(time.time())}")
        customers = datagen.customers(self.env.engine, self.business_id, n)
        self.bookings = datagen.bookings(self.env.engine, self.business_id, n, customers,
                                         salt=f"d{self.name}{time.time_ns()}")

    def produce(self) -> float:
        return pipeline.produce_confirmations(self.env, self.business_id, self.bookings)

    def start(self, n: int) -> None:
        """Seed n bookings and start web, scheduler and worker."""
        self.seed(n)
        self.start_web()
        self.start_scheduler()
        self.start_worker()

    def wait_received(self, count: int, timeout: float = 120) -> bool:
        return wait_for(lambda: self.fake.stats()["accepted"] >= count, timeout, poll=0.1)

    def wait_flowing(self, n: int) -> None:
        """Wait until a quarter of the n messages reached the provider: the moment to disrupt."""
        if not self.wait_received(max(1, n // 4)):
            raise RuntimeError(f"nothing reached the provider:\n{self.worker.tail()}")

    # --- outcome ---
    def statuses(self) -> dict[str, int]:
        return pipeline.message_counts(self.env, self.business_id)

    def tally(self) -> dict:
        with self.env.engine.connect() as conn:
            ids = {str(i) for i in conn.scalars(text("SELECT id FROM message WHERE business_id = :b"),
                                                {"b": self.business_id})}
        stats = self.fake.stats(detail=True)
        by_key = stats["by_key"]
        received = sum(1 for k in ids if by_key.get(k))
        return {
            "sent": len(ids), "received": received,
            "duplicated": sum(1 for k in ids if by_key.get(k, 0) > 1), "lost": len(ids) - received,
            "provider_requests": stats["requests"], "provider_rejected": stats["rejected"],
            "unknown_keys": sum(1 for k in by_key if k not in ids),
            "provider_events_posted": stats.get("events_posted"),
        }

    def settle(self, since: float, timeout: float) -> dict:
        """Wait until every row reached the provider, then keep watching while
        rows are still queued/sending (up to the sending lease and a sweep),
        so a late re-send shows up as a duplicate. Returns the tally with
        ``recovered_s`` counted from ``since`` (monotonic)."""
        deadline = time.monotonic() + timeout
        all_in_at = None
        tally = self.tally()
        while time.monotonic() < deadline:
            tally = self.tally()
            if tally["lost"] == 0 and all_in_at is None:
                all_in_at = time.monotonic()
            if all_in_at is not None:
                pending = sum(self.statuses().get(s, 0) for s in PENDING)
                watched = time.monotonic() - all_in_at
                if (pending == 0 and watched >= 3) or watched >= int(DRILL_ENV["SENDING_LEASE"]) + 20:
                    break
            time.sleep(0.5)
        tally = self.tally()
        tally["recovered_s"] = round(all_in_at - since, 1) if all_in_at is not None else None
        tally["statuses"] = self.statuses()
        tally["timed_out"] = all_in_at is None
        return tally
