"""The outbox: every outbound message is a row written in the same transaction
as the change that caused it, under a unique idempotency key, and enqueued
only after that transaction commits.

    queue_notice(session, kind="reschedule_confirmation", customer=c, booking=b,
                 key=f"booking:{b.id}:v{b.version}")
"""

from __future__ import annotations

import logging

from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from messages import registry
from messages.channels import choose_channels
from portal.db import TENANT, TenantScopeError, after_commit
from portal.metrics import MESSAGES
from portal.models import Booking, Customer, Message, MessageEvent, utcnow

log = logging.getLogger(__name__)


def idempotency_key(business_id: int, kind: str, key: str, channel: str) -> str:
    return f"{business_id}:{kind}:{key}:{channel}"


def queue_notice(
    session: Session,
    *,
    kind: str,
    customer: Customer,
    key: str,
    booking: Booking | None = None,
    params: dict | None = None,
    channels: list[str] | None = None,
) -> list[Message]:
    """Write one Message row per chosen channel; enqueue them after commit.

    ``key`` names the cause (e.g. ``booking:12:v3``): the same kind, key and
    channel never make a second row, so a repeated request sends nothing twice.
    When no channel may be used, one row is written with status "skipped" and
    the reasons, so the operator sees why nothing went out.
    """
    mtype = registry.get(kind)
    if channels is None:
        channels, skipped = choose_channels(session, customer, kind)
        if not channels:
            return [_skipped_notice(session, mtype, customer, key, booking, params, skipped)]
    created = []
    for channel in channels:
        ikey = idempotency_key(customer.business_id, kind, key, channel)
        recipient = customer.email if channel == "email" else customer.phone
        message = _insert_new(session, dict(
            business_id=customer.business_id, idempotency_key=ikey, kind=kind, category=mtype.category,
            channel=channel, customer_id=customer.id, booking_id=booking.id if booking else None,
            booking_version=booking.version if booking else None, recipient=recipient or "",
            locale=customer.locale or "en", params=params or {}, status="queued",
        ))
        if message is None:  # written before (a repeated request) or by a concurrent one: not again
            existing = session.scalar(select(Message).where(Message.idempotency_key == ikey))
            if existing is not None:
                created.append(existing)
            continue
        add_history(session, message.business_id, message.id, "queued")
        enqueue_after_commit(session, message.id, urgent=mtype.urgent)
        created.append(message)
    return created


# Every column a new row is written with; built once per dialect (building the
# statement per row cost as much as running it).
_NEW_COLUMNS = ("business_id", "idempotency_key", "kind", "category", "channel", "customer_id", "booking_id",
                "booking_version", "recipient", "locale", "params", "status", "status_reason")
_INSERT_NEW = {
    name: (dialect.insert(Message).values({column: bindparam(column) for column in _NEW_COLUMNS})
           .on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(Message))
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _insert_new(session: Session, values: dict) -> Message | None:
    """INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING: the new row, or None.

    One statement where a look-up, a savepoint, the insert and its release took four;
    a concurrent duplicate is not an error to recover from.
    """
    scoped = session.info.get(TENANT)
    if scoped is not None and values["business_id"] != scoped:
        raise TenantScopeError("row written for another business")
    stmt = _INSERT_NEW[session.get_bind().dialect.name]
    return session.scalars(stmt, {"status_reason": None, **values}).first()


def add_history(session: Session, business_id: int, message_id: int, status: str, detail: str | None = None) -> None:
    """Append to a message's history with a plain INSERT (the ORM's unit of work costs more here)."""
    session.execute(_HISTORY, {"business_id": business_id, "message_id": message_id, "status": status,
                               "detail": detail, "created_at": utcnow()})


_HISTORY = insert(MessageEvent.__table__)


def _skipped_notice(session, mtype, customer, key, booking, params, skipped: dict[str, str]) -> Message:
    ikey = idempotency_key(customer.business_id, mtype.name, key, "none")
    prefix = ikey[: -len("none")]
    # Any row for this notice (sent earlier on some channel, or skipped) means it was handled.
    existing = session.scalar(select(Message).where(Message.idempotency_key.startswith(prefix, autoescape=True))
                              .order_by(Message.id).limit(1))
    if existing is not None:
        return existing
    reason = "; ".join(f"{channel}: {why}" for channel, why in skipped.items()) or "no channel"
    message = _insert_new(session, dict(
        business_id=customer.business_id, idempotency_key=ikey, kind=mtype.name, category=mtype.category,
        channel="email", customer_id=customer.id, booking_id=booking.id if booking else None,
        booking_version=booking.version if booking else None, recipient=customer.email or customer.phone or "",
        locale=customer.locale or "en", params=params or {}, status="skipped", status_reason=reason,
    ))
    if message is None:  # a concurrent request wrote it first
        return session.scalar(select(Message).where(Message.idempotency_key == ikey))
    add_history(session, message.business_id, message.id, "skipped", reason)
    after_commit(session, lambda: MESSAGES.labels(status="skipped", channel="none").inc())
    return message


def enqueue_after_commit(session: Session, message_id: int, *, urgent: bool = False) -> None:
    after_commit(session, lambda: enqueue(message_id, urgent=urgent))


def enqueue(message_id: int, *, delay_ms: int | None = None, urgent: bool = False) -> None:
    """Hand a committed message to the workers. Losing this is safe: the sweeper re-enqueues.

    Urgent messages (a sign-in link the customer is waiting for) go on the "urgent" queue,
    which workers serve first, not behind a morning's reminders on "messages".
    """
    from workers.messaging import deliver_message, deliver_urgent_message

    actor = deliver_urgent_message if urgent else deliver_message
    try:
        if delay_ms:
            actor.send_with_options(args=(message_id,), delay=delay_ms)
        else:
            actor.send(message_id)
    except Exception:
        log.warning("could not enqueue message %s; the sweeper will retry", message_id, exc_info=True)


def record_status(session: Session, message: Message, status: str, detail: str | None = None) -> None:
    """Move a message to a new status and append it to its history."""
    message.status = status
    message.status_reason = detail
    message.updated_at = utcnow()
    session.add(MessageEvent(business_id=message.business_id, message_id=message.id, status=status, detail=detail))
