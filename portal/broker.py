"""Dramatiq broker set-up, shared by the web app (which enqueues), workers and the scheduler.

Actors are declared against the global broker at import time, so
``workers`` calls ``setup_broker()`` before declaring any actor.
"""

from __future__ import annotations

import os

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
    # Retries are configured per actor (max_retries, backoff, retry_when).
    return [AgeLimit(), TimeLimit(time_limit=120_000), ShutdownNotifications(), Callbacks(), Pipelines(), Retries()]


def build_broker(redis_url: str | None) -> dramatiq.Broker:
    if not redis_url or os.environ.get("PORTAL_BROKER") == "stub":
        return StubBroker(middleware=middleware())
    return RedisBroker(
        url=redis_url,
        namespace=NAMESPACE,
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
        dead_message_ttl=DEAD_MESSAGE_TTL_MS,
        middleware=middleware(),
    )


def setup_broker() -> dramatiq.Broker:
    """Install the broker named by the environment (REDIS_URL, or a StubBroker in tests)."""
    broker = build_broker(os.environ.get("REDIS_URL"))
    dramatiq.set_broker(broker)
    return broker
