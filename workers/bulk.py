"""Invitations outside a web request: Dramatiq actors and ``portal invite``.

- ``invite_customer(business_id, customer_id, force)``: one customer by internal ids.
- ``invite_external(business_slug_or_id, customer_external_id, force)``: what
  ``portal.invitations.enqueue_invitation`` queues for the booking system.
- ``portal invite SLUG --all | --customer ID [--force] [--restart]``: walks the
  business's customers in id order with a progress bar, inviting each one in its
  own transaction and saving a checkpoint (the last customer id done) in Redis
  after each, so an interrupted run continues where it stopped. Customers
  invited within the cooldown are skipped (unless ``--force``).

Sends are throttled to ``INVITE_RATE_PER_S`` across all processes (evenly
spaced slots taken from Redis, shared by the CLI and the actors) so a bulk run
stays inside the email and SMS providers' rate limits.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import dramatiq
from sqlalchemy import func, select
from tqdm import tqdm

from portal import redis_client
from portal.db import scope_to, system_session, tenant_session
from portal.errors import NotFound
from portal.invitations import find_business, find_customer, invite
from portal.models import Customer, utcnow

log = logging.getLogger(__name__)
RATE_KEY = "portal:invite-rate"
CHECKPOINT_TTL_S = 14 * 24 * 3600
BATCH = 200


@dataclass
class Config:
    session_factory: object = None
    settings: object = None
    limiters: dict = field(default_factory=dict)


_config = Config()


def configure(*, session_factory=None, settings=None) -> None:
    """Tests and worker start-up; otherwise built from the environment on first use."""
    if session_factory is not None:
        _config.session_factory = session_factory
    if settings is not None:
        _config.settings = settings
    _config.limiters.clear()


def _runtime():
    if _config.settings is None:
        from portal.settings import load_settings

        _config.settings = load_settings()
    if _config.session_factory is None:
        from portal.db import worker_session_factory

        _config.session_factory = worker_session_factory(_config.settings.database_url,
                                                         _config.settings.worker_threads)
    return _config.session_factory, _config.settings


# --- rate limit ------------------------------------------------------------------


class LocalBucket:
    """One process's throttle, used when no Redis is configured."""

    def __init__(self, rate_per_s: int):
        self.interval = 1.0 / max(rate_per_s, 1)
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next_at)
            self.next_at = at + self.interval
        if at > now:
            time.sleep(at - now)


class SharedLimit:
    """Evenly spaced slots, ``1/rate_per_s`` apart, shared by every process on this Redis.

    The key holds the next free slot's time; each caller takes one atomically and
    sleeps until it. Unlike a per-second window this never bursts 2x across a
    second boundary, which is what providers' per-second limits count.
    """

    SCRIPT = """
    local now = tonumber(ARGV[1])
    local interval = tonumber(ARGV[2])
    local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
    redis.call('SET', KEYS[1], tostring(slot + interval), 'PX', 60000)
    return tostring(slot)
    """

    def __init__(self, client, rate_per_s: int):
        self.interval_ms = 1000.0 / max(rate_per_s, 1)
        self.take = client.register_script(self.SCRIPT)

    def reserve(self) -> float:
        """Take the next slot; returns the seconds to wait for it."""
        now_ms = time.time() * 1000
        slot_ms = float(self.take(keys=[RATE_KEY], args=[repr(now_ms), repr(self.interval_ms)]))
        return max(slot_ms - now_ms, 0.0) / 1000

    def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)


def throttle(rate_per_s: int):
    limiter = _config.limiters.get(rate_per_s)
    if limiter is None:
        client = redis_client.get()
        limiter = SharedLimit(client, rate_per_s) if client is not None else LocalBucket(rate_per_s)
        _config.limiters[rate_per_s] = limiter
    return limiter


# --- actors ----------------------------------------------------------------------


def _invite(business_id: int, customer_id: int, force: bool, *, source: str, key: str | None = None,
            wait: bool = True):
    factory, settings = _runtime()
    with tenant_session(factory, business_id) as session:
        customer = session.get(Customer, customer_id)
        if customer is None:
            log.warning("invitation dropped: no customer %s in business %s", customer_id, business_id)
            return None
        if wait and (force or _due(customer, settings.invite_cooldown_s)):
            throttle(settings.invite_rate_per_s).wait()
        result = invite(session, customer, cooldown_s=settings.invite_cooldown_s, force=force, source=source,
                        key=key)
        session.commit()
        return result


def _due(customer: Customer, cooldown_s: int) -> bool:
    last = customer.last_invited_at
    return last is None or (utcnow() - last).total_seconds() >= cooldown_s


@dramatiq.actor(queue_name="invitations", max_retries=5, min_backoff=5_000, max_backoff=300_000)
def invite_customer(business_id: int, customer_id: int, force: bool = False) -> None:
    """Invite one customer (internal ids), subject to the cooldown unless ``force``."""
    _invite(business_id, customer_id, force, source="job")


