"""Which channels a notice goes out on: preferences, consent, suppressions, fallback.

- Hard blocks, whatever the message: no address; the address is suppressed
  (STOP reply, hard bounce, spam report) or its status is not "ok"; for SMS, no
  granted consent on record (the latest consent row for SMS decides).
- Optional categories: one ``CommunicationPreference`` row per category x
  channel; no row means on (SMS still needs consent). Every allowed channel
  gets the notice, so a customer without an email address falls back to SMS
  and one without a phone to email.
- Critical categories (sign-in links, invitations) ignore preference rows and
  go out on one channel: email, else SMS -- never to a number that replied STOP.
  A sign-in link (urgent: the customer just asked for it) needs no SMS consent row.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from messages import registry
from messages.registry import CHANNELS
from portal.models import CommunicationPreference, Consent, Customer, Suppression

_STATUS_REASONS = {
    ("email", "bounced"): "email address bounced",
    ("email", "spam"): "customer reported our email as spam",
    ("email", "invalid"): "email address rejected as invalid",
    ("sms", "opted_out"): "phone number replied STOP",
    ("sms", "invalid"): "phone number is invalid",
    ("sms", "not_mobile"): "phone number cannot receive SMS",
}


def address(customer: Customer, channel: str) -> str | None:
    return customer.email if channel == "email" else customer.phone


def has_sms_consent(session: Session, customer: Customer, category: str | None = None) -> bool:
    """The latest SMS consent row (for all categories or this one) decides."""
    row = session.scalar(
        select(Consent)
        .where(Consent.customer_id == customer.id, Consent.channel == "sms",
               (Consent.category.is_(None)) | (Consent.category == category))
        .order_by(Consent.created_at.desc(), Consent.id.desc())
        .limit(1)
    )
    return bool(row and row.granted)


def suppression_reason(session: Session, business_id: int, channel: str, addr: str) -> str | None:
    if channel == "email":
        match = func.lower(Suppression.address) == addr.lower()
    else:
        match = Suppression.address == addr
    row = session.scalar(select(Suppression).where(
        Suppression.business_id == business_id, Suppression.channel == channel, match).limit(1))
    return row.reason if row else None


def blocked(session: Session, customer: Customer, channel: str, category: str | None = None,
            *, need_consent: bool = True) -> str | None:
    """Why ``channel`` can never be used for this customer right now (None: it can)."""
    addr = address(customer, channel)
    if not addr:
        return "no email address" if channel == "email" else "no phone number"
    status = customer.email_status if channel == "email" else customer.phone_status
    if status and status != "ok":
        return _STATUS_REASONS.get((channel, status), f"{channel} status is {status}")
    reason = suppression_reason(session, customer.business_id, channel, addr)
    if reason == "stop":
        return "phone number replied STOP"
    if reason:
        return f"{channel} address suppressed ({reason})"
    if channel == "sms" and need_consent and not has_sms_consent(session, customer, category):
        return "no SMS consent on record"
    return None


def preference(session: Session, customer: Customer, category: str, channel: str) -> bool | None:
    """The customer's explicit choice, or None when they never made one."""
    row = session.scalar(select(CommunicationPreference).where(
        CommunicationPreference.customer_id == customer.id,
        CommunicationPreference.category == category,
        CommunicationPreference.channel == channel))
    return None if row is None else bool(row.enabled)


def refusal(session: Session, customer: Customer, kind: str, channel: str) -> str | None:
    """Why a ``kind`` notice must not go to this customer on ``channel`` (None: it may).

    Used again at send time, so a preference changed after queueing still counts.
    """
    mtype = registry.get(kind)
    # A sign-in link is sent because the customer just asked for it, to the number they typed:
    # the request is their consent. Everything else needs one on record.
    reason = blocked(session, customer, channel, mtype.category, need_consent=not mtype.urgent)
    if reason:
        return reason
    if not mtype.critical and preference(session, customer, mtype.category, channel) is False:
        return f"customer turned off {mtype.category} by {channel}"
    return None


def choose_channels(session: Session, customer: Customer, kind: str) -> tuple[list[str], dict[str, str]]:
    """Returns (channels to use, {channel: reason it is not used})."""
    mtype = registry.get(kind)
    channels: list[str] = []
    skipped: dict[str, str] = {}
    for channel in CHANNELS:
        reason = refusal(session, customer, kind, channel)
        if reason:
            skipped[channel] = reason
        elif mtype.critical and channels:
            skipped[channel] = f"already sent by {channels[0]}"
        else:
            channels.append(channel)
    return channels, skipped
