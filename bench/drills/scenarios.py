"""The four drills. Each returns {"sent", "duplicated", "lost", "recovered_s", ...}."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

from bench import env as benv, procs
from bench.drills.private_pg import PrivatePostgres
from bench.drills.rig import Rig, wait_for


def kill_worker(database_url: str, redis_url: str, n: int, timeout: float) -> dict:
    """``kill -9`` the worker process group while a slow provider (1 s) holds
    its threads, then start a fresh worker. Redelivery comes from the broker's
    heartbeat timeout (portal/broker.py) and the scheduler's sweeper."""
    rig = Rig("kill-worker", database_url, redis_url, delay_ms=1000)
    try:
        rig.start(n)
        rig.produce()
        rig.wait_flowing(n)
        in_flight = rig.statuses()
        rig.worker.kill9()
        time.sleep(1)
        restarted = time.monotonic()
        rig.start_worker()
        result = rig.settle(restarted, timeout)
        result["at_kill"] = in_flight
        return result
    finally:
        rig.close()


def redis_loss(database_url: str, redis_url: str, n: int, timeout: float, redis_server) -> dict:
    """The broker's Redis is killed and restarted empty while messages are
    pending; the scheduler's sweeper re-enqueues the rows still queued."""
    rig = Rig("redis-loss", database_url, redis_url, delay_ms=500)
    try:
        rig.start(n)
        rig.produce()
        rig.wait_flowing(n)
        before = rig.statuses()
        back = redis_server.restart_empty(down_s=1.0)
        result = rig.settle(back, timeout)
        result["at_loss"] = before
        return result
    finally:
        rig.close()


def provider_errors(database_url: str, redis_url: str, n: int, timeout: float,
                    unavailable_s: float = 10.0) -> dict:
    """The provider answers 503 for a while (every message is refused at least
    once), then a burst of 429s with Retry-After (until half as many again were
    refused), then recovers. Retries must neither give up nor send twice."""
    rig = Rig("provider-errors", database_url, redis_url, delay_ms=100)
    try:
        rig.start(n)
        rig.fake.mode("503")
        started = time.monotonic()
        rig.produce()
        wait_for(lambda: rig.fake.stats()["rejected"] >= n and time.monotonic() - started >= unavailable_s, 120)
        rig.fake.mode("429", retry_after=2)
        wait_for(lambda: rig.fake.stats()["rejected_by_status"].get("429", 0) >= max(1, n // 2), 180)
        rig.fake.mode("ok")
        healthy = time.monotonic()
        result = rig.settle(healthy, timeout)
        result["rejected_by_status"] = rig.fake.stats()["rejected_by_status"]
        result["errors_s"] = round(healthy - started, 1)
        return result
    finally:
        rig.close()


def postgres_restart(redis_url: str, n: int, timeout: float, down_s: float = 5.0) -> dict:
    """A private PostgreSQL cluster is stopped hard (``immediate``: connections
    cut, like a crash) under load and started again; the worker, scheduler and
    web processes are not restarted and must recover on their own."""
    from bench.dashboard import check_page, session_cookie

    pg = PrivatePostgres().init()
    rig = None
    try:
        benv.prepare(pg.url, redis_url, redis_check=False)  # the drills' own Redis, already in use
        rig = Rig("postgres-restart", pg.url, redis_url, delay_ms=200)
        rig.start(n)
        port = rig.web_port
        with rig.env.engine.connect() as conn:
            from sqlalchemy import text

            slug, customer = conn.execute(text(
                "SELECT b.slug, c.id FROM business b JOIN customer c ON c.business_id = b.id "
                "WHERE b.id = :b ORDER BY c.id LIMIT 1"), {"b": rig.business_id}).one()
        cookie = session_cookie(rig.env, rig.business_id, customer)
        url = f"http://127.0.0.1:{port}/{slug}/"
        status, _ = check_page(url, cookie)
        if status != 200:
            raise RuntimeError(f"dashboard answered {status} before the drill")
        probe = PortalProbe(url, cookie)
        probe.start()
        rig.produce()
        rig.wait_flowing(n)
        _down, up = pg.restart(down_s=down_s, mode="immediate")
        result = rig.settle(up, timeout)
        probe_result = probe.stop(up)
        result.update(probe_result)
        if result["recovered_s"] is not None and probe_result["portal_recovered_s"] is not None:
            result["recovered_s"] = max(result["recovered_s"], probe_result["portal_recovered_s"])
        elif probe_result["portal_recovered_s"] is None:
            result["recovered_s"] = None
        result["processes_alive"] = {p.name: p.alive() for p in (rig.worker, rig.scheduler, rig.web)}
        return result
    finally:
        if rig is not None:
            rig.close()
        pg.destroy()


class PortalProbe(threading.Thread):
    """Polls the signed-in dashboard every 200 ms: when did it answer 200 again?"""

    def __init__(self, url: str, cookie: tuple[str, str]):
        super().__init__(daemon=True)
        self.url, self.cookie = url, cookie
        self.samples: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        from bench.dashboard import check_page

        while not self.halt.is_set():
            try:
                status, _ = check_page(self.url, self.cookie)
            except (OSError, urllib.error.URLError):
                status = 0
            self.samples.append((time.monotonic(), status))
            time.sleep(0.2)

    def stop(self, since: float) -> dict:
        self.halt.set()
        self.join(10)
        after = [(t, s) for t, s in self.samples if t >= since]
        first_ok = next((t for t, s in after if s == 200), None)
        errors = sum(1 for _, s in self.samples if s != 200)
        return {"portal_recovered_s": round(first_ok - since, 1) if first_ok else None,
                "portal_probe_errors": errors, "portal_probes": len(self.samples),
                "portal_last_status": self.samples[-1][1] if self.samples else None}
