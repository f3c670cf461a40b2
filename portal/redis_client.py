"""A process-wide synchronous Redis client for domain code (live events, locks).

Configured once at start-up by the web app, the workers and the scheduler
(``configure(url)``); tests configure it with their Redis. Unconfigured, it
falls back to ``REDIS_URL``.
"""

from __future__ import annotations

import os
import threading

import redis

_client: redis.Redis | None = None
_lock = threading.Lock()


def configure(url: str | None) -> redis.Redis | None:
    global _client
    with _lock:
        _client = redis.Redis.from_url(url) if url else None
    return _client


def get() -> redis.Redis | None:
    global _client
    if _client is None and os.environ.get("REDIS_URL") and os.environ.get("PORTAL_BROKER") != "stub":
        configure(os.environ["REDIS_URL"])
    return _client
