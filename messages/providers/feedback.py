"""What provider feedback does to our data: delivery status, suppressions, consent.

Shared by the delivery webhooks, the one-click unsubscribe page and the sending
actor (``mark_phone`` for a permanent Twilio error), so a STOP reply, a 21610
error and a bounce leave the same trace wherever they are learnt. Every row
written carries the business of the message or customer it is about.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from messages.providers.twilio import PHONE_STATUS_BY_CODE
from portal import events
from portal.metrics import MESSAGES
from portal.models import CommunicationPreference, Consent, Customer, Message, MessageEvent, ProcessedEvent, Suppression
from portal.models import utcnow
from portal.outbox import record_status

log = logging.getLogger(__name__)

# How far along a message is; a late or repeated callback never moves it back.
_RANK = {"queued": 0, "sending": 1, "unknown": 1, "dead": 1, "skipped": 1, "sent": 2, "delivered": 3, "failed": 3}
FINAL = ("delivered", "failed")


def claim_event(session: Session, source: str, event_id: str) -> bool:
    """Record a provider event as handled; False if it already was (a duplicate delivery)."""
    event_id = event_id[:200]
    seen = session.scalar(select(ProcessedEvent.id).where(ProcessedEvent.source == source,
                                                          ProcessedEvent.event_id == event_id))
    if seen is not None:
        return False
    try:
        with session.begin_nested():
            session.add(ProcessedEvent(source=source, event_id=event_id))
            session.flush()
    except IntegrityError:  # the same event, handled concurrently
        return False
    return True


def apply_status(session: Session, message: Message, status: str, detail: str | None = None, *,
                 provider: str | None = None, provider_id: str | None = None) -> bool:
    """Move ``message`` to a provider-reported status (sent/delivered/failed). False if nothing changed.

    A message in "unknown" (timed out after sending) is reconciled here.
    """
    current = message.status
    if status == current:
        return False
    if status not in FINAL and _RANK.get(status, 0) <= _RANK.get(current, 0):
        return False
    if provider and not message.provider:
        message.provider = provider
    if provider_id and not message.provider_id:
        message.provider_id = provider_id
    if status in ("sent", "delivered") and message.sent_at is None:
        message.sent_at = utcnow()
    record_status(session, message, status, detail)
    if status in FINAL:
        MESSAGES.labels(status, message.channel).inc()
    if message.customer_id is not None:
        events.emit(session, message.business_id, message.customer_id, "message_status",
                    {"message_id": message.id, "kind": message.kind, "channel": message.channel, "status": status})
    return True


def note(session: Session, message: Message, what: str, detail: str | None = None) -> None:
    """Add to a message's history without changing its status (e.g. a spam report after delivery)."""
    session.add(MessageEvent(business_id=message.business_id, message_id=message.id, status=what, detail=detail))


def suppress(session: Session, business_id: int, channel: str, address: str, reason: str) -> Suppression:
    match = (func.lower(Suppression.address) == address.lower()) if channel == "email" else (Suppression.address == address)
    row = session.scalar(select(Suppression).where(Suppression.business_id == business_id,
                                                   Suppression.channel == channel, match))
    if row is None:
        row = Suppression(business_id=business_id, channel=channel, address=address, reason=reason)
        session.add(row)
        session.flush()
    return row


def customers_with(session: Session, business_id: int | None, channel: str, address: str) -> list[Customer]:
    """Customers (of one business, or of all when None) with this email address or phone number."""
    if channel == "email":
        query = select(Customer).where(func.lower(Customer.email) == address.lower())
    else:
        query = select(Customer).where(Customer.phone == address)
    if business_id is not None:
        query = query.where(Customer.business_id == business_id)
    return list(session.scalars(query.order_by(Customer.id)))


