"""Outbound webhooks: telling the business's booking system what customers changed.

Portal code calls ``record_event`` inside the transaction that made the change:

    record_event(session, business, "booking.rescheduled", {"booking": "bk-12", ...})

It writes a ``WebhookDelivery`` row (only when the business has a webhook URL) and
enqueues ``workers.webhooks.deliver_webhook`` after the transaction commits, so a
rolled-back change never announces itself. The worker signs and posts the body,
retrying network errors, 429 and 5xx with backoff, and logs every attempt on the row.

Body: ``{"id", "type", "created_at", "data"}``. Headers: ``X-Portal-Timestamp``
(Unix seconds) and ``X-Portal-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db import after_commit
from portal.errors import Conflict, NotFound
from portal.models import Business, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "booking.rescheduled",
    "booking.cancelled",
    "quote.approved",
    "quote.declined",
    "customer.preferences_changed",
    "customer.payment_method_changed",
)
SIGNATURE_HEADER = "X-Portal-Signature"
TIMESTAMP_HEADER = "X-Portal-Timestamp"
SIGNATURE_VERSION = "v1"


def record_event(session: Session, business: Business | int, event_type: str, payload: dict) -> WebhookDelivery | None:
    """Queue ``event_type`` for the business's webhook URL; None if it has none.

    ``payload`` must be JSON-serialisable; it becomes the body's ``data``.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if isinstance(business, int):
        business = session.get(Business, business)
    if business is None or not business.webhook_url:
        return None
    json.dumps(payload)  # fail here, in the caller's transaction, not later in the worker
    delivery = WebhookDelivery(
        business_id=business.id, event_id=f"evt_{uuid.uuid4().hex}", event_type=event_type,
        payload=payload, url=business.webhook_url, status="pending", next_attempt_at=utcnow(),
    )
    session.add(delivery)
    session.flush()
    delivery_id = delivery.id
    after_commit(session, lambda: enqueue(delivery_id))
    return delivery


def enqueue(delivery_id: int, *, delay_ms: int | None = None) -> None:
    from workers.webhooks import deliver_webhook

    try:
        if delay_ms:
            deliver_webhook.send_with_options(args=(delivery_id,), delay=delay_ms)
        else:
            deliver_webhook.send(delivery_id)
    except Exception:  # the row stays pending; the sweeper re-enqueues pending deliveries
        log.warning("could not enqueue webhook delivery %s", delivery_id, exc_info=True)


def redeliver_overdue(session: Session, *, grace_s: int = 600, limit: int = 500) -> int:
    """Re-enqueue pending deliveries whose next attempt is ``grace_s`` overdue (a lost
    enqueue, a worker killed mid-attempt). For the scheduler's housekeeping; a system session."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    ids = session.scalars(select(WebhookDelivery.id).where(
        WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= cutoff)
        .order_by(WebhookDelivery.id).limit(limit)).all()
    for delivery_id in ids:
        enqueue(delivery_id)
    return len(ids)


def redeliver(session: Session, business_id: int, event_id: str) -> WebhookDelivery:
    """Send an event again because the booking system asks (it missed it, or its endpoint was
    down past the last retry): a new round of attempts, to the business's current webhook URL,
    with the same body and id. A delivery still pending is left to its round."""
    delivery = session.scalar(select(WebhookDelivery).where(WebhookDelivery.business_id == business_id,
                                                           WebhookDelivery.event_id == event_id).with_for_update())
    if delivery is None:
        raise NotFound("unknown webhook event")
    if delivery.status == "pending":
        return delivery
    url = session.scalar(select(Business.webhook_url).where(Business.id == business_id))
    if not url:
        raise Conflict("no webhook URL is set (PUT /api/v1/settings with webhook_url first)")
    delivery.url, delivery.status, delivery.attempts = url, "pending", 0
    delivery.next_attempt_at, delivery.delivered_at = utcnow(), None
    session.flush()
    delivery_id = delivery.id
    after_commit(session, lambda: enqueue(delivery_id))
    return delivery


def body_for(delivery: WebhookDelivery) -> bytes:
    """The exact bytes posted (stable across retries, so the receiver can dedupe by id)."""
    doc = {"id": delivery.event_id, "type": delivery.event_type,
           "created_at": delivery.created_at.isoformat().replace("+00:00", "Z"), "data": delivery.payload}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Portal-Signature`` value for this timestamp and body."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance_s: int = 300,
           now: float | None = None) -> bool:
    """What a receiver does: check the signature and that the timestamp is recent."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature or "")


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    ts = int(now if now is not None else time.time())
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(secret, ts, body), "User-Agent": "customer-portal-webhooks/1"}