@dramatiq.actor(queue_name="invitations", max_retries=5, min_backoff=5_000, max_backoff=300_000)
def invite_external(business: str | int, customer_external_id: str, force: bool = False) -> None:
    """Invite by the business's slug (or id) and the booking system's customer id."""
    factory, _settings = _runtime()
    with system_session(factory) as session:
        try:
            found = find_business(session, business)
            scope_to(session, found.id)
            customer = find_customer(session, found.id, customer_external_id)
        except NotFound as exc:
            log.warning("invitation dropped: %s", exc)  # retrying will not make it exist
            return
        ids = (found.id, customer.id)
    _invite(*ids, force, source="job")


# --- bulk ----------------------------------------------------------------------------


class Checkpoint:
    """The last customer id a bulk run finished, kept in Redis between runs."""

    def __init__(self, client, business_id: int, force: bool):
        self.client = client
        self.key = f"portal:invite-checkpoint:{business_id}:{'force' if force else 'cooldown'}"

    def load(self) -> dict | None:
        if self.client is None:
            return None
        raw = self.client.get(self.key)
        return json.loads(raw) if raw else None

    def save(self, run: str, last_id: int) -> None:
        if self.client is not None:
            self.client.set(self.key, json.dumps({"run": run, "last_id": last_id}), ex=CHECKPOINT_TTL_S)

    def clear(self) -> None:
        if self.client is not None:
            self.client.delete(self.key)


@dataclass
class BulkReport:
    total: int = 0
    invited: int = 0
    skipped: dict = field(default_factory=dict)
    resumed_after: int | None = None

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(self.skipped.items()))
        return f"invited {self.invited} of {self.total}" + (f"; skipped {skipped}" if skipped else "")


def run_bulk(slug: str, *, customer: str | None = None, force: bool = False, restart: bool = False,
             rate_per_s: int | None = None, progress_file=None) -> BulkReport:
    """Invite one customer or all of a business's customers (see module doc)."""
    factory, settings = _runtime()
    with system_session(factory) as session:
        business = session.scalar(select_business(slug))
        if business is None:
            raise NotFound(f"no business with slug {slug!r}")
        business_id = business.id
        single = find_customer(session, business_id, customer).id if customer is not None else None
    rate = rate_per_s or settings.invite_rate_per_s
    report = BulkReport()
    checkpoint = Checkpoint(redis_client.get(), business_id, force)
    state = None if (restart or single is not None) else checkpoint.load()
    run = state["run"] if state else uuid.uuid4().hex[:12]
    after = state["last_id"] if state else 0
    report.resumed_after = after or None

    with system_session(factory) as session:
        scope_to(session, business_id)
        base = select(Customer.id).where(Customer.business_id == business_id)
        if single is not None:
            base = base.where(Customer.id == single)
        report.total = session.scalar(select(func.count()).select_from(base.where(Customer.id > after).subquery()))

    bar = tqdm(total=report.total, desc=f"inviting {slug}", unit="customer", file=progress_file or sys.stderr,
               dynamic_ncols=True, mininterval=0.2)
    try:
        last = after
        while True:
            with system_session(factory) as session:
                scope_to(session, business_id)
                ids = session.scalars(base.where(Customer.id > last).order_by(Customer.id).limit(BATCH)).all()
            if not ids:
                break
            for customer_id in ids:
                result = _bulk_one(business_id, customer_id, force, run, rate)
                if result is not None and result.queued:
                    report.invited += 1
                elif result is not None:
                    report.skipped[result.reason] = report.skipped.get(result.reason, 0) + 1
                last = customer_id
                if single is None:
                    checkpoint.save(run, last)
                bar.update(1)
                bar.set_postfix(invited=report.invited, skipped=sum(report.skipped.values()), refresh=False)
    finally:
        bar.close()
    if single is None:
        checkpoint.clear()
    return report


def _bulk_one(business_id: int, customer_id: int, force: bool, run: str, rate: int):
    factory, settings = _runtime()
    with tenant_session(factory, business_id) as session:
        customer = session.get(Customer, customer_id)
        if customer is None:
            return None
        if force or _due(customer, settings.invite_cooldown_s):
            throttle(rate).wait()
        # The run id in the key: a customer re-processed after an interruption
        # gets the same outbox key, so even a forced run never sends twice.
        result = invite(session, customer, cooldown_s=settings.invite_cooldown_s, force=force, source="bulk",
                        key=f"customer:{customer_id}:bulk:{run}")
        session.commit()
        return result


def select_business(slug: str):
    from portal.models import Business

    return select(Business).where(Business.slug == slug)


def cmd_invite(args, settings, session_factory) -> int:
    """``portal invite`` (declared in ``portal.cli``, which loads the settings first)."""
    configure(session_factory=session_factory, settings=settings)
    if settings.redis_url:
        redis_client.configure(settings.redis_url)
    else:
        print("portal: no Redis configured: invitations are written to the outbox and sent once the "
              "workers' sweeper picks them up", file=sys.stderr)

    try:
        report = run_bulk(args.slug, customer=args.customer, force=args.force, restart=args.restart,
                          rate_per_s=args.rate)
    except KeyboardInterrupt:
        print("portal: interrupted; run the same command again to continue where it stopped", file=sys.stderr)
        return 130
    print(report.summary())
    return 0
