"""One active scheduler: a Redis lock with an expiry, renewed every few seconds.

Several ``portal scheduler`` processes may run; the one holding the lock acts,
the others stand by and retry. If the leader dies its lock expires after
``ttl_s`` and a standby takes over; a clean stop releases it at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

import redis
from redis.exceptions import LockError

log = logging.getLogger(__name__)

LOCK_NAME = "portal:scheduler:leader"
LOCK_TTL_S = 30
STATUS_KEY = "portal:scheduler:last"  # hash: job -> {"at", "by", "result"}, written by the leader, read by /ops


class Leader:
    def __init__(self, client: redis.Redis, *, name: str = LOCK_NAME, ttl_s: float = LOCK_TTL_S):
        self.ttl_s = ttl_s
        # thread_local=False: APScheduler renews from whichever pool thread runs the job.
        self.lock = client.lock(name, timeout=ttl_s, blocking=False, thread_local=False)
        # Readable token, so an operator can see who leads: GET portal:scheduler:leader.
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._mutex = threading.Lock()
        self._valid_until = 0.0  # monotonic time up to which our lock surely still holds
        self._redis_down = False

    @property
    def is_leader(self) -> bool:
        """True while our last renewal is younger than the lock's expiry (with a safety margin)."""
        return time.monotonic() < self._valid_until

    def tick(self) -> bool:
        """Renew the lock if we hold it, else try to take it. Returns whether we lead now."""
        with self._mutex:
            was_leader = self.is_leader
            started = time.monotonic()
            try:
                held = self._renew() or self.lock.acquire(blocking=False, token=self.identity)
                if self._redis_down:
                    log.info("scheduler %s: Redis is back", self.identity)
                self._redis_down = False
            except redis.RedisError as exc:
                # One line per outage, not a traceback every few seconds.
                if not self._redis_down:
                    log.warning("scheduler: Redis unavailable (%s); standing by until it answers", exc)
                self._redis_down = True
                held = False
            # Renewed at `started` at the latest; stop acting a little before it can expire.
            self._valid_until = started + self.ttl_s * 0.8 if held else 0.0
            if held and not was_leader:
                log.info("scheduler %s is now the active scheduler", self.identity)
            elif was_leader and not held:
                log.warning("scheduler %s lost the lock; standing by", self.identity)
            return held

    def _renew(self) -> bool:
        if self.lock.local.token is None:
            return False
        try:
            return bool(self.lock.reacquire())
        except LockError:  # expired and possibly taken by another scheduler
            self.lock.local.token = None
            return False

    def release(self) -> None:
        """Give the lock up now (clean shutdown), so a standby takes over without waiting."""
        with self._mutex:
            self._valid_until = 0.0
            if self.lock.local.token is None:
                return
            try:
                self.lock.release()
            except (LockError, redis.RedisError):
                pass