def mark_phone(session: Session, business_id: int, phone: str, code: int | str | None) -> str | None:
    """Apply what a Twilio error code says about a number (21610 opted out, 21211 invalid, ...).

    Returns the phone status set, or None when the code says nothing about the number.
    """
    try:
        status = PHONE_STATUS_BY_CODE.get(int(code)) if code is not None else None
    except (TypeError, ValueError):
        status = None
    if status is None:
        return None
    if status == "opted_out":
        suppress(session, business_id, "sms", phone, "stop")
    for customer in customers_with(session, business_id, "sms", phone):
        customer.phone_status = status
    return status


def mark_email(session: Session, business_id: int, address: str, status: str | None, reason: str) -> None:
    """A hard bounce, drop or spam report: never write to this address again (email_status bounced/spam/invalid)."""
    suppress(session, business_id, "email", address, reason)
    if status is None:
        return
    for customer in customers_with(session, business_id, "email", address):
        customer.email_status = status


def opt_out_sms(session: Session, customer: Customer, wording: str) -> None:
    """An SMS STOP keyword: suppress the number for this business and record the refusal."""
    suppress(session, customer.business_id, "sms", customer.phone, "stop")
    customer.phone_status = "opted_out"
    session.add(Consent(business_id=customer.business_id, customer_id=customer.id, channel="sms", category=None,
                        granted=False, source="sms_keyword", wording=wording))
    _preferences_changed(session, customer, [{"category": None, "channel": "sms", "enabled": False}], "sms_keyword")


def opt_in_sms(session: Session, customer: Customer, wording: str) -> None:
    """START/UNSTOP: lift the STOP suppression and record the renewed consent.

    Consent comes back for what the customer had once agreed to (all categories, or
    the ones they chose), never more: the number is shared by every business that
    knows it, and a business they never gave consent to gets none from a START.
    """
    for row in session.scalars(select(Suppression).where(
            Suppression.business_id == customer.business_id, Suppression.channel == "sms",
            Suppression.address == customer.phone, Suppression.reason == "stop")):
        session.delete(row)
    if customer.phone_status == "opted_out":
        customer.phone_status = "ok"
    given = set(session.scalars(select(Consent.category).where(
        Consent.customer_id == customer.id, Consent.channel == "sms", Consent.granted.is_(True))))
    if not given:
        return
    scopes = [None] if None in given else sorted(given)
    for category in scopes:
        session.add(Consent(business_id=customer.business_id, customer_id=customer.id, channel="sms",
                            category=category, granted=True, source="sms_keyword", wording=wording))
    _preferences_changed(session, customer, [{"category": c, "channel": "sms", "enabled": True} for c in scopes],
                         "sms_keyword")


def disable_preference(session: Session, customer: Customer, category: str, channel: str, *,
                       source: str, wording: str) -> bool:
    """Turn one category x channel off (unsubscribe link, SendGrid unsubscribe) and record the consent.

    Returns False when it was already off (nothing written).
    """
    row = session.scalar(select(CommunicationPreference).where(
        CommunicationPreference.customer_id == customer.id, CommunicationPreference.category == category,
        CommunicationPreference.channel == channel))
    if row is not None and not row.enabled:
        return False
    if row is None:
        row = CommunicationPreference(business_id=customer.business_id, customer_id=customer.id,
                                      category=category, channel=channel)
        session.add(row)
    row.enabled = False
    session.add(Consent(business_id=customer.business_id, customer_id=customer.id, channel=channel,
                        category=category, granted=False, source=source, wording=wording))
    session.flush()
    _preferences_changed(session, customer, [{"category": category, "channel": channel, "enabled": False}], source)
    return True


def _preferences_changed(session: Session, customer: Customer, changed: list[dict], source: str) -> None:
    # The booking system hears about it through the business's outbound webhook, with the
    # same body as a change made in the portal: the whole state after it, and what changed.
    from portal.preferences import current
    from portal.webhooks_out import record_event

    session.flush()
    record_event(session, customer.business_id, "customer.preferences_changed",
                 {"customer": customer.external_id, "locale": customer.locale,
                  "preferences": current(session, customer), "changed": changed, "source": source})
    events.emit(session, customer.business_id, customer.id, "preferences", {"changed": changed})
