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

from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, null, select
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


@dataclass
class Facts:
    """What the database says about reaching one customer for one category, per channel."""

    suppressed: dict[str, str | None] = field(default_factory=dict)  # channel -> suppression reason
    sms_consent: bool = False  # the latest SMS consent row (all categories or this one) grants
    preference: dict[str, bool | None] = field(default_factory=dict)  # channel -> explicit choice


def _sms_consent():
    """The SMS consent rule, written once: the latest SMS consent row for this category
    or for all categories decides. A scalar subquery (granted, or NULL: no row) binding
    ``customer_id`` and ``category``; ``facts`` embeds it, ``sms_consent`` runs it alone."""
    return (select(Consent.granted)
            .where(Consent.customer_id == bindparam("customer_id"), Consent.channel == "sms",
                   (Consent.category.is_(None)) | (Consent.category == bindparam("category")))
            .order_by(Consent.created_at.desc(), Consent.id.desc())
            .limit(1).scalar_subquery())


def _facts_query(with_email: bool, with_phone: bool):
    def suppression(channel: str, wanted: bool):
        if not wanted:
            return null()
        match = (func.lower(Suppression.address) == bindparam("email")) if channel == "email" \
            else (Suppression.address == bindparam("phone"))
        return (select(Suppression.reason)
                .where(Suppression.business_id == bindparam("business_id"), Suppression.channel == channel, match)
                .order_by(Suppression.id).limit(1).scalar_subquery())

    def choice(channel: str):
        return (select(CommunicationPreference.enabled)
                .where(CommunicationPreference.customer_id == bindparam("customer_id"),
                       CommunicationPreference.category == bindparam("category"),
                       CommunicationPreference.channel == channel)
                .limit(1).scalar_subquery())

    return select(suppression("email", with_email), suppression("sms", with_phone), _sms_consent(),
                  choice("email"), choice("sms"))


# Built once: constructing these statements costs more than running them.
_FACTS = {(e, p): _facts_query(e, p) for e in (True, False) for p in (True, False)}
_SMS_CONSENT = select(_sms_consent())


def sms_consent(session: Session, customer_id: int, category: str | None) -> bool:
    """Whether the customer's SMS consent on record covers ``category`` (the rule ``facts`` applies)."""
    return bool(session.scalar(_SMS_CONSENT, {"customer_id": customer_id, "category": category}))


def facts(session: Session, customer: Customer, category: str | None) -> Facts:
    """Suppressions, SMS consent and preferences for both channels in one query.

    Every notice is checked when it is queued and again when it is sent, so
    this is on the hot path: one round trip instead of five.
    """
    query = _FACTS[(bool(customer.email), bool(customer.phone))]
    email_sup, sms_sup, granted, email_pref, sms_pref = session.execute(query, {
        "email": (customer.email or "").lower(), "phone": customer.phone or "",
        "business_id": customer.business_id, "customer_id": customer.id, "category": category,
    }).one()
    return Facts(
        suppressed={"email": email_sup, "sms": sms_sup},
        sms_consent=bool(granted),
        preference={"email": None if email_pref is None else bool(email_pref),
                    "sms": None if sms_pref is None else bool(sms_pref)},
    )


def blocked(session: Session, customer: Customer, channel: str, category: str | None = None,
            *, need_consent: bool = True, known: Facts | None = None) -> str | None:
    """Why ``channel`` can never be used for this customer right now (None: it can)."""
    addr = address(customer, channel)
    if not addr:
        return "no email address" if channel == "email" else "no phone number"
    status = customer.email_status if channel == "email" else customer.phone_status
    if status and status != "ok":
        return _STATUS_REASONS.get((channel, status), f"{channel} status is {status}")
    known = known or facts(session, customer, category)
    reason = known.suppressed.get(channel)
    if reason == "stop":
        return "phone number replied STOP"
    if reason:
        return f"{channel} address suppressed ({reason})"
    if channel == "sms" and need_consent and not known.sms_consent:
        return "no SMS consent on record"
    return None


def refusal(session: Session, customer: Customer, kind: str, channel: str,
            *, known: Facts | None = None) -> str | None:
    """Why a ``kind`` notice must not go to this customer on ``channel`` (None: it may).

    Used again at send time, so a preference changed after queueing still counts.
    """
    mtype = registry.get(kind)
    if not address(customer, channel):
        return blocked(session, customer, channel, mtype.category)  # no address: no query needed
    known = known or facts(session, customer, mtype.category)
    # A sign-in link is sent because the customer just asked for it, to the number they typed:
    # the request is their consent. Everything else needs one on record.
    reason = blocked(session, customer, channel, mtype.category, need_consent=not mtype.urgent, known=known)
    if reason:
        return reason
    if not mtype.critical and known.preference.get(channel) is False:
        return f"customer turned off {mtype.category} by {channel}"
    return None


def choose_channels(session: Session, customer: Customer, kind: str) -> tuple[list[str], dict[str, str]]:
    """Returns (channels to use, {channel: reason it is not used})."""
    mtype = registry.get(kind)
    channels: list[str] = []
    skipped: dict[str, str] = {}
    known = facts(session, customer, mtype.category) if (customer.email or customer.phone) else None
    for channel in CHANNELS:
        reason = refusal(session, customer, kind, channel, known=known)
        if reason:
            skipped[channel] = reason
        elif mtype.critical and channels:
            skipped[channel] = f"already sent by {channels[0]}"
        else:
            channels.append(channel)
    return channels, skipped
