"""Dramatiq broker set-up, shared by the web app (which enqueues), workers and the scheduler.

Actors are declared against the global broker at import time, so
``workers`` calls ``setup_broker()`` before declaring any actor.
"""

from __future__ import annotations

import os
from pathlib import Path

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

# Dramatiq's defaults (60 s heartbeat timeout, maintenance on 0.1% of
# commands) leave a kill -9'd worker's messages unacked for many minutes on a
# quiet queue. A 15 s timeout checked on 10% of commands redelivers them well
# within a minute; the outbox row's status keeps the redelivery from sending twice.
HEARTBEAT_TIMEOUT_MS = 15_000
MAINTENANCE_CHANCE = 100_000  # out of a million commands
DEAD_MESSAGE_TTL_MS = 14 * 24 * 3600 * 1000
NAMESPACE = "portal"


def middleware() -> list:
    from portal.queues import DeadLetterErrors, WorkerRegistry  # imported here: portal.queues imports this module

    # Retries are configured per actor (max_retries, backoff, retry_when).
    return [AgeLimit(), TimeLimit(time_limit=120_000), ShutdownNotifications(), Callbacks(), Pipelines(), Retries(),
            DeadLetterErrors(), WorkerRegistry()]


def prepare_worker_env(env=os.environ) -> bool:
    """Called by ``portal worker`` before Dramatiq starts: worker metrics are on unless WORKER_METRICS=0.

    Dramatiq's Prometheus middleware forks an exposition server on
    ``dramatiq_prom_host``:``dramatiq_prom_port`` (default 0.0.0.0:9191). The web
    app, the scheduler and tests never get it (they do not call this); nor does
    ``portal dev`` unless asked, so it never fights over the port.
    """
    default = "0" if env.get("PORTAL_DEV") == "1" else "1"
    if env.get("WORKER_METRICS", default).strip().lower() in ("0", "false", "no", "off", ""):
        return False
    from dramatiq.middleware.prometheus import DB_PATH

    db_path = env.get("dramatiq_prom_db") or DB_PATH
    env["PORTAL_WORKER_METRICS"] = "1"
    # Our own counters (portal.metrics) then land in the same multiprocess
    # files, so the workers' exposition server exports them too.
    env["PROMETHEUS_MULTIPROC_DIR"] = db_path
    Path(db_path).mkdir(parents=True, exist_ok=True)
    for stale in Path(db_path).glob("*.db"):  # a previous run's counters
        stale.unlink(missing_ok=True)
    return True


def worker_metrics() -> list:
    if os.environ.get("PORTAL_WORKER_METRICS") != "1":
        return []
    from dramatiq.middleware.prometheus import Prometheus

    return [Prometheus()]


def build_broker(redis_url: str | None) -> dramatiq.Broker:
    if not redis_url or os.environ.get("PORTAL_BROKER") == "stub":
        return StubBroker(middleware=middleware())
    return RedisBroker(
        url=redis_url,
        namespace=NAMESPACE,
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
        dead_message_ttl=DEAD_MESSAGE_TTL_MS,
        middleware=middleware() + worker_metrics(),
    )


def setup_broker() -> dramatiq.Broker:
    """Install the broker named by the environment (REDIS_URL, or a StubBroker in tests)."""
    broker = build_broker(os.environ.get("REDIS_URL"))
    dramatiq.set_broker(broker)
    return broker
