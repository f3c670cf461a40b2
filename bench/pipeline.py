"""Running the production worker (or the no-op baseline worker) against the
bench stores, producing booking events, and waiting until they are delivered."""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timezone

import redis
from sqlalchemy import select, text
from sqlalchemy.orm import joinedload

from bench import procs
from bench.env import BenchEnv
from portal.db import make_session_factory, system_session
from portal.models import Booking
from portal.settings import load_settings

TERMINAL = ("sent", "delivered", "failed", "skipped", "dead", "unknown")


def worker_defaults(env: BenchEnv) -> tuple[int, int]:
    """The production worker settings (WORKER_PROCESSES / WORKER_THREADS or their defaults)."""
    settings = load_settings(env.process_env())
    return settings.worker_processes, settings.worker_threads


def metrics_env() -> dict[str, str]:
    """Worker metrics stay on, as in production, but on a private port and
    directory: other worker sets on this machine use the default ones."""
    directory = tempfile.mkdtemp(prefix="bench-prom-")
    return {"dramatiq_prom_db": directory, "dramatiq_prom_host": "127.0.0.1",
            "dramatiq_prom_port": str(procs.free_port())}


def start_portal_worker(env: BenchEnv, processes: int, threads: int, extra_env: dict[str, str],
                        name: str = "worker") -> procs.Proc:
    metrics = metrics_env()
    proc = procs.portal(name, ["worker", "--processes", str(processes), "--threads", str(threads)],
                        env.process_env(**metrics, **extra_env))
    proc.temp_paths.append(metrics["dramatiq_prom_db"])
    return proc


def start_noop_worker(env: BenchEnv, processes: int, threads: int, name: str = "noop-worker") -> procs.Proc:
    # The same middleware as ``portal worker`` (which turns metrics on in prepare_worker_env).
    metrics = metrics_env()
    proc = procs.dramatiq(name, "bench.noop_actors", processes, threads, env.process_env(
        **metrics, PORTAL_WORKER_METRICS="1", PROMETHEUS_MULTIPROC_DIR=metrics["dramatiq_prom_db"]))
    proc.temp_paths.append(metrics["dramatiq_prom_db"])
    return proc


def produce_confirmations(env: BenchEnv, business_id: int, booking_ids: tuple[int, int],
                          threads: int = 4) -> float:
    """One booking confirmation per booking, each in its own transaction, the
    way the API writes it (``queue_notice`` in the booking's transaction,
    enqueued after commit), from a few threads as concurrent requests would.
    Returns the seconds it took."""
    from concurrent.futures import ThreadPoolExecutor

    from portal.outbox import queue_notice

    factory = make_session_factory(env.engine)
    lo, hi = booking_ids

    def one_event(booking_id: int) -> None:
        with system_session(factory) as session:
            booking = session.scalar(select(Booking).options(joinedload(Booking.customer))
                                     .where(Booking.id == booking_id, Booking.business_id == business_id))
            if booking is None:
                return
            queue_notice(session, kind="booking_confirmation", customer=booking.customer, booking=booking,
                         key=f"booking:{booking.id}:v{booking.version}")
            session.commit()

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one_event, range(lo, hi + 1)))
    return time.perf_counter() - start


def message_counts(env: BenchEnv, business_id: int, min_id: int = 0) -> dict[str, int]:
    with env.engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM message WHERE business_id = :b AND id > :m "
                                 "GROUP BY status"), {"b": business_id, "m": min_id}).all()
    return {status: count for status, count in rows}


def last_sent_at(env: BenchEnv, business_id: int, min_id: int = 0) -> datetime | None:
    with env.engine.connect() as conn:
        value = conn.scalar(text("SELECT max(sent_at) FROM message WHERE business_id = :b AND id > :m"),
                            {"b": business_id, "m": min_id})
    return value.replace(tzinfo=timezone.utc) if value else None


def sent_span_s(env: BenchEnv, business_id: int, min_id: int = 0) -> float | None:
    """Seconds from the first to the last ``sent_at`` of these messages."""
    with env.engine.connect() as conn:
        lo, hi = conn.execute(text("SELECT min(sent_at), max(sent_at) FROM message WHERE business_id = :b "
                                   "AND id > :m"), {"b": business_id, "m": min_id}).one()
    return (hi - lo).total_seconds() if lo and hi and hi > lo else None


def max_message_id(env: BenchEnv) -> int:
    with env.engine.connect() as conn:
        return conn.scalar(text("SELECT coalesce(max(id), 0) FROM message")) or 0


def wait_messages(env: BenchEnv, business_id: int, expected: int, timeout: float, min_id: int = 0,
                  worker: procs.Proc | None = None, poll: float = 0.2) -> tuple[dict[str, int], float, bool]:
    """Poll until ``expected`` messages reached a final status. Returns
    (counts by status, seconds waited, finished)."""
    start = time.perf_counter()
    deadline = start + timeout
    counts: dict[str, int] = {}
    while time.perf_counter() < deadline:
        counts = message_counts(env, business_id, min_id)
        if sum(counts.get(s, 0) for s in TERMINAL) >= expected:
            return counts, time.perf_counter() - start, True
        if worker is not None and not worker.alive():
            raise RuntimeError(f"{worker.name} died:\n{worker.tail()}")
        time.sleep(poll)
    return counts, time.perf_counter() - start, False


def noop_counter(env: BenchEnv) -> redis.Redis:
    return redis.Redis.from_url(env.redis_url)


def wait_counter(client: redis.Redis, key: str, expected: int, timeout: float,
                 worker: procs.Proc | None = None) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if int(client.get(key) or 0) >= expected:
            return True
        if worker is not None and not worker.alive():
            raise RuntimeError(f"{worker.name} died:\n{worker.tail()}")
        time.sleep(0.02)
    return False
