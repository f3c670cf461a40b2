"""What the dashboard reads from the database: throughput, outcomes, search.

Plain synchronous SQLAlchemy on a system session (operators see every
business); the handlers run these off the event loop.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Integer, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session, selectinload

from portal import phones
from portal.models import Business, Customer, Message, MessageEvent, WebhookDelivery
from portal.outbox import record_status

# window name -> (span, bucket) in seconds: an hour by minute, a day by 5 minutes.
WINDOWS = {"hour": (3600, 60), "day": (86400, 300), "week": (7 * 86400, 3600)}
SERIES = {"sent": ("sent",), "delivered": ("delivered",), "failed": ("failed", "dead")}
OUTCOMES = ("queued", "sent", "delivered", "bounced", "failed", "skipped", "unknown")
RETRYABLE = ("failed", "dead")
SEARCH_LIMIT = 50


def _epoch_bucket(session: Session, column, seconds: int):
    """Whole buckets since the epoch, computed by the database (SQLite or PostgreSQL).

    Timestamps are stored as naive UTC, which both read as UTC here.
    """
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / seconds), Integer)
    return cast(func.strftime("%s", column), Integer) // seconds


def throughput(session: Session, window: str, now: datetime | None = None) -> dict:
    """Sends, deliveries and failures per bucket of the window, each at the moment it happened.

    Counted from the status history, not the messages' latest status: a message
    sent at 10:00 and delivered at 10:01 is a send at 10:00 and a delivery at
    10:01 (counted by latest status, it was only a delivery, and sends looked
    like "not yet delivered"). A message sent twice (a lease ran out) counts
    twice. The (status, created_at) index serves the query.
    """
    span, step = WINDOWS[window]
    now = now or datetime.now(timezone.utc)
    end = int(now.timestamp()) // step + 1
    start = end - span // step
    bucket = _epoch_bucket(session, MessageEvent.created_at, step)
    statuses = [s for group in SERIES.values() for s in group]
    rows = session.execute(
        select(bucket, MessageEvent.status, func.count())
        .where(MessageEvent.status.in_(statuses),
               MessageEvent.created_at >= datetime.fromtimestamp(start * step, timezone.utc))
        .group_by(bucket, MessageEvent.status)
    ).all()
    series = {name: [0] * (end - start) for name in SERIES}
    for b, status, count in rows:
        index = int(b) - start
        if not 0 <= index < end - start:
            continue
        for name, group in SERIES.items():
            if status in group:
                series[name][index] += count
    return {"window": window, "bucket_s": step, "start": datetime.fromtimestamp(start * step, timezone.utc).isoformat(),
            "series": series, "totals": {name: sum(values) for name, values in series.items()}}


def _outcome_expr():
    failed = Message.status.in_(("failed", "dead"))
    bounce = func.lower(func.coalesce(Message.status_reason, "")).like("%bounce%")
    return case(
        (Message.status == "bounced", "bounced"),
        (and_(failed, bounce), "bounced"),
        (failed, "failed"),
        (Message.status == "sending", "queued"),
        else_=Message.status,
    )


def _empty() -> dict:
    return {name: 0 for name in OUTCOMES}


def outcomes(session: Session, window: str, now: datetime | None = None) -> dict:
    """Delivery outcomes of the messages created in the window, per channel and per business."""
    span, _ = WINDOWS[window]
    since = (now or datetime.now(timezone.utc)) - timedelta(seconds=span)
    outcome = _outcome_expr()
    by_channel: dict[str, dict] = {}
    for channel, name, count in session.execute(
        select(Message.channel, outcome, func.count()).where(Message.created_at >= since)
        .group_by(Message.channel, outcome)
    ):
        by_channel.setdefault(channel, _empty())[name if name in OUTCOMES else "unknown"] += count
    by_business: dict[int, dict] = {}
    for business_id, name, count in session.execute(
        select(Message.business_id, outcome, func.count()).where(Message.created_at >= since)
        .group_by(Message.business_id, outcome)
    ):
        by_business.setdefault(business_id, _empty())[name if name in OUTCOMES else "unknown"] += count
    names = dict(session.execute(select(Business.id, Business.slug).where(Business.id.in_(list(by_business)))).all())
    businesses = sorted(
        ({"business": names.get(bid, str(bid)), **counts} for bid, counts in by_business.items()),
        key=lambda row: (-sum(row[n] for n in OUTCOMES), row["business"]),
    )
    channels = [{"channel": ch, **counts} for ch, counts in sorted(by_channel.items())]
    return {"window": window, "columns": list(OUTCOMES), "channels": channels, "businesses": businesses[:50]}


RECENT_FAILURES = 10


def webhooks(session: Session, now: datetime | None = None) -> dict:
    """Outbound webhooks to the booking systems: how many wait for a retry, how many gave up
    in the last day, and the latest failures with their reason (a business's endpoint down)."""
    since = (now or datetime.now(timezone.utc)) - timedelta(days=1)
    pending = session.scalar(select(func.count()).select_from(WebhookDelivery)
                             .where(WebhookDelivery.status == "pending")) or 0
    failed = session.scalar(select(func.count()).select_from(WebhookDelivery)
                            .where(WebhookDelivery.status == "failed", WebhookDelivery.created_at >= since)) or 0
    rows = session.execute(
        select(WebhookDelivery, Business.slug).join(Business, Business.id == WebhookDelivery.business_id)
        .where(WebhookDelivery.status == "failed").order_by(WebhookDelivery.id.desc()).limit(RECENT_FAILURES)).all()
    return {"pending": pending, "failed_last_day": failed, "recent_failures": [
        {"business": slug, "event_id": d.event_id, "type": d.event_type, "attempts": d.attempts,
         "error": d.last_error or (f"HTTP {d.last_status_code}" if d.last_status_code else ""),
         "created_at": d.created_at.isoformat()} for d, slug in rows]}


def message_counts(session: Session) -> list[tuple[str, str, int]]:
    """(status, channel, count) over every message, for the /metrics gauge."""
    return [tuple(row) for row in session.execute(
        select(Message.status, Message.channel, func.count()).group_by(Message.status, Message.channel))]


def search(session: Session, *, business: str = "", customer: str = "", recipient: str = "",
           limit: int = SEARCH_LIMIT) -> list[dict]:
    """Messages matching every given criterion, newest first, each with its status history.

    No criterion: the latest messages.
    """
    stmt = select(Message).options(selectinload(Message.events)).order_by(Message.id.desc()).limit(limit)
    business, customer, recipient = business.strip(), customer.strip(), recipient.strip()
    if business:
        stmt = stmt.join(Business, Business.id == Message.business_id).where(Business.slug == business.lower())
    if customer:
        needle = customer.lower()
        stmt = stmt.join(Customer, Customer.id == Message.customer_id).where(or_(
            Customer.external_id == customer,
            func.lower(Customer.email) == needle,
            func.lower(Customer.name).contains(needle, autoescape=True),
        ))
    if recipient:
        # SMS recipients are stored as E.164: "514-555-0177" finds "+15145550177" too.
        needles = {recipient.lower(), (phones.as_e164(recipient) or "").lower()} - {""}
        stmt = stmt.where(or_(*(func.lower(Message.recipient).contains(n, autoescape=True) for n in sorted(needles))))
    messages = session.scalars(stmt).all()
    slugs = dict(session.execute(
        select(Business.id, Business.slug).where(Business.id.in_({m.business_id for m in messages}))).all())
    customers = {c.id: c for c in session.scalars(
        select(Customer).where(Customer.id.in_({m.customer_id for m in messages if m.customer_id})))}
    results = []
    for m in messages:
        c = customers.get(m.customer_id)
        results.append({
            "id": m.id, "business": slugs.get(m.business_id, ""), "kind": m.kind, "channel": m.channel,
            "recipient": m.recipient, "status": m.status, "status_reason": m.status_reason, "attempts": m.attempts,
            "provider": m.provider, "provider_id": m.provider_id,
            "customer": {"external_id": c.external_id, "name": c.name} if c else None,
            "created_at": m.created_at.isoformat(), "updated_at": m.updated_at.isoformat(),
            "events": [{"status": e.status, "detail": e.detail, "at": e.created_at.isoformat()} for e in m.events],
        })
    return results


def reset_for_retry(session: Session, message_id: int) -> bool:
    """Put a failed message back to queued so the retried delivery may send it."""
    message = session.get(Message, message_id)
    if message is None or message.status not in RETRYABLE:
        return False
    record_status(session, message, "queued", "retried by an operator")
    message.lease_until = None
    return True
