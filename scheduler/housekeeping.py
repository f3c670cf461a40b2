"""Housekeeping: the sweeper (nothing stays stuck) and the purge (nothing stays forever).

The database is the source of truth and Redis only a delivery mechanism, so
the sweeper re-enqueues from the rows: a message still ``queued`` a grace
period after it could have gone (Redis lost it, or the enqueue after commit
failed), a message ``sending`` past its lease (its worker died), a webhook
delivery whose next attempt is overdue. Re-enqueueing is always safe: the
worker re-checks the row's status and lease before sending anything.
"""

from __future__ import annotations

import importlib
import logging
from datetime import datetime, timedelta
from typing import Callable

import redis
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from messages import registry
from portal import outbox
from portal import redis_client as shared_redis
from portal.db import system_session
from portal.models import (
    IdempotencyRecord,
    MagicLinkToken,
    Message,
    MessageEvent,
    PortalSession,
    ProcessedEvent,
    Reminder,
    WebhookDelivery,
    utcnow,
)

log = logging.getLogger(__name__)

SWEEP_LIMIT = 1000    # rows of each kind per sweep; the next sweep takes the rest
DELETE_BATCH = 5000   # rows per delete transaction, so a big prune never holds long locks
REQUEUE_CAP_S = 3600  # longest wait between two re-enqueues of one stuck row


class Throttle:
    """Re-enqueue one row at most once per hold period, doubling it each time (up to an hour).

    Without it, a message waiting for workers that are down would be pushed
    again every sweep. The marks live in Redis: if Redis is wiped, so are
    they, and the sweeper re-enqueues at once, which is what we want then.
    """

    def __init__(self, client: redis.Redis | None, base_s: int, cap_s: int = REQUEUE_CAP_S):
        self.client = client
        self.base_s = max(1, base_s)
        self.cap_s = cap_s

    def allow(self, name: str) -> bool:
        if self.client is None:
            return True
        hold, count = f"portal:sweep:{name}", f"portal:sweep:{name}:n"
        try:
            if self.client.exists(hold):
                return False
            n = int(self.client.incr(count))
            self.client.expire(count, 24 * 3600)
            self.client.set(hold, 1, ex=min(self.base_s * 2 ** min(n - 1, 16), self.cap_s))
        except redis.RedisError:
            log.warning("sweeper: Redis unavailable for the re-enqueue throttle", exc_info=True)
        return True


def sweep(session_factory: Callable[[], Session], settings, *, redis_client: redis.Redis | None = None,
          now: datetime | None = None) -> dict[str, int]:
    """Re-enqueue lost or stuck messages and overdue webhook deliveries. Returns counts."""
    now = now or utcnow()
    grace = timedelta(seconds=settings.outbox_grace_s)
    lease = timedelta(seconds=settings.sending_lease_s)
    throttle = Throttle(redis_client if redis_client is not None else shared_redis.get(), settings.outbox_grace_s)
    with system_session(session_factory) as session:
        lost = session.execute(
            select(Message.id, Message.kind).where(
                Message.status == "queued", Message.updated_at <= now - grace,
                or_(Message.not_before.is_(None), Message.not_before <= now - grace),
            ).order_by(Message.id).limit(SWEEP_LIMIT)
        ).all()
        stuck = session.execute(
            select(Message.id, Message.kind).where(
                Message.status == "sending",
                or_(Message.lease_until <= now,
                    and_(Message.lease_until.is_(None), Message.updated_at <= now - lease)),
            ).order_by(Message.id).limit(SWEEP_LIMIT)
        ).all()
        hooks = session.scalars(
            select(WebhookDelivery.id).where(
                WebhookDelivery.status == "pending",
                or_(WebhookDelivery.next_attempt_at <= now - grace,
                    and_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.created_at <= now - grace)),
            ).order_by(WebhookDelivery.id).limit(SWEEP_LIMIT)
        ).all()
    counts = {"lost": 0, "stuck": 0, "webhooks": 0}
    for what, rows in (("lost", lost), ("stuck", stuck)):
        for message_id, kind in rows:
            if throttle.allow(f"message:{message_id}"):
                outbox.enqueue(message_id, urgent=registry.is_urgent(kind))
                counts[what] += 1
    actor = _webhook_actor() if hooks else None
    for delivery_id in hooks:
        if actor is not None and throttle.allow(f"webhook:{delivery_id}"):
            try:
                actor.send(delivery_id)
                counts["webhooks"] += 1
            except Exception:
                log.warning("sweeper: could not enqueue webhook delivery %s", delivery_id, exc_info=True)
    if any(counts.values()):
        log.info("sweeper re-enqueued %s lost and %s stuck messages, %s webhook deliveries",
                 counts["lost"], counts["stuck"], counts["webhooks"])
    return counts


def _webhook_actor():
    try:
        module = importlib.import_module("workers.webhooks")
    except ImportError:
        return None
    return getattr(module, "deliver_webhook", None)


def purge(session_factory: Callable[[], Session], settings, *, now: datetime | None = None) -> dict[str, int]:
    """Delete expired sign-in material and API idempotency keys, and delivery logs older than
    the retention. Returns counts."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.delivery_log_retention_days)
    idle = now - timedelta(seconds=settings.session_idle_timeout_s)
    counts = {
        "tokens": _delete(session_factory, MagicLinkToken, MagicLinkToken.expires_at <= now),
        "sessions": _delete(session_factory, PortalSession,
                            or_(PortalSession.expires_at <= now, PortalSession.last_seen_at <= idle)),
        "messages": _delete(session_factory, Message, Message.created_at <= cutoff,
                            children=[(MessageEvent, MessageEvent.message_id)]),
        "processed_events": _delete(session_factory, ProcessedEvent, ProcessedEvent.created_at <= cutoff),
        "webhook_deliveries": _delete(session_factory, WebhookDelivery, WebhookDelivery.created_at <= cutoff,
                                      WebhookDelivery.status != "pending"),
        "reminders": _delete(session_factory, Reminder, Reminder.due_at <= cutoff, Reminder.status != "planned"),
        "idempotency_keys": _delete(session_factory, IdempotencyRecord, IdempotencyRecord.created_at
                                    <= now - timedelta(seconds=settings.idempotency_key_ttl_s)),
    }
    if any(counts.values()):
        log.info("purge: %s", ", ".join(f"{n} {name}" for name, n in counts.items() if n))
    return counts


def _delete(session_factory, model, *criteria, children=()) -> int:
    total = 0
    while True:
        with system_session(session_factory) as session:
            ids = session.scalars(select(model.id).where(*criteria).order_by(model.id).limit(DELETE_BATCH)).all()
            if not ids:
                return total
            for child, column in children:
                session.execute(delete(child).where(column.in_(ids)).execution_options(synchronize_session=False))
            session.execute(delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False))
            session.commit()
        total += len(ids)
        if len(ids) < DELETE_BATCH:
            return total
