"""Communication preferences: category x channel toggles and the preferred language.

The stored state is what ``messages.channels`` reads when it picks channels:
one ``CommunicationPreference`` row per category x channel (no row means on),
and for SMS the latest ``Consent`` row for that category (or for all
categories) must be a grant. So every toggle the customer changes here is
written as a preference row AND appended as a Consent row (source "portal",
with the exact sentence shown next to the checkbox), and turning SMS on for a
category records the SMS consent it needs.

Critical categories (sign-in links, invitations) are not toggles: they are
always on and shown as such.
"""

from __future__ import annotations

from typing import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from messages.channels import sms_consent
from messages.registry import CHANNELS, CRITICAL_CATEGORIES, OPTIONAL_CATEGORIES
from portal.errors import ValidationError
from portal.models import Business, CommunicationPreference, Consent, Customer
from portal.webhooks_out import record_event

LANGUAGES = ("en", "fr")
SOURCE = "portal"

# Labels are English msgids; the portal translates them (portal_web/locale).
CATEGORY_LABELS = {
    "account": "Sign-in links and invitations",
    "reminders": "Appointment reminders",
    "booking_updates": "Booking confirmations and changes",
    "billing": "Invoices and receipts",
    "quotes": "Quotes",
}
CHANNEL_LABELS = {"email": "Email", "sms": "Text message (SMS)"}

# The sentences shown beside each checkbox and stored verbatim in the Consent row.
WORDING = {
    ("email", True): "Send me %(category)s from %(business)s by email.",
    ("email", False): "Do not send me %(category)s from %(business)s by email.",
    ("sms", True): ("I agree to receive %(category)s from %(business)s by text message at %(phone)s. "
                    "Message and data rates may apply. Reply STOP to opt out, HELP for help."),
    ("sms", False): "Do not send me %(category)s from %(business)s by text message.",
}

Translate = Callable[[str], str]


def _identity(text: str) -> str:
    return text


def wording(business: Business, customer: Customer, category: str, channel: str, granted: bool,
            translate: Translate = _identity) -> str:
    return translate(WORDING[(channel, granted)]) % {
        "category": translate(CATEGORY_LABELS.get(category, category)).lower(),
        "business": business.name, "phone": customer.phone or "",
    }


def current(session: Session, customer: Customer) -> dict[str, dict[str, bool]]:
    """{category: {channel: on?}} for the optional categories, as messages will see it."""
    rows = session.scalars(select(CommunicationPreference)
                           .where(CommunicationPreference.customer_id == customer.id)).all()
    explicit = {(r.category, r.channel): bool(r.enabled) for r in rows}
    state: dict[str, dict[str, bool]] = {}
    for category in OPTIONAL_CATEGORIES:
        state[category] = {}
        for channel in CHANNELS:
            on = explicit.get((category, channel), True)
            if channel == "sms":
                on = on and bool(customer.phone) and sms_consent(session, customer.id, category)
            if channel == "email":
                on = on and bool(customer.email)
            state[category][channel] = on
    return state


def critical_categories() -> list[str]:
    return sorted(CRITICAL_CATEGORIES)


def save(session: Session, business: Business, customer: Customer, enabled: Iterable[tuple[str, str]],
         locale: str | None = None, *, translate: Translate = _identity) -> list[Consent]:
    """Apply the submitted toggles (the set of (category, channel) that are ON) and language.

    Returns the Consent rows written (one per changed toggle). Unknown pairs are refused.
    """
    wanted = set(enabled)
    for category, channel in wanted:
        if category not in OPTIONAL_CATEGORIES or channel not in CHANNELS:
            raise ValidationError("Unknown preference.", {f"{category}.{channel}": "unknown"})
    if locale is not None and locale not in LANGUAGES:
        raise ValidationError("Choose English or French.", {"locale": "unsupported"})
    if any(ch == "sms" for _c, ch in wanted) and not customer.phone:
        raise ValidationError("Text messages need a phone number on file. Please contact us to add one.",
                              {"sms": "no phone number"})
    if any(ch == "email" for _c, ch in wanted) and not customer.email:
        raise ValidationError("Email needs an email address on file. Please contact us to add one.",
                              {"email": "no email address"})

    before = current(session, customer)
    rows = {(r.category, r.channel): r for r in session.scalars(
        select(CommunicationPreference).where(CommunicationPreference.customer_id == customer.id))}
    consents: list[Consent] = []
    for category in OPTIONAL_CATEGORIES:
        for channel in CHANNELS:
            on = (category, channel) in wanted
            if before[category][channel] == on:
                continue
            row = rows.get((category, channel))
            if row is None:
                row = CommunicationPreference(business_id=customer.business_id, customer_id=customer.id,
                                              category=category, channel=channel)
                session.add(row)
            row.enabled = on
            consent = Consent(business_id=customer.business_id, customer_id=customer.id, channel=channel,
                              category=category, granted=on, source=SOURCE,
                              wording=wording(business, customer, category, channel, on, translate))
            session.add(consent)
            consents.append(consent)
    locale_changed = locale is not None and locale != customer.locale
    if locale_changed:
        customer.locale = locale
    session.flush()
    if consents or locale_changed:
        after = current(session, customer)
        record_event(session, business, "customer.preferences_changed", {
            "customer": customer.external_id, "locale": customer.locale, "preferences": after,
            "changed": [{"category": c.category, "channel": c.channel, "enabled": c.granted} for c in consents],
            "source": SOURCE,
        })
    return consents
